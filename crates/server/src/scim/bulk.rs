//! `/Bulk` (RFC 7644 §3.7): operations run in order, each as its own request would, each in its
//! own transaction; `bulkId:` references are replaced by the ids created earlier in the request,
//! and `failOnErrors` stops the run after that many errors.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use steward_scim::ScimError;
use steward_scim::schema::{BULK_REQUEST, BULK_RESPONSE};

use super::groups::Groups;
use super::resource::{Call, bulk_one};
use super::users::Users;
use super::{MAX_BULK_OPERATIONS, MAX_BULK_PASSWORDS, Scim, ScimClient, ScimResult, body_json};
use crate::state::AppState;

/// Whether an operation's data sets a password: a resource with one, or a PATCH naming one.
fn sets_password(data: &Value) -> bool {
    let names_password =
        |v: &Value| v.as_object().is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("password")));
    names_password(data)
        || data["Operations"].as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op["path"].as_str().is_some_and(|p| p.eq_ignore_ascii_case("password")) || names_password(&op["value"])
            })
        })
}

/// Replaces every `"bulkId:x"` string by the id created for `x`; Err names an unknown one.
fn resolve(value: &mut Value, ids: &HashMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(s) => {
            if let Some(key) = s.strip_prefix("bulkId:") {
                let id = ids.get(key).ok_or_else(|| key.to_owned())?;
                *s = id.clone();
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| resolve(v, ids)),
        Value::Object(map) => map.values_mut().try_for_each(|v| resolve(v, ids)),
        _ => Ok(()),
    }
}

/// Runs one operation; returns (status, location, version) or the error.
async fn run_one(
    state: &AppState,
    client: &ScimClient,
    method: &str,
    path: &str,
    data: &Value,
    version: Option<&str>,
) -> Result<(u16, Option<String>, Option<String>), ScimError> {
    let mut headers = HeaderMap::new();
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(header::IF_MATCH, v);
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let verb = method.to_ascii_uppercase();
    let done = match segments.as_slice() {
        ["Users", rest @ ..] => bulk_one::<Users>(Call { state, client, headers: &headers }, (&verb, rest), data).await,
        ["Groups", rest @ ..] => {
            bulk_one::<Groups>(Call { state, client, headers: &headers }, (&verb, rest), data).await
        }
        _ => None,
    };
    match done {
        Some(result) => result.map_err(|f| f.0),
        None => Err(ScimError::invalid_value(format!("{method} {path} is not a bulk operation Steward runs"))),
    }
}

pub(super) async fn bulk(
    State(state): State<AppState>,
    client: ScimClient,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let body = body_json(&headers, &body)?;
    if !body["schemas"].as_array().is_some_and(|s| s.iter().any(|v| v == BULK_REQUEST)) {
        return Err(ScimError::invalid_syntax(format!("a bulk request names the schema {BULK_REQUEST}")).into());
    }
    let ops = body["Operations"].as_array().ok_or_else(|| ScimError::invalid_syntax("Operations is required"))?;
    if ops.len() > MAX_BULK_OPERATIONS {
        return Err(ScimError::new(
            steward_scim::ScimType::TooMany,
            format!("at most {MAX_BULK_OPERATIONS} operations per request"),
        )
        .into());
    }
    let passwords = ops.iter().filter(|op| sets_password(op.get("data").unwrap_or(&Value::Null))).count();
    check_passwords(passwords)?;
    client.prepay_passwords(&state, passwords)?;
    let fail_on_errors = match &body["failOnErrors"] {
        Value::Null => None,
        v => Some(
            v.as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| ScimError::invalid_value("failOnErrors is a positive integer"))?,
        ),
    };
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut errors = 0u64;
    for op in ops {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let result = run_operation(&state, &client, op, &mut ids).await;
        if result.get("response").is_some() {
            errors += 1;
        }
        results.push(result);
    }
    Ok(Scim::json(StatusCode::OK, json!({ "schemas": [BULK_RESPONSE], "Operations": results })))
}

/// Err(413) when more operations set a password than a bulk request may.
fn check_passwords(passwords: usize) -> Result<(), ScimError> {
    if passwords > MAX_BULK_PASSWORDS {
        return Err(ScimError::status(
            413,
            format!("at most {MAX_BULK_PASSWORDS} operations of a bulk request may set a password ({passwords} do)"),
        ));
    }
    Ok(())
}

/// Runs one operation of a bulk request, with the `bulkId`s created before it resolved, and
/// answers its result; a failed one carries its error as `response`.
async fn run_operation(state: &AppState, client: &ScimClient, op: &Value, ids: &mut HashMap<String, String>) -> Value {
    let method = op["method"].as_str().unwrap_or("");
    let bulk_id = op["bulkId"].as_str().map(str::to_owned);
    let mut data = op.get("data").cloned().unwrap_or(Value::Null);
    let mut result = json!({ "method": method });
    if let Some(b) = &bulk_id {
        result["bulkId"] = json!(b);
    }
    let mut path = Value::String(op["path"].as_str().unwrap_or("").to_owned());
    let outcome = if method.eq_ignore_ascii_case("POST") && bulk_id.is_none() {
        Err(ScimError::invalid_syntax("a POST in a bulk request needs a bulkId"))
    } else {
        match resolve(&mut data, ids).and_then(|()| resolve_path(&mut path, ids)) {
            Err(unknown) => Err(ScimError::new(
                steward_scim::ScimType::InvalidValue,
                format!("bulkId {unknown:?} is not created by an earlier operation"),
            )),
            Ok(()) => {
                let path = path.as_str().unwrap_or("");
                run_one(state, client, method, path, &data, op["version"].as_str()).await
            }
        }
    };
    match outcome {
        Ok((status, location, version)) => {
            if let (Some(b), Some(loc)) = (&bulk_id, &location)
                && let Some(id) = loc.rsplit('/').next()
            {
                ids.insert(b.clone(), id.to_owned());
            }
            result["status"] = json!(status.to_string());
            if let Some(l) = location {
                result["location"] = json!(l);
            }
            if let Some(v) = version {
                result["version"] = json!(v);
            }
        }
        Err(e) => {
            result["status"] = json!(e.status.to_string());
            result["response"] = e.body();
        }
    }
    result
}

/// A path like `/Groups/bulkId:x` names the group created as `x`.
fn resolve_path(path: &mut Value, ids: &HashMap<String, String>) -> Result<(), String> {
    let Value::String(p) = path else { return Ok(()) };
    if let Some((head, key)) = p.rsplit_once("/bulkId:") {
        let id = ids.get(key).ok_or_else(|| key.to_owned())?;
        *p = format!("{head}/{id}");
    }
    Ok(())
}
