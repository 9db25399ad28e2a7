//! Request bodies of the API decoded from arbitrary bytes, as `ApiJson` decodes them: never a
//! panic, and a refusal always names a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward::extract::parse_json;
use steward::routes::{auth, deprovision, orgs, usage, users};

fn check<T: serde::de::DeserializeOwned>(data: &[u8]) {
    if let Err(e) = parse_json::<T>(data) {
        let problem = e.problem();
        assert_eq!(problem.status, 400);
        assert!(problem.errors.as_ref().is_some_and(|f| !f.is_empty()), "a refusal names its field");
    }
}

fuzz_target!(|data: &[u8]| {
    check::<users::NewUser>(data);
    check::<users::UserPatch>(data);
    check::<orgs::NewOrg>(data);
    check::<orgs::OrgPatch>(data);
    check::<orgs::TransferRequest>(data);
    check::<usage::ConsumeRequest>(data);
    check::<usage::CheckRequest>(data);
    check::<deprovision::DeprovisionRequest>(data);
    check::<auth::LoginRequest>(data);
    check::<serde_json::Value>(data);
});
