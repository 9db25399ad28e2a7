//! What both backends share: encoding of times and ids, and the reading and writing of the
//! store's rows by the types of their fields ([`FromColumn`], [`ToColumn`]), written once against
//! [`DbRow`] and [`Arg`].

use std::str::FromStr;

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use steward_core::license::License;
use steward_core::{AuditRecord, InstanceRole, OrgRole, TeamRole, UserStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::*;
use crate::sql::stmt::{Arg, Kind};
use crate::{Constraint, StoreError, StoreResult};

/// A column type both backends decode.
pub(crate) trait Col: Sized {
    fn from_sqlite(row: &SqliteRow, col: &str) -> Result<Self, sqlx::Error>;
    fn from_pg(row: &PgRow, col: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! col {
    ($($t:ty),*) => {$(
        impl Col for $t {
            fn from_sqlite(row: &SqliteRow, col: &str) -> Result<Self, sqlx::Error> {
                row.try_get(col)
            }
            fn from_pg(row: &PgRow, col: &str) -> Result<Self, sqlx::Error> {
                row.try_get(col)
            }
        }
    )*};
}
col!(String, Option<String>, i64, Option<i64>, bool);

/// A result row of either backend.
pub(crate) trait DbRow {
    fn column<T: Col>(&self, col: &str) -> StoreResult<T>;
}

impl DbRow for SqliteRow {
    fn column<T: Col>(&self, col: &str) -> StoreResult<T> {
        T::from_sqlite(self, col).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}

impl DbRow for PgRow {
    fn column<T: Col>(&self, col: &str) -> StoreResult<T> {
        T::from_pg(self, col).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub(crate) fn from_micros(m: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1000).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn opt_micros(m: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    m.map(from_micros).transpose()
}

pub(crate) fn parse<T: FromStr>(text: &str, what: &str) -> StoreResult<T> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("{what}: {text:?}")))
}

pub(crate) fn opt_id<T: FromStr>(text: Option<String>, what: &str) -> StoreResult<Option<T>> {
    text.map(|t| parse(&t, what)).transpose()
}

/// Reads a column of a row of either backend, decoded by the type asked for.
pub(crate) fn get<T: FromColumn>(row: &impl DbRow, col: &str) -> StoreResult<T> {
    T::from_column(row, col)
}

/// A stored row, read from a result row of either backend column by column, each column named
/// as its field and decoded by the field's type ([`FromColumn`]); `model.rs` declares its rows
/// with `stored!`, which writes this once for each.
pub(crate) trait FromRow: Sized {
    fn from_row(row: &impl DbRow) -> StoreResult<Self>;
}

/// Declares a stored row of [`crate::model`], and reads it from a result row of either backend
/// ([`FromRow`]): each field from the column of its name, decoded by its type ([`FromColumn`]).
/// A row kept whole in one table names it (`#[table = "…"]`, first) and is written the same way
/// ([`crate::sql::Table`]).
macro_rules! stored {
    // A row kept whole in one table is written by the same names ([`ToColumn`]).
    (#[table = $table:literal] $(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $crate::rows::stored! { $(#[$meta])* pub struct $name { $($(#[$field_meta])* pub $field: $ty,)* } }

        impl $crate::sql::Table for $name {
            const TABLE: &'static str = $table;

            fn columns(&self) -> $crate::StoreResult<$crate::sql::stmt::Columns> {
                Ok($crate::sql::stmt::Columns::default()$(.set(stringify!($field), $crate::rows::ToColumn::to_column(&self.$field)?))*)
            }
        }
    };
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $crate::rows::FromRow for $name {
            fn from_row(row: &impl $crate::rows::DbRow) -> $crate::StoreResult<Self> {
                Ok($name { $($field: $crate::rows::FromColumn::from_column(row, stringify!($field))?,)* })
            }
        }
    };
}
pub(crate) use stored;

/// A field's value from its column: text, numbers and flags as stored, counts as non-negative,
/// instants from microseconds, ids and the names of closed sets parsed from text, documents from
/// JSON, and role and scope lists from their separated text.
pub(crate) trait FromColumn: Sized {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self>;
}

/// A field's value for its column, as [`FromColumn`] reads it back: each type's rule below is
/// written beside its reading.
pub(crate) trait ToColumn {
    fn to_column(&self) -> StoreResult<Arg>;
}

macro_rules! as_stored {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
                row.column(col)
            }
        }
        impl ToColumn for $t {
            fn to_column(&self) -> StoreResult<Arg> {
                Ok(self.clone().into())
            }
        }
    )*};
}
as_stored!(String, Option<String>, i64, Option<i64>, bool);

macro_rules! parsed {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
                parse(&get::<String>(row, col)?, col)
            }
        }
        impl FromColumn for Option<$t> {
            fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
                opt_id(get(row, col)?, col)
            }
        }
        impl ToColumn for $t {
            fn to_column(&self) -> StoreResult<Arg> {
                Ok(Arg::Text(self.to_string()))
            }
        }
        impl ToColumn for Option<$t> {
            fn to_column(&self) -> StoreResult<Arg> {
                Ok(self.as_ref().map_or(Arg::Null(Kind::Text), |v| Arg::Text(v.to_string())))
            }
        }
    )*};
}
parsed!(
    steward_core::UserId,
    steward_core::OrgId,
    steward_core::TeamId,
    steward_core::SessionId,
    steward_core::TokenId,
    Uuid,
    UserStatus,
    steward_core::UserKind,
    steward_core::OrgState,
    OrgRole,
    TeamRole,
    steward_core::governance::StatusSetter
);

macro_rules! json {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
                serde_json::from_str(&get::<String>(row, col)?).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
            }
        }
        impl ToColumn for $t {
            fn to_column(&self) -> StoreResult<Arg> {
                json_text(self).map(Arg::Text)
            }
        }
    )*};
}
json!(
    License,
    std::collections::BTreeMap<String, bool>,
    Vec<String>,
    Vec<steward_core::TeamId>,
    serde_json::Value,
    SsoClaims,
    Vec<RoleMappingRow>
);

impl FromColumn for u64 {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
        Ok(count(get(row, col)?))
    }
}

impl ToColumn for u64 {
    fn to_column(&self) -> StoreResult<Arg> {
        Ok(Arg::Int(amount(*self)))
    }
}

impl FromColumn for OffsetDateTime {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
        let micros: i64 = get(row, col)?;
        from_micros(micros).map_err(|_| StoreError::Corrupt(format!("{col}: {micros} is not an instant")))
    }
}

impl FromColumn for Option<OffsetDateTime> {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
        match get::<Option<i64>>(row, col)? {
            Some(_) => OffsetDateTime::from_column(row, col).map(Some),
            None => Ok(None),
        }
    }
}

impl ToColumn for OffsetDateTime {
    fn to_column(&self) -> StoreResult<Arg> {
        Ok(Arg::Int(micros(*self)))
    }
}

impl ToColumn for Option<OffsetDateTime> {
    fn to_column(&self) -> StoreResult<Arg> {
        Ok(self.map(micros).into())
    }
}

/// The items of a list kept as text separated by `sep` (none when empty or NULL), in order.
fn separated<T>(row: &impl DbRow, col: &str, sep: char, item: impl Fn(&str) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    let text: Option<String> = get(row, col)?;
    text.unwrap_or_default().split(sep).filter(|s| !s.is_empty()).map(item).collect()
}

/// A user's instance roles, joined with commas by the database's aggregate; sorted. (Each role
/// is a row of its own, so there is no column to write them to.)
impl FromColumn for Vec<InstanceRole> {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
        let mut roles = separated(row, col, ',', |r| {
            InstanceRole::parse(r).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
        })?;
        roles.sort();
        Ok(roles)
    }
}

/// A custom role's permissions, joined with commas ([`crate::security_rows::permissions_text`]).
impl FromColumn for Vec<steward_core::Permission> {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
        separated(row, col, ',', |p| parse(p, col))
    }
}

impl ToColumn for Vec<steward_core::Permission> {
    fn to_column(&self) -> StoreResult<Arg> {
        Ok(Arg::Text(crate::security_rows::permissions_text(self)))
    }
}

/// An API token's scopes, separated by spaces as OAuth writes them ([`scopes_text`]).
impl FromColumn for Vec<steward_core::TokenScope> {
    fn from_column(row: &impl DbRow, col: &str) -> StoreResult<Self> {
        separated(row, col, ' ', |s| parse(s, col))
    }
}

impl ToColumn for Vec<steward_core::TokenScope> {
    fn to_column(&self) -> StoreResult<Arg> {
        Ok(Arg::Text(scopes_text(self)))
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut out = String::from("%");
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn json_text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// How a token's scopes are kept: space-separated, as OAuth writes them.
pub(crate) fn scopes_text(scopes: &[steward_core::TokenScope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// An audit event (a type of the core's, so read here rather than declared with `stored!`).
impl FromRow for AuditRecord {
    fn from_row(row: &impl DbRow) -> StoreResult<Self> {
        Ok(AuditRecord {
            id: get(row, "id")?,
            seq: get(row, "seq")?,
            at: get(row, "at")?,
            kind: get(row, "kind")?,
            actor_id: get(row, "actor_id")?,
            impersonator_id: get(row, "impersonator_id")?,
            target_type: get(row, "target_type")?,
            target_id: get(row, "target_id")?,
            org_id: get(row, "org_id")?,
            detail: get(row, "detail")?,
            personal: get(row, "personal")?,
            personal_digest: get(row, "personal_digest")?,
            prev_hash: get(row, "prev_hash")?,
            hash: get(row, "hash")?,
        })
    }
}

/// Ok when exactly one row was changed; a conditional update that matched nothing lost a race.
pub(crate) fn expect_one(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 1 { Ok(()) } else { Err(StoreError::Conflict(Constraint::VersionMismatch)) }
}

pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Amounts are kept as BIGINT; anything above `i64::MAX` is refused before it gets here.
pub(crate) fn amount(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A decision's facts: the membership when there is one, usage 0 before the period's first consume.
impl FromRow for CheckFacts {
    fn from_row(row: &impl DbRow) -> StoreResult<Self> {
        let role: Option<OrgRole> = get(row, "role")?;
        let membership = match role {
            Some(role) => Some((role, get::<bool>(row, "dormant")?)),
            None => None,
        };
        let used = |col| Ok::<_, StoreError>(count(get::<Option<i64>>(row, col)?.unwrap_or(0)));
        Ok(CheckFacts {
            status: get(row, "status")?,
            membership,
            license: get(row, "license")?,
            org_created_at: get(row, "org_created_at")?,
            operations_used: used("operations_used")?,
            transfer_used: used("transfer_used")?,
        })
    }
}

/// What SCIM keeps of a user, joined beside the user's row under prefixed names; none when the
/// join found nothing.
pub(crate) fn scim_user_from_row(row: &impl DbRow) -> StoreResult<Option<ScimUserRow>> {
    let Some(user_id) = get(row, "s_user_id")? else { return Ok(None) };
    Ok(Some(ScimUserRow {
        user_id,
        user_name: get(row, "scim_user_name")?,
        external_id: get(row, "s_external_id")?,
        attrs: get(row, "s_attrs")?,
        hidden_at: get(row, "s_hidden_at")?,
        updated_at: get(row, "s_updated_at")?,
    }))
}

pub(crate) fn scim_group_from_row(row: &impl DbRow) -> StoreResult<ScimGroupRow> {
    Ok(ScimGroupRow {
        team: TeamRow::from_row(row)?,
        org_name: get(row, "org_name")?,
        external_id: get(row, "g_external_id")?,
    })
}
