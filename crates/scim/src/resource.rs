//! Resources as JSON documents checked against [`crate::schema`]: normalizing what a client sends
//! (canonical attribute names, types, the lenient shapes identity providers send), applying PATCH
//! operations, and projecting a resource onto `attributes` / `excludedAttributes`.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::filter::{AttrPath, PatchPath, parse_path};
use crate::schema::{Attr, Mutability, Returned, Type, find};

/// Attributes every resource has besides its schema's.
const COMMON: &[&str] = &["schemas", "id", "meta"];

/// The `externalId` common attribute, which clients write.
pub const EXTERNAL_ID: &str = "externalId";
/// The longest string attribute Steward keeps, in characters.
pub const MAX_STRING_CHARS: usize = 2048;
/// The most values a multi-valued attribute may hold.
pub const MAX_VALUES: usize = 100;

/// Err(`invalidValue`) for a string longer than [`MAX_STRING_CHARS`].
fn bounded(name: &str, s: &str) -> Result<(), ScimError> {
    if s.chars().count() > MAX_STRING_CHARS {
        return Err(ScimError::invalid_value(format!("{name} is longer than {MAX_STRING_CHARS} characters")));
    }
    Ok(())
}

/// Checks a whole resource a client sent (POST, PUT) and returns it with canonical names, read-only
/// attributes dropped, and unknown attributes ignored (as identity providers send more than a
/// service provider keeps).
pub fn normalize(input: &Value, attrs: &[Attr], schema_uri: &str) -> Result<Map<String, Value>, ScimError> {
    let obj = input.as_object().ok_or_else(|| ScimError::invalid_syntax("the resource must be a JSON object"))?;
    let mut out = Map::new();
    for (key, value) in obj {
        // `urn:…:User` may hold the core attributes too, as some clients write them.
        if key.eq_ignore_ascii_case(schema_uri) {
            if let Some(inner) = value.as_object() {
                for (k, v) in inner {
                    put_top(&mut out, k, v, attrs)?;
                }
            }
            continue;
        }
        put_top(&mut out, key, value, attrs)?;
    }
    check_required(&out, attrs)?;
    Ok(out)
}

fn put_top(out: &mut Map<String, Value>, key: &str, value: &Value, attrs: &[Attr]) -> Result<(), ScimError> {
    if COMMON.iter().any(|c| c.eq_ignore_ascii_case(key)) {
        return Ok(());
    }
    if key.eq_ignore_ascii_case(EXTERNAL_ID) {
        match value {
            Value::Null => {}
            Value::String(s) => {
                bounded(EXTERNAL_ID, s)?;
                out.insert(EXTERNAL_ID.to_owned(), Value::String(s.clone()));
            }
            _ => return Err(ScimError::invalid_value("externalId must be a string")),
        }
        return Ok(());
    }
    let Some(attr) = find(attrs, key) else { return Ok(()) };
    if attr.mutability == Mutability::ReadOnly {
        return Ok(());
    }
    if let Some(v) = coerce(attr, value)? {
        out.insert(attr.name.to_owned(), v);
    }
    Ok(())
}

/// Fails with `invalidValue` when a required attribute is missing.
pub fn check_required(doc: &Map<String, Value>, attrs: &[Attr]) -> Result<(), ScimError> {
    for a in attrs.iter().filter(|a| a.required) {
        if doc.get(a.name).is_none_or(is_unassigned) {
            return Err(ScimError::invalid_value(format!("{} is required", a.name)));
        }
    }
    Ok(())
}

/// Whether a value counts as not set (null, empty string, empty list or object).
pub fn is_unassigned(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A value for `attr`, in its type; `None` for null (unassigned).
fn coerce(attr: &Attr, value: &Value) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi {
        let items: Vec<Value> = match value {
            Value::Array(items) => items.clone(),
            // One value where a list belongs: taken as a list of one.
            other => vec![other.clone()],
        };
        if items.len() > MAX_VALUES {
            return Err(ScimError::invalid_value(format!("{} holds more than {MAX_VALUES} values", attr.name)));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            if let Some(v) = coerce_single(attr, item)? {
                out.push(v);
            }
        }
        fix_primary(&mut out);
        return Ok(if out.is_empty() { None } else { Some(Value::Array(out)) });
    }
    if value.is_array() {
        return Err(ScimError::invalid_value(format!("{} takes a single value, not a list", attr.name)));
    }
    coerce_single(attr, value)
}

fn coerce_single(attr: &Attr, value: &Value) -> Result<Option<Value>, ScimError> {
    let wrong = || ScimError::invalid_value(format!("{} has the wrong type", attr.name));
    match (attr.ty, value) {
        (_, Value::Null) => Ok(None),
        (Type::String | Type::Reference | Type::DateTime, Value::String(s)) => {
            bounded(attr.name, s)?;
            Ok(Some(Value::String(s.clone())))
        }
        (Type::Boolean, Value::Bool(b)) => Ok(Some(Value::Bool(*b))),
        // Entra ID sends booleans as "True" and "False".
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(Value::Bool(false))),
        (Type::Complex, Value::Object(obj)) => {
            let mut out = Map::new();
            for (k, v) in obj {
                let Some(sub) = find(attr.sub, k) else { continue };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(v) = coerce_single(sub, v)? {
                    out.insert(sub.name.to_owned(), v);
                }
            }
            Ok(if out.is_empty() { None } else { Some(Value::Object(out)) })
        }
        // A bare value for a multi-valued complex attribute is its `value`.
        (Type::Complex, Value::String(_) | Value::Bool(_) | Value::Number(_)) if find(attr.sub, "value").is_some() => {
            if let Value::String(s) = value {
                bounded(attr.name, s)?;
            }
            let mut out = Map::new();
            out.insert("value".into(), value.clone());
            Ok(Some(Value::Object(out)))
        }
        _ => Err(wrong()),
    }
}

/// At most one element is primary: the last one marked so wins.
fn fix_primary(items: &mut [Value]) {
    let last = items.iter().rposition(|v| v.get("primary") == Some(&Value::Bool(true)));
    if let Some(last) = last {
        for (i, item) in items.iter_mut().enumerate() {
            if i != last
                && let Some(obj) = item.as_object_mut()
                && obj.get("primary") == Some(&Value::Bool(true))
            {
                obj.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}

/// A PATCH operation as sent.
#[derive(Debug, Clone)]
pub struct PatchOperation {
    pub op: Op,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// A PATCH operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

/// Reads a PatchOp message.
pub fn parse_patch(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let ops = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PatchOp needs an Operations list"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    ops.iter()
        .map(|o| {
            let name = o.get("op").and_then(Value::as_str).unwrap_or("");
            let op = if name.eq_ignore_ascii_case("add") {
                Op::Add
            } else if name.eq_ignore_ascii_case("remove") {
                Op::Remove
            } else if name.eq_ignore_ascii_case("replace") {
                Op::Replace
            } else {
                return Err(ScimError::invalid_syntax(format!("unknown op {name:?}")));
            };
            let path = match o.get("path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(ScimError::invalid_path("path must be a string")),
            };
            Ok(PatchOperation { op, path, value: o.get("value").cloned() })
        })
        .collect()
}

/// Applies operations to a resource document in order; the result is checked again as a whole.
pub fn apply_patch(
    doc: &mut Map<String, Value>,
    ops: &[PatchOperation],
    attrs: &[Attr],
    schema_uri: &str,
) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            None => {
                if op.op == Op::Remove {
                    return Err(ScimError::new(ScimType::NoTarget, "remove needs a path"));
                }
                let value = op
                    .value
                    .as_ref()
                    .and_then(Value::as_object)
                    .ok_or_else(|| ScimError::invalid_value("an operation without a path needs an object value"))?;
                for (key, v) in value {
                    if key.eq_ignore_ascii_case(schema_uri) && v.is_object() {
                        for (k, inner) in v.as_object().into_iter().flatten() {
                            apply_one(doc, op.op, k, Some(inner), attrs, schema_uri)?;
                        }
                        continue;
                    }
                    if COMMON.iter().any(|c| c.eq_ignore_ascii_case(key)) {
                        continue;
                    }
                    apply_one(doc, op.op, key, Some(v), attrs, schema_uri)?;
                }
            }
            Some(path) => apply_one(doc, op.op, path, op.value.as_ref(), attrs, schema_uri)?,
        }
    }
    check_required(doc, attrs)
}

fn apply_one(
    doc: &mut Map<String, Value>,
    op: Op,
    path_text: &str,
    value: Option<&Value>,
    attrs: &[Attr],
    schema_uri: &str,
) -> Result<(), ScimError> {
    let path = parse_path(path_text).map_err(|e| ScimError::invalid_path(format!("{path_text:?}: {e}")))?;
    if let Some(uri) = &path.attr.uri
        && !uri.eq_ignore_ascii_case(schema_uri)
    {
        // An extension Steward does not keep: nothing to change.
        return Ok(());
    }
    if path.attr.name.eq_ignore_ascii_case(EXTERNAL_ID) && path.attr.sub.is_none() && path.filter.is_none() {
        match (op, value) {
            (Op::Remove, _) | (_, Some(Value::Null)) => {
                doc.remove(EXTERNAL_ID);
            }
            (_, Some(Value::String(s))) => {
                doc.insert(EXTERNAL_ID.into(), Value::String(s.clone()));
            }
            _ => return Err(ScimError::invalid_value("externalId must be a string")),
        }
        return Ok(());
    }
    let Some(attr) = find(attrs, &path.attr.name) else {
        if COMMON.iter().any(|c| c.eq_ignore_ascii_case(&path.attr.name)) {
            return Err(ScimError::new(ScimType::Mutability, format!("{} cannot be changed", path.attr.name)));
        }
        return Err(ScimError::invalid_path(format!("no attribute {:?}", path.attr.name)));
    };
    check_writable(attr)?;
    let sub_name = path.attr.sub.as_deref().or(path.sub.as_deref());
    let sub = match sub_name {
        Some(s) => {
            let sub = find(attr.sub, s).ok_or_else(|| ScimError::invalid_path(format!("no sub-attribute {s:?}")))?;
            check_writable(sub)?;
            Some(sub)
        }
        None => None,
    };
    let key = attr.name.to_owned();
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::invalid_value("add and replace need a value"));
    }
    match (&path.filter, sub) {
        (None, None) => set_whole(doc, op, attr, &key, value),
        (None, Some(sub)) if !attr.multi => {
            let entry = doc.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
            let obj = entry.as_object_mut().ok_or_else(|| ScimError::invalid_path("not a complex attribute"))?;
            set_sub(obj, op, sub, value)?;
            if obj.is_empty() {
                doc.remove(&key);
            }
            Ok(())
        }
        (None, Some(sub)) => {
            // `emails.value` without a filter: every element.
            let Some(Value::Array(items)) = doc.get_mut(&key) else {
                return if op == Op::Remove {
                    Ok(())
                } else {
                    Err(ScimError::new(ScimType::NoTarget, "no values to change"))
                };
            };
            for item in items.iter_mut() {
                if let Some(obj) = item.as_object_mut() {
                    set_sub(obj, op, sub, value)?;
                }
            }
            Ok(())
        }
        (Some(filter), sub) => {
            if !attr.multi {
                return Err(ScimError::invalid_path(format!("{} is not multi-valued", attr.name)));
            }
            let case_exact = case_exact_of(attr);
            let items = match doc.get_mut(&key) {
                Some(Value::Array(items)) => items,
                _ => {
                    doc.insert(key.clone(), Value::Array(Vec::new()));
                    doc.get_mut(&key).and_then(Value::as_array_mut).ok_or_else(ScimError::internal)?
                }
            };
            let matched: Vec<usize> =
                items.iter().enumerate().filter(|(_, v)| filter.matches(v, case_exact)).map(|(i, _)| i).collect();
            match op {
                Op::Remove => {
                    if let Some(sub) = sub {
                        for i in matched {
                            if let Some(obj) = items[i].as_object_mut() {
                                obj.remove(sub.name);
                            }
                        }
                    } else {
                        let mut i = 0;
                        items.retain(|_| {
                            let keep = !matched.contains(&i);
                            i += 1;
                            keep
                        });
                    }
                }
                Op::Add | Op::Replace if matched.is_empty() => {
                    // RFC 7644 §3.5.2.3: a replace whose value filter matches nothing fails.
                    if op == Op::Replace {
                        return Err(ScimError::new(ScimType::NoTarget, format!("no value matches {path_text:?}")));
                    }
                    // Entra ID adds `emails[type eq "work"].value` to a user with no work email:
                    // the element is made from the filter's equalities.
                    let mut element = equalities(filter);
                    match sub {
                        Some(sub) => set_sub(&mut element, Op::Replace, sub, value)?,
                        None => {
                            if let Some(Value::Object(v)) = value {
                                element.extend(v.clone());
                            }
                        }
                    }
                    let element = coerce_single(attr, &Value::Object(element))?;
                    items.extend(element);
                }
                Op::Add | Op::Replace => {
                    for i in matched {
                        match sub {
                            Some(sub) => {
                                if let Some(obj) = items[i].as_object_mut() {
                                    set_sub(obj, Op::Replace, sub, value)?;
                                }
                            }
                            None => {
                                let replacement = coerce_single(attr, value.unwrap_or(&Value::Null))?;
                                if let Some(new) = replacement {
                                    if op == Op::Add
                                        && let (Some(old), Some(new)) = (items[i].as_object_mut(), new.as_object())
                                    {
                                        old.extend(new.clone());
                                    } else {
                                        items[i] = new;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            normalize_multi(doc, attr)
        }
    }
}

fn check_writable(attr: &Attr) -> Result<(), ScimError> {
    if attr.mutability == Mutability::ReadOnly {
        return Err(ScimError::new(ScimType::Mutability, format!("{} is read-only", attr.name)));
    }
    Ok(())
}

/// Case rules of a multi-valued attribute's sub-attributes, for value filters.
fn case_exact_of(attr: &Attr) -> crate::filter::CaseExact {
    // Only members' ids are case-exact among the multi-valued attributes served.
    if attr.name == "members" { |_: &AttrPath| true } else { |p: &AttrPath| p.name.eq_ignore_ascii_case("$ref") }
}

fn equalities(filter: &crate::filter::Filter) -> Map<String, Value> {
    use crate::filter::{CompareOp, Filter};
    let mut out = Map::new();
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value } if path.sub.is_none() => {
            out.insert(path.name.clone(), value.to_json());
        }
        Filter::And(l, r) => {
            out.extend(equalities(l));
            out.extend(equalities(r));
        }
        _ => {}
    }
    out
}

fn set_whole(
    doc: &mut Map<String, Value>,
    op: Op,
    attr: &Attr,
    key: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if op == Op::Remove {
        if attr.multi
            && let Some(Value::Array(wanted)) = value
        {
            // Entra ID removes members by listing them in the value.
            let wanted: Vec<Value> = wanted.iter().filter_map(|w| coerce_single(attr, w).ok().flatten()).collect();
            if let Some(Value::Array(items)) = doc.get_mut(key) {
                items.retain(|item| !wanted.iter().any(|w| same_element(item, w)));
            }
            return normalize_multi(doc, attr);
        }
        doc.remove(key);
        return Ok(());
    }
    let Some(new) = coerce(attr, value.unwrap_or(&Value::Null))? else {
        if op == Op::Replace {
            doc.remove(key);
        }
        return Ok(());
    };
    match (op, attr.multi, doc.get_mut(key)) {
        (Op::Add, true, Some(Value::Array(items))) => {
            let new_items = new.as_array().cloned().unwrap_or_default();
            if new_items.iter().any(|v| v.get("primary") == Some(&Value::Bool(true))) {
                for item in items.iter_mut() {
                    if let Some(obj) = item.as_object_mut() {
                        obj.remove("primary");
                    }
                }
            }
            for v in new_items {
                if let Some(existing) = items.iter_mut().find(|i| same_element(i, &v)) {
                    if let (Some(e), Some(n)) = (existing.as_object_mut(), v.as_object()) {
                        e.extend(n.clone());
                    }
                } else {
                    items.push(v);
                }
            }
            normalize_multi(doc, attr)
        }
        // Complex single-valued: the given sub-attributes replace theirs, the others stay.
        (Op::Add | Op::Replace, false, Some(Value::Object(old))) if attr.ty == Type::Complex => {
            if let Some(n) = new.as_object() {
                old.extend(n.clone());
            }
            Ok(())
        }
        _ => {
            doc.insert(key.to_owned(), new);
            Ok(())
        }
    }
}

fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => match (x.as_str(), y.as_str()) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => x == y,
        },
        _ => a == b,
    }
}

fn normalize_multi(doc: &mut Map<String, Value>, attr: &Attr) -> Result<(), ScimError> {
    if let Some(Value::Array(items)) = doc.get_mut(attr.name) {
        fix_primary(items);
        if items.is_empty() {
            doc.remove(attr.name);
        }
    }
    Ok(())
}

fn set_sub(obj: &mut Map<String, Value>, op: Op, sub: &Attr, value: Option<&Value>) -> Result<(), ScimError> {
    if op == Op::Remove {
        obj.remove(sub.name);
        return Ok(());
    }
    match coerce_single(sub, value.unwrap_or(&Value::Null))? {
        Some(v) => {
            obj.insert(sub.name.to_owned(), v);
        }
        None => {
            obj.remove(sub.name);
        }
    }
    Ok(())
}

/// Which attributes a response carries: `attributes` (only these, and those always returned)
/// or `excludedAttributes` (all by default but these).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Vec<AttrPath>,
    exclude: Vec<AttrPath>,
}

impl Projection {
    /// Parses the comma-separated lists of the query or of a search request.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        let list = |s: Option<&str>| -> Result<Vec<AttrPath>, ScimError> {
            s.unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|p| {
                    parse_path(p)
                        .map(|pp: PatchPath| pp.attr)
                        .map_err(|e| ScimError::invalid_value(format!("attribute {p:?}: {e}")))
                })
                .collect()
        };
        Ok(Projection { include: list(attributes)?, exclude: list(excluded)? })
    }

    /// Cuts a full resource down to what was asked for.
    pub fn apply(&self, mut resource: Map<String, Value>, attrs: &[Attr]) -> Map<String, Value> {
        let always =
            |k: &str| ["schemas", "id"].contains(&k) || find(attrs, k).is_some_and(|a| a.returned == Returned::Always);
        if !self.include.is_empty() {
            let mut out = Map::new();
            for (k, v) in resource {
                if always(&k) {
                    out.insert(k, v);
                    continue;
                }
                let wanted: Vec<&AttrPath> = self.include.iter().filter(|p| p.name.eq_ignore_ascii_case(&k)).collect();
                if wanted.is_empty() {
                    continue;
                }
                if wanted.iter().any(|p| p.sub.is_none()) {
                    out.insert(k, v);
                } else {
                    let subs: Vec<&str> = wanted.iter().filter_map(|p| p.sub.as_deref()).collect();
                    out.insert(k, keep_subs(v, &subs));
                }
            }
            return out;
        }
        for p in &self.exclude {
            let Some(key) = resource.keys().find(|k| k.eq_ignore_ascii_case(&p.name)).cloned() else { continue };
            if always(&key) {
                continue;
            }
            match &p.sub {
                None => {
                    resource.remove(&key);
                }
                Some(sub) => {
                    if let Some(v) = resource.get_mut(&key) {
                        drop_sub(v, sub);
                    }
                }
            }
        }
        resource
    }
}

fn keep_subs(v: Value, subs: &[&str]) -> Value {
    match v {
        Value::Object(o) => {
            Value::Object(o.into_iter().filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|i| keep_subs(i, subs)).collect()),
        other => other,
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Object(o) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
        Value::Array(items) => items.iter_mut().for_each(|i| drop_sub(i, sub)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{USER_ATTRS, USER_SCHEMA};

    fn user() -> Map<String, Value> {
        normalize(
            &json!({
                "schemas": [USER_SCHEMA],
                "UserName": "bjensen@example.com",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
                "active": "True",
                "phoneNumbers": [{"value": "555"}],
                "meta": {"created": "x"}
            }),
            USER_ATTRS,
            USER_SCHEMA,
        )
        .unwrap()
    }

    fn patch(doc: &mut Map<String, Value>, ops: Value) -> Result<(), ScimError> {
        let ops = parse_patch(&json!({"schemas": [crate::schema::PATCH_OP], "Operations": ops}))?;
        apply_patch(doc, &ops, USER_ATTRS, USER_SCHEMA)
    }

    #[test]
    fn normalizing_canonicalizes_coerces_and_drops_what_is_not_kept() {
        let u = user();
        assert_eq!(u["userName"], "bjensen@example.com");
        assert_eq!(u["active"], true);
        assert!(!u.contains_key("phoneNumbers") && !u.contains_key("meta"));
        let missing = normalize(&json!({"emails": [{"value": "a@b.c"}]}), USER_ATTRS, USER_SCHEMA).unwrap_err();
        assert_eq!(missing.scim_type, Some(ScimType::InvalidValue));
        let wrong = normalize(&json!({"userName": "x", "emails": "a@b.c", "active": 3}), USER_ATTRS, USER_SCHEMA);
        assert!(wrong.is_err());
    }

    #[test]
    fn entra_shapes() {
        let mut u = user();
        patch(&mut u, json!([{"op": "Replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(u["active"], false);
        patch(&mut u, json!([{"op": "replace", "value": {"active": true, "name.givenName": "Babs"}}])).unwrap();
        assert_eq!((u["active"].clone(), u["name"]["givenName"].clone()), (json!(true), json!("Babs")));
        assert_eq!(u["name"]["familyName"], "Jensen");
        patch(&mut u, json!([{"op": "Add", "path": "emails[type eq \"home\"].value", "value": "b@home.example"}]))
            .unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 2);
        assert_eq!(u["emails"][1], json!({"type": "home", "value": "b@home.example"}));
        patch(&mut u, json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"}]))
            .unwrap();
        assert_eq!(u["emails"][0]["value"], "new@example.com");
        patch(&mut u, json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])).unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 1);
        patch(
            &mut u,
            json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "x"}}]),
        )
        .unwrap();
    }

    #[test]
    fn bad_patches_are_refused() {
        let mut u = user();
        let e = patch(&mut u, json!([{"op": "remove", "path": "userName"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = patch(&mut u, json!([{"op": "remove"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
        let e = patch(&mut u, json!([{"op": "replace", "path": "id", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::Mutability));
        let e = patch(&mut u, json!([{"op": "replace", "path": "emails[", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
        let e = patch(&mut u, json!([{"op": "replace", "path": "emails[type eq \"x\"]", "value": {}}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
        let e = patch(&mut u, json!([{"op": "frobnicate", "path": "title", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn add_merges_multi_values_and_keeps_one_primary() {
        let mut u = user();
        patch(&mut u, json!([{"op": "add", "path": "emails", "value": [{"value": "c@d.e", "primary": true}]}]))
            .unwrap();
        let emails = u["emails"].as_array().unwrap();
        assert_eq!(emails.len(), 2);
        assert_eq!(emails.iter().filter(|e| e["primary"] == true).count(), 1);
        assert_eq!(emails[1]["primary"], true);
    }

    #[test]
    fn projection() {
        let mut full = user();
        full.insert("id".into(), json!("1"));
        let only = Projection::parse(Some("name.givenName"), None).unwrap().apply(full.clone(), USER_ATTRS);
        assert_eq!(Value::Object(only), json!({"id": "1", "name": {"givenName": "Barbara"}}));
        let without = Projection::parse(None, Some("emails,name.familyName")).unwrap().apply(full, USER_ATTRS);
        assert!(!without.contains_key("emails"));
        assert_eq!(without["name"], json!({"givenName": "Barbara"}));
    }

    #[test]
    fn a_replace_whose_filter_matches_nothing_has_no_target() {
        let mut u = normalize(
            &json!({"userName": "a", "active": true, "emails": [{"value": "a@work.example", "type": "work"}]}),
            USER_ATTRS,
            USER_SCHEMA,
        )
        .unwrap();
        for path in ["emails[type eq \"home\"].value", "emails[type eq \"home\"]"] {
            let value =
                if path.ends_with("value") { json!("b@home.example") } else { json!({"value": "b@home.example"}) };
            let e = patch(&mut u, json!([{"op": "replace", "path": path, "value": value}])).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::NoTarget), "{path}");
        }
        assert_eq!(u["emails"].as_array().unwrap().len(), 1, "nothing was added");
    }
}
