//! How a custom role's permissions are kept, shared by both backends.

use steward_core::Permission;

pub(crate) fn permissions_text(permissions: &[Permission]) -> String {
    let mut names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}
