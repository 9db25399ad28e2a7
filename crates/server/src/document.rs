//! The OpenAPI document: what the handlers declare, completed with what holds for every
//! operation (the refusals any request can meet, the headers every answer carries, conditional
//! reads of versioned resources), and shaped so that strict validators and generators read it as
//! the server answers. It does not route or answer requests itself.

use std::collections::{BTreeSet, HashSet};

use axum::Router;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::extract::SESSION_COOKIE;
use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steward",
        description = "The control plane for a multi-tenant SaaS: users, organizations, teams, licenses, audit.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    servers((url = "/", description = "The Steward that serves this document; every path carries its /api/v1 prefix")),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&Security),
    security(("bearer" = []), ("cookie" = [])),
    tags(
        (name = "auth", description = "Login, the current principal, own sessions and API tokens"),
        (name = "users", description = "Users, for instance admins"),
        (name = "orgs", description = "Organizations, members and ownership"),
        (name = "teams", description = "Teams inside organizations"),
        (name = "licenses", description = "Organization licenses"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "instance", description = "Instance settings"),
        (name = "lifecycle", description = "Deactivation, reactivation, suspension, anonymization, Login as user"),
        (name = "customer lifecycle", description = "Deprovisioning and restoring organizations"),
        (name = "assets", description = "What the product keeps for an org, held to its license"),
        (name = "data", description = "Export of an org and erasure"),
        (name = "webhooks", description = "Signed notifications of every change to the operator's product"),
        (name = "reviews", description = "Access reviews"),
        (name = "scim", description = "Tokens of the SCIM 2.0 service provider at /scim/v2"),
        (name = "roles", description = "Instance roles: built-in and custom permission sets"),
        (name = "sso", description = "Single sign-on with OpenID Connect, and JWTs from trusted issuers")
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("A session or API token")).build(),
            ),
        );
        components
            .add_security_scheme("cookie", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))));
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::tokens::router())
        .merge(routes::users::router())
        .merge(routes::orgs::router())
        .merge(routes::teams::router())
        .merge(routes::audit::router())
        .merge(routes::instance::router())
        .merge(routes::lifecycle::router())
        .merge(routes::invitations::router())
        .merge(routes::deprovision::router())
        .merge(routes::usage::router())
        .merge(routes::usage_events::router())
        .merge(routes::assets::router())
        .merge(routes::erasure::router())
        .merge(routes::hooks::router())
        .merge(routes::reviews::router())
        .merge(routes::scim_tokens::router())
        .merge(routes::security::router())
        .merge(routes::roles::router())
        .merge(routes::jwt_issuers::router())
        .merge(routes::sso::router())
}

/// Adds the answers every operation can give, so that no handler has to list them: 400
/// `validation_failed` (a body, query, path or `Idempotency-Key` that does not parse) and, for
/// operations that need credentials, 401 `unauthenticated`; and describes each success that has
/// no description of its own.
fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    let problem = |description: &str| crate::error::declared::problem(description, false);
    let versioned = versioned_schemas(doc);
    if let Some(components) = doc.components.as_mut() {
        let id = utoipa::openapi::HeaderBuilder::new()
            .schema(Some(utoipa::openapi::schema::Object::with_type(utoipa::openapi::schema::Type::String)))
            .description(Some(
                "The request's id: the caller's `X-Request-Id` when 1 to 128 visible characters, else a new one.",
            ));
        components.headers.insert("X-Request-Id".into(), utoipa::openapi::RefOr::T(id.build()));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = path.starts_with("/api/v1/auth/") && path != "/api/v1/auth/logout";
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            let responses = &mut op.responses.responses;
            responses.entry("400".into()).or_insert_with(|| problem("`validation_failed`: the request does not parse"));
            if public {
                // Signing in, resets and invitations are for callers without credentials.
                op.security = Some(Vec::new());
            } else {
                responses.entry("401".into()).or_insert_with(|| problem("`unauthenticated`: no valid credentials"));
            }
            // OpenAPI requires a description of every response: a success without one of its own
            // is described by its status.
            for (status, response) in responses.iter_mut() {
                if let utoipa::openapi::RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    r.description = success_description(status).to_owned();
                }
            }
        }
        if let Some(get) = item.get.as_mut()
            && answers_versioned(get, &versioned)
        {
            declare_conditional_get(get);
        }
        if let Some(post) = item.post.as_mut() {
            post.parameters.get_or_insert_with(Vec::new).push(header_parameter(
                "Idempotency-Key",
                "1 to 255 characters: a repeat with the same key and body answers as the first and changes nothing.",
            ));
            let reused =
                || problem("`idempotency_key_reused` (the key came with another request) or `idempotency_key_in_use`");
            post.responses.responses.entry("409".into()).or_insert_with(reused);
        }
        let counted = counted_against_org_limit(path);
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            if op.responses.responses.contains_key("412") {
                op.parameters.get_or_insert_with(Vec::new).push(header_parameter(
                    "If-Match",
                    "The version the change is meant for, quoted (`\"<version>\"`): 412 once the resource moved on.",
                ));
            }
            if counted {
                let limited = || {
                    crate::error::declared::problem(
                        "`rate_limited`: the org's `api_requests_per_minute` is spent",
                        true,
                    )
                };
                op.responses.responses.entry("429".into()).or_insert_with(limited);
            }
            let tagged = answers_versioned(op, &versioned);
            declare_answer_headers(op, tagged, counted);
        }
    }
}

/// Operations on an org, its teams and assets, and decisions: each request is counted against
/// the org's `api_requests_per_minute` (`routes::orgs::org_access`, `routes::usage`).
fn counted_against_org_limit(path: &str) -> bool {
    ["/api/v1/orgs/{id}", "/api/v1/teams/{id}", "/api/v1/assets/{id}", "/api/v1/check"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// An optional request header.
fn header_parameter(name: &str, description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::path::Parameter> {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{Object, Type};
    let parameter = ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(description))
        .schema(Some(Object::with_type(Type::String)));
    utoipa::openapi::RefOr::T(parameter.build())
}

/// The schemas of versioned resources: those with a `version` property.
fn versioned_schemas(doc: &utoipa::openapi::OpenApi) -> HashSet<String> {
    use utoipa::openapi::{RefOr, schema::Schema};
    let has_version = |schema: &RefOr<Schema>| match schema {
        RefOr::T(Schema::Object(o)) => o.properties.contains_key("version"),
        RefOr::T(Schema::AllOf(all)) => all
            .items
            .iter()
            .any(|part| matches!(part, RefOr::T(Schema::Object(o)) if o.properties.contains_key("version"))),
        _ => false,
    };
    let schemas = doc.components.as_ref().map(|c| &c.schemas);
    schemas.into_iter().flatten().filter(|(_, s)| has_version(s)).map(|(name, _)| name.clone()).collect()
}

/// Whether the operation's 200 is a versioned resource (a [`crate::answer::Tagged`] answer).
fn answers_versioned(op: &utoipa::openapi::path::Operation, versioned: &HashSet<String>) -> bool {
    use utoipa::openapi::RefOr;
    let Some(RefOr::T(ok)) = op.responses.responses.get("200") else { return false };
    let schema = match ok.content.get("application/json") {
        Some(RefOr::T(content)) => content.schema.as_ref(),
        _ => None,
    };
    matches!(schema, Some(RefOr::Ref(r)) if versioned.contains(r.ref_location.trim_start_matches("#/components/schemas/")))
}

/// A `GET` of a versioned resource takes `If-None-Match` and answers 304 when it names the
/// resource's `ETag`.
fn declare_conditional_get(op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{Object, Type};
    use utoipa::openapi::{Required, ResponseBuilder};
    let if_none_match = ParameterBuilder::new()
        .name("If-None-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some("The `ETag` of the copy the caller holds: 304 while it is current."))
        .schema(Some(Object::with_type(Type::String)))
        .build();
    op.parameters.get_or_insert_with(Vec::new).push(utoipa::openapi::RefOr::T(if_none_match));
    let unchanged = ResponseBuilder::new().description("Not modified: the copy named by `If-None-Match` is current");
    op.responses.responses.insert("304".into(), utoipa::openapi::RefOr::T(unchanged.build()));
}

/// The headers every answer carries (`X-Request-Id`), a created resource's `Location`, a
/// versioned resource's `ETag`, and where a request counted against an org's limit stands.
fn declare_answer_headers(op: &mut utoipa::openapi::path::Operation, tagged: bool, counted: bool) {
    use utoipa::openapi::schema::{Object, Type};
    use utoipa::openapi::{HeaderBuilder, RefOr};
    let header = |description: &str| {
        RefOr::T(
            HeaderBuilder::new().schema(Some(Object::with_type(Type::String))).description(Some(description)).build(),
        )
    };
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(r) = response else { continue };
        r.headers
            .insert("X-Request-Id".into(), RefOr::Ref(utoipa::openapi::Ref::new("#/components/headers/X-Request-Id")));
        if status == "201" {
            r.headers.insert("Location".into(), header("Where the created resource is."));
        }
        if counted {
            r.headers.insert("RateLimit-Policy".into(), header("The org's limit: `\"org\";q=<per minute>;w=60`."));
            r.headers
                .insert("RateLimit".into(), header("What is left: `\"org\";r=<requests>;t=<seconds until full>`."));
        }
        if tagged && (status == "200" || status == "304") {
            r.headers.insert("ETag".into(), header("The resource's version, quoted: `\"<version>\"`."));
        }
    }
}

/// What a success status means, for a response declared without a description.
fn success_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: the work goes on after the answer",
        "204" => "Done; no content",
        "304" => "Not modified",
        _ => "The answer",
    }
}

/// The API's routes and the document describing them.
pub(crate) fn api_doc() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = api().split_for_parts();
    add_common_responses(&mut doc);
    (router, polished(doc))
}

/// The OpenAPI document, as served and as committed in `openapi.json`.
pub fn openapi_json() -> String {
    let (_, doc) = api_doc();
    let mut text = doc.to_pretty_json().expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// The document as validators and generators should read it (see [`shaped`]).
fn polished(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut value = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    shaped(&mut value);
    serde_json::from_value(value).expect("the shaped document is still an OpenAPI document")
}

/// Shapes the document's schemas as the server answers:
/// - a schema that extends a closed one (`allOf` of a schema with `additionalProperties: false`
///   and more properties) becomes one object, since no value could satisfy both parts;
/// - in a schema only answers use, every property is required: an answer writes every field,
///   `null` where there is no value (the problem document's optional members excepted).
fn shaped(doc: &mut Value) {
    let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object).cloned() else { return };
    let mut flattened = serde_json::Map::new();
    for (name, schema) in &schemas {
        if let Some(flat) = flattened_all_of(schema, &schemas) {
            flattened.insert(name.clone(), flat);
        }
    }
    let requested = referenced(doc, "requestBody", &schemas);
    let answered = referenced(doc, "responses", &schemas);
    let Some(target) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    target.extend(flattened);
    for (name, schema) in target.iter_mut() {
        if name == "Problem" || requested.contains(name) || !answered.contains(name) {
            continue;
        }
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else { continue };
        let all: Vec<Value> = properties.keys().map(|k| Value::String(k.clone())).collect();
        schema["required"] = Value::Array(all);
    }
}

/// `allOf: [{$ref: closed}, {object}]` as one object, when the referenced schema is closed.
fn flattened_all_of(schema: &Value, schemas: &serde_json::Map<String, Value>) -> Option<Value> {
    let parts = schema.get("allOf")?.as_array()?;
    let mut properties = serde_json::Map::new();
    let mut required = BTreeSet::new();
    let mut closed = false;
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(r) => schemas.get(r.trim_start_matches("#/components/schemas/"))?,
            None => part,
        };
        closed |= part.get("additionalProperties") == Some(&Value::Bool(false));
        properties.extend(part.get("properties")?.as_object()?.clone());
        let names = part.get("required").and_then(Value::as_array).into_iter().flatten();
        required.extend(names.filter_map(Value::as_str).map(str::to_owned));
    }
    if !closed {
        return None;
    }
    let mut flat = serde_json::json!({"type": "object", "properties": properties, "required": required});
    if let Some(description) = schema.get("description") {
        flat["description"] = description.clone();
    }
    Some(flat)
}

/// The schemas reachable from every `key` (`requestBody` or `responses`) of every operation.
fn referenced(doc: &Value, key: &str, schemas: &serde_json::Map<String, Value>) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut pending: Vec<String> = Vec::new();
    let paths = doc.get("paths").and_then(Value::as_object).into_iter().flat_map(|p| p.values());
    for item in paths {
        for op in item.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(part) = op.get(key) {
                refs_in(part, &mut pending);
            }
        }
    }
    while let Some(name) = pending.pop() {
        if found.insert(name.clone())
            && let Some(schema) = schemas.get(&name)
        {
            refs_in(schema, &mut pending);
        }
    }
    found
}

/// The schema names `value` refers to anywhere inside it.
fn refs_in(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                into.push(name.to_owned());
            }
            map.values().for_each(|v| refs_in(v, into));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, into)),
        _ => {}
    }
}
