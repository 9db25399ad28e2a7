//! Row mapping for two-factor enrolments and custom roles, shared by both backends.

use steward_core::Permission;

use crate::StoreResult;
use crate::model::{RoleRow, TotpRow};
use crate::rows::{DbRow, from_micros, get, opt_micros, parse};

pub(crate) fn totp_from_row(row: &impl DbRow) -> StoreResult<TotpRow> {
    Ok(TotpRow {
        user_id: parse(&get::<String>(row, "user_id")?, "user_id")?,
        secret_sealed: get(row, "secret_sealed")?,
        confirmed_at: opt_micros(get(row, "confirmed_at")?)?,
        last_step: get(row, "last_step")?,
        created_at: from_micros(get(row, "created_at")?)?,
    })
}

pub(crate) fn permissions_text(permissions: &[Permission]) -> String {
    let mut names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

pub(crate) fn role_from_row(row: &impl DbRow) -> StoreResult<RoleRow> {
    let text: String = get(row, "permissions")?;
    let permissions = text
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| parse::<Permission>(p, "permission"))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(RoleRow {
        name: get(row, "name")?,
        permissions,
        created_at: from_micros(get(row, "created_at")?)?,
        updated_at: from_micros(get(row, "updated_at")?)?,
        version: get(row, "version")?,
    })
}
