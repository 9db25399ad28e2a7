//! Filters and `sortBy` mapped onto the store's conditions over indexed columns. An attribute
//! Steward cannot filter on in the database is refused with `invalidFilter`, never evaluated by
//! loading rows.

use steward_store::{Cond, GroupField, Lit, Op, UserField};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ScimError;
use crate::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::schema::{GROUP_SCHEMA, USER_SCHEMA};

/// The field a user attribute path names.
fn user_field(path: &AttrPath) -> Option<UserField> {
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    Some(match (name.as_str(), sub.as_deref()) {
        ("id", None) => UserField::Id,
        ("username", None) => UserField::UserName,
        ("externalid", None) => UserField::ExternalId,
        ("emails", None | Some("value")) => UserField::Email,
        ("displayname", None) => UserField::DisplayName,
        ("active", None) => UserField::Active,
        ("meta", Some("created")) => UserField::Created,
        ("meta", Some("lastmodified")) => UserField::LastModified,
        _ => return None,
    })
}

/// The field a group attribute path names; `scoped` when the client sees one org's teams.
fn group_field(path: &AttrPath, scoped: bool) -> Option<GroupField> {
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    Some(match (name.as_str(), sub.as_deref()) {
        ("id", None) => GroupField::Id,
        ("displayname", None) if scoped => GroupField::TeamName,
        ("displayname", None) => GroupField::QualifiedName,
        ("externalid", None) => GroupField::ExternalId,
        ("members", None | Some("value")) => GroupField::Member,
        ("meta", Some("created")) => GroupField::Created,
        ("meta", Some("lastmodified")) => GroupField::LastModified,
        _ => return None,
    })
}

fn op(op: CompareOp) -> Op {
    match op {
        CompareOp::Eq => Op::Eq,
        CompareOp::Ne => Op::Ne,
        CompareOp::Co => Op::Co,
        CompareOp::Sw => Op::Sw,
        CompareOp::Ew => Op::Ew,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    }
}

fn check_uri(path: &AttrPath, schema: &str) -> Result<(), ScimError> {
    match &path.uri {
        Some(uri) if !uri.eq_ignore_ascii_case(schema) => {
            Err(ScimError::invalid_filter(format!("{path}: Steward keeps no attributes of {uri}")))
        }
        _ => Ok(()),
    }
}

fn literal(path: &AttrPath, value: &CompValue, is_time: bool, is_bool: bool) -> Result<Lit, ScimError> {
    Ok(match value {
        CompValue::Null => Lit::Null,
        CompValue::String(s) if is_time => Lit::Time(
            OffsetDateTime::parse(s, &Rfc3339)
                .map_err(|_| ScimError::invalid_filter(format!("{path} compares with a dateTime")))?,
        ),
        CompValue::Bool(b) if is_bool => Lit::Bool(*b),
        CompValue::String(s) if !is_time && !is_bool => Lit::Text(s.clone()),
        _ => return Err(ScimError::invalid_filter(format!("{path} cannot be compared with {value}"))),
    })
}

fn map<F: Copy>(
    filter: &Filter,
    field: &dyn Fn(&AttrPath) -> Option<F>,
    kind: &dyn Fn(F) -> (bool, bool),
    schema: &str,
) -> Result<Cond<F>, ScimError> {
    let unknown = |p: &AttrPath| ScimError::invalid_filter(format!("Steward cannot filter on {p}"));
    Ok(match filter {
        Filter::And(l, r) => Cond::And(Box::new(map(l, field, kind, schema)?), Box::new(map(r, field, kind, schema)?)),
        Filter::Or(l, r) => Cond::Or(Box::new(map(l, field, kind, schema)?), Box::new(map(r, field, kind, schema)?)),
        Filter::Not(inner) => Cond::Not(Box::new(map(inner, field, kind, schema)?)),
        Filter::Present(path) => {
            check_uri(path, schema)?;
            Cond::Present(field(path).ok_or_else(|| unknown(path))?)
        }
        Filter::Compare { path, op: o, value } => {
            check_uri(path, schema)?;
            let f = field(path).ok_or_else(|| unknown(path))?;
            let (is_time, is_bool) = kind(f);
            if is_bool && !matches!(o, CompareOp::Eq | CompareOp::Ne) {
                return Err(ScimError::invalid_filter(format!("{path} is a boolean: only eq and ne apply")));
            }
            Cond::Cmp(f, op(*o), literal(path, value, is_time, is_bool)?)
        }
        // `emails[value eq "x"]` is `emails.value eq "x"` for the one address Steward indexes;
        // `members[value eq "id"]` likewise.
        Filter::ValuePath { path, filter } => {
            check_uri(path, schema)?;
            let inner = |p: &AttrPath| {
                if p.uri.is_some() || p.sub.is_some() {
                    return None;
                }
                field(&AttrPath { uri: None, name: path.name.clone(), sub: Some(p.name.clone()) })
            };
            map(filter, &inner, kind, schema)?
        }
    })
}

/// A user filter as a store condition.
pub fn user_cond(filter: &Filter) -> Result<Cond<UserField>, ScimError> {
    let kind = |f: UserField| (matches!(f, UserField::Created | UserField::LastModified), f == UserField::Active);
    map(filter, &user_field, &kind, USER_SCHEMA)
}

/// A group filter as a store condition.
pub fn group_cond(filter: &Filter, scoped: bool) -> Result<Cond<GroupField>, ScimError> {
    let kind = |f: GroupField| (matches!(f, GroupField::Created | GroupField::LastModified), false);
    map(filter, &|p| group_field(p, scoped), &kind, GROUP_SCHEMA)
}

/// The field of a user `sortBy`.
pub fn user_sort(sort_by: &str) -> Result<UserField, ScimError> {
    let path = crate::filter::parse_path(sort_by).map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?;
    check_uri(&path.attr, USER_SCHEMA)?;
    user_field(&path.attr).ok_or_else(|| ScimError::invalid_value(format!("Steward cannot sort by {sort_by}")))
}

/// The field of a group `sortBy`.
pub fn group_sort(sort_by: &str, scoped: bool) -> Result<GroupField, ScimError> {
    let path = crate::filter::parse_path(sort_by).map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?;
    check_uri(&path.attr, GROUP_SCHEMA)?;
    group_field(&path.attr, scoped).ok_or_else(|| ScimError::invalid_value(format!("Steward cannot sort by {sort_by}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_filter;

    fn user(f: &str) -> Result<Cond<UserField>, ScimError> {
        user_cond(&parse_filter(f).unwrap())
    }

    #[test]
    fn okta_and_entra_lookups_map_to_indexed_fields() {
        assert_eq!(
            user(r#"userName eq "Bob@Example.com""#).unwrap(),
            Cond::Cmp(UserField::UserName, Op::Eq, Lit::Text("Bob@Example.com".into()))
        );
        assert_eq!(
            user(r#"externalId eq "00u1""#).unwrap(),
            Cond::Cmp(UserField::ExternalId, Op::Eq, Lit::Text("00u1".into()))
        );
        assert_eq!(
            user(r#"emails[type eq "work" and value eq "a@b.c"]"#).unwrap_err().scim_type,
            Some(crate::ScimType::InvalidFilter)
        );
        assert!(matches!(user(r#"emails[value eq "a@b.c"]"#).unwrap(), Cond::Cmp(UserField::Email, Op::Eq, _)));
        assert!(matches!(
            user(r#"meta.lastModified gt "2024-01-01T00:00:00Z""#).unwrap(),
            Cond::Cmp(UserField::LastModified, Op::Gt, Lit::Time(_))
        ));
        assert!(matches!(
            group_cond(&parse_filter(r#"members[value eq "x"]"#).unwrap(), false).unwrap(),
            Cond::Cmp(GroupField::Member, Op::Eq, _)
        ));
    }

    #[test]
    fn what_cannot_be_filtered_in_the_database_is_refused() {
        for bad in [
            r#"title eq "x""#,
            r#"active gt true"#,
            r#"active eq "yes""#,
            r#"meta.created gt "yesterday""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x""#,
        ] {
            assert_eq!(user(bad).unwrap_err().scim_type, Some(crate::ScimType::InvalidFilter), "{bad}");
        }
    }
}
