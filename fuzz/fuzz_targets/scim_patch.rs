//! SCIM resources and PATCH messages from arbitrary JSON: normalizing and patching never panic,
//! and a patched resource still normalizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use steward_scim::resource::{apply_patch, normalize, parse_patch};
use steward_scim::schema::{USER_ATTRS, USER_SCHEMA};

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else { return };
    let [resource, message] = parts.as_slice() else { return };
    let Ok(mut doc) = normalize(resource, USER_ATTRS, USER_SCHEMA) else { return };
    let Ok(ops) = parse_patch(message) else { return };
    if apply_patch(&mut doc, &ops, USER_ATTRS, USER_SCHEMA).is_ok() {
        normalize(&Value::Object(doc), USER_ATTRS, USER_SCHEMA).expect("a patched resource is still valid");
    }
});
