//! Conditions over SCIM resources, rendered to SQL on indexed columns. The SCIM crate maps its
//! filters onto these; each backend runs the SQL rendered here (written with `?` placeholders,
//! which the PostgreSQL backend numbers), so that no filter is ever evaluated by loading rows.

use time::OffsetDateTime;

use crate::rows::micros;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal compared against.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Text(String),
    Bool(bool),
    Time(OffsetDateTime),
}

/// A condition over fields `F`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond<F> {
    Const(bool),
    Cmp(F, Op, Lit),
    Present(F),
    And(Box<Cond<F>>, Box<Cond<F>>),
    Or(Box<Cond<F>>, Box<Cond<F>>),
    Not(Box<Cond<F>>),
}

/// What a user can be filtered and sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    Id,
    UserName,
    ExternalId,
    Email,
    DisplayName,
    Active,
    Created,
    LastModified,
}

/// What a group (a team) can be filtered and sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupField {
    Id,
    /// "org name/team name".
    QualifiedName,
    /// The team name alone, for a scope of one org.
    TeamName,
    ExternalId,
    /// A member's user id.
    Member,
    Created,
    LastModified,
}

/// A page of a SCIM list: which rows, in which order.
#[derive(Debug, Clone)]
pub struct ScimQuery<F> {
    pub cond: Cond<F>,
    /// The field and whether descending.
    pub sort: Option<(F, bool)>,
    /// Rows skipped (`startIndex - 1`).
    pub offset: u64,
    pub limit: u32,
    /// Only users who are current members of this org, or teams of this org.
    pub org: Option<steward_core::OrgId>,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// How a field is stored.
pub(crate) enum Column {
    /// Text compared as stored.
    Exact(&'static str),
    /// Text stored (or computed) lower-cased; literals are lower-cased to match.
    Folded(&'static str),
    Time(&'static str),
    /// A user's status read as SCIM `active`.
    Active,
    /// A current team member's user id.
    Member,
}

pub(crate) trait Field: Copy {
    fn column(self) -> Column;
}

impl Field for UserField {
    fn column(self) -> Column {
        match self {
            UserField::Id => Column::Exact("u.id"),
            // The expression of the `users_user_name` index.
            UserField::UserName => Column::Folded("COALESCE(u.scim_user_name_key, u.email_key)"),
            UserField::ExternalId => Column::Exact("s.external_id"),
            UserField::Email => Column::Folded("u.email_key"),
            UserField::DisplayName => Column::Folded("lower(u.name)"),
            UserField::Active => Column::Active,
            UserField::Created => Column::Time("u.created_at"),
            UserField::LastModified => Column::Time("u.updated_at"),
        }
    }
}

impl Field for GroupField {
    fn column(self) -> Column {
        match self {
            GroupField::Id => Column::Exact("t.id"),
            GroupField::QualifiedName => Column::Folded("lower(o.name || '/' || t.name)"),
            GroupField::TeamName => Column::Folded("t.name_key"),
            GroupField::ExternalId => Column::Exact("g.external_id"),
            GroupField::Member => Column::Member,
            GroupField::Created => Column::Time("t.created_at"),
            GroupField::LastModified => Column::Time("t.updated_at"),
        }
    }
}

/// SQL under construction with its binds.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    fn text_bind(&mut self, s: String) {
        self.binds.push(Bind::Text(s));
    }
}

/// The column expression a sort uses.
pub(crate) fn sort_expr<F: Field>(field: F) -> &'static str {
    match field.column() {
        Column::Exact(c) | Column::Folded(c) | Column::Time(c) => c,
        Column::Active => "u.status",
        Column::Member => "t.id",
    }
}

/// Appends the condition as a parenthesized SQL boolean.
pub(crate) fn render<F: Field>(cond: &Cond<F>, sql: &mut Sql) {
    match cond {
        Cond::Const(true) => sql.text.push_str("(1 = 1)"),
        Cond::Const(false) => sql.text.push_str("(1 = 0)"),
        Cond::And(l, r) | Cond::Or(l, r) => {
            sql.text.push('(');
            render(l, sql);
            sql.text.push_str(if matches!(cond, Cond::And(..)) { " AND " } else { " OR " });
            render(r, sql);
            sql.text.push(')');
        }
        Cond::Not(inner) => {
            // NOT of an unknown (NULL) stays unknown in SQL; SCIM's `not` includes it.
            sql.text.push_str("(NOT COALESCE(");
            render(inner, sql);
            sql.text.push_str(", 1 = 0))");
        }
        Cond::Present(f) => match f.column() {
            Column::Exact(c) | Column::Folded(c) => sql.text.push_str(&format!("({c} IS NOT NULL AND {c} <> '')")),
            Column::Time(c) => sql.text.push_str(&format!("({c} IS NOT NULL)")),
            Column::Active => sql.text.push_str("(1 = 1)"),
            Column::Member => sql
                .text
                .push_str("(EXISTS (SELECT 1 FROM team_members tm WHERE tm.team_id = t.id AND tm.ended_at IS NULL))"),
        },
        Cond::Cmp(f, op, lit) => render_cmp(f.column(), *op, lit, sql),
    }
}

fn render_cmp(column: Column, op: Op, lit: &Lit, sql: &mut Sql) {
    let (expr, folded) = match column {
        Column::Active => {
            let active = match (op, lit) {
                (Op::Eq, Lit::Bool(b)) => *b,
                (Op::Ne, Lit::Bool(b)) => !*b,
                _ => return sql.text.push_str("(1 = 0)"),
            };
            let not = if active { "" } else { "NOT " };
            return sql.text.push_str(&format!("(u.status {not}IN ('active', 'invited'))"));
        }
        Column::Member => {
            sql.text.push_str(
                "(EXISTS (SELECT 1 FROM team_members tm WHERE tm.team_id = t.id AND tm.ended_at IS NULL AND ",
            );
            render_cmp(Column::Exact("tm.user_id"), op, lit, sql);
            return sql.text.push_str("))");
        }
        Column::Time(c) => {
            let Lit::Time(t) = lit else {
                return match (op, lit) {
                    (Op::Eq, Lit::Null) => sql.text.push_str(&format!("({c} IS NULL)")),
                    (Op::Ne, Lit::Null) => sql.text.push_str(&format!("({c} IS NOT NULL)")),
                    _ => sql.text.push_str("(1 = 0)"),
                };
            };
            let sym = match op {
                Op::Eq => "=",
                Op::Ne => "<>",
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Co | Op::Sw | Op::Ew => return sql.text.push_str("(1 = 0)"),
            };
            sql.binds.push(Bind::Int(micros(*t)));
            return sql.text.push_str(&format!("({c} {sym} ?)"));
        }
        Column::Exact(c) => (c, false),
        Column::Folded(c) => (c, true),
    };
    let value = match lit {
        Lit::Null => {
            return match op {
                Op::Eq => sql.text.push_str(&format!("({expr} IS NULL)")),
                Op::Ne => sql.text.push_str(&format!("({expr} IS NOT NULL)")),
                _ => sql.text.push_str("(1 = 0)"),
            };
        }
        Lit::Text(s) => {
            if folded {
                s.to_lowercase()
            } else {
                s.clone()
            }
        }
        Lit::Bool(b) => b.to_string(),
        Lit::Time(_) => return sql.text.push_str("(1 = 0)"),
    };
    match op {
        Op::Eq => {
            sql.text.push_str(&format!("({expr} = ?)"));
            sql.text_bind(value);
        }
        Op::Ne => {
            sql.text.push_str(&format!("({expr} IS NULL OR {expr} <> ?)"));
            sql.text_bind(value);
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            let sym = match op {
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Lt => "<",
                _ => "<=",
            };
            sql.text.push_str(&format!("({expr} {sym} ?)"));
            sql.text_bind(value);
        }
        // Written so that both SQLite and PostgreSQL compare exactly, whatever their LIKE does.
        Op::Co if value.is_empty() => sql.text.push_str(&format!("({expr} IS NOT NULL)")),
        Op::Co => {
            sql.text.push_str(&format!("(replace({expr}, ?, '') <> {expr})"));
            sql.text_bind(value);
        }
        Op::Sw => {
            sql.text.push_str(&format!("(substr({expr}, 1, length(?)) = ?)"));
            sql.text_bind(value.clone());
            sql.text_bind(value);
        }
        Op::Ew => {
            sql.text.push_str(&format!(
                "(length({expr}) >= length(?) AND substr({expr}, length({expr}) - length(?) + 1) = ?)"
            ));
            sql.text_bind(value.clone());
            sql.text_bind(value.clone());
            sql.text_bind(value);
        }
    }
}

/// The SELECT of a page of users (after `columns`) and the COUNT of all matches.
pub(crate) fn users_sql(q: &ScimQuery<UserField>, columns: &str) -> (Sql, Sql) {
    let mut cond = Sql::default();
    cond.text.push_str(
        " FROM users u LEFT JOIN scim_users s ON s.user_id = u.id \
         WHERE u.kind = 'person' AND u.status <> 'anonymized' AND s.hidden_at IS NULL",
    );
    if let Some(org) = q.org {
        cond.text.push_str(
            " AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.org_id = ? AND m.ended_at IS NULL)",
        );
        cond.text_bind(org.to_string());
    }
    let everyone = q.org.is_none() && q.cond == Cond::Const(true);
    if q.cond != Cond::Const(true) {
        cond.text.push_str(" AND ");
        render(&q.cond, &mut cond);
    }
    let (page, mut count) = finish(q, cond, columns, "u.id");
    if everyone {
        // Everyone SCIM shows, counted without a join per user: the people, less those hidden.
        count.text = format!("SELECT ({PEOPLE}) - ({PEOPLE_HIDDEN}) AS n");
    }
    (page, count)
}

/// The people SCIM may show, from the partial index `users_people`.
const PEOPLE: &str = "SELECT COUNT(*) FROM users u WHERE u.kind = 'person' AND u.status <> 'anonymized'";

/// Those of [`PEOPLE`] that SCIM has hidden (deleted through SCIM), from the partial index
/// `scim_users_hidden`: few, each looked up by id.
const PEOPLE_HIDDEN: &str = "SELECT COUNT(*) FROM scim_users s WHERE s.hidden_at IS NOT NULL AND EXISTS \
     (SELECT 1 FROM users u WHERE u.id = s.user_id AND u.kind = 'person' AND u.status <> 'anonymized')";

/// The SELECT of a page of groups (after `columns`) and the COUNT of all matches.
pub(crate) fn groups_sql(q: &ScimQuery<GroupField>, columns: &str) -> (Sql, Sql) {
    let mut cond = Sql::default();
    cond.text.push_str(
        " FROM teams t JOIN orgs o ON o.id = t.org_id LEFT JOIN scim_groups g ON g.team_id = t.id \
         WHERE t.archived_at IS NULL AND o.state <> 'purged'",
    );
    if let Some(org) = q.org {
        cond.text.push_str(" AND t.org_id = ?");
        cond.text_bind(org.to_string());
    }
    if q.cond != Cond::Const(true) {
        cond.text.push_str(" AND ");
        render(&q.cond, &mut cond);
    }
    finish(q, cond, columns, "t.id")
}

fn finish<F: Field>(q: &ScimQuery<F>, cond: Sql, columns: &str, id: &str) -> (Sql, Sql) {
    let count = Sql { text: format!("SELECT COUNT(*) AS n{}", cond.text), binds: cond.binds.clone() };
    let mut page = Sql { text: format!("SELECT {columns}{}", cond.text), binds: cond.binds };
    match q.sort {
        Some((f, desc)) => {
            let dir = if desc { "DESC" } else { "ASC" };
            page.text.push_str(&format!(" ORDER BY {} {dir}, {id} {dir}", sort_expr(f)));
        }
        None => page.text.push_str(&format!(" ORDER BY {id}")),
    }
    page.text.push_str(" LIMIT ? OFFSET ?");
    page.binds.push(Bind::Int(i64::from(q.limit)));
    page.binds.push(Bind::Int(i64::try_from(q.offset).unwrap_or(i64::MAX)));
    (page, count)
}

impl From<Sql> for crate::sql::Stmt {
    /// The statement of rendered SQL, its values bound in order.
    fn from(sql: Sql) -> Self {
        let mut stmt = crate::sql::Stmt::new(sql.text);
        for b in sql.binds {
            stmt = match b {
                Bind::Text(s) => stmt.bind(s),
                Bind::Int(i) => stmt.bind(i),
            };
        }
        stmt
    }
}

/// The columns of what SCIM keeps beside a user, for a query joining `scim_users s`.
pub(crate) const SCIM_USER_COLUMNS: &str = "u.scim_user_name AS scim_user_name, s.user_id AS s_user_id, \
     s.external_id AS s_external_id, s.attrs AS s_attrs, s.hidden_at AS s_hidden_at, s.updated_at AS s_updated_at";

/// The columns of a group, for a query joining `orgs o` and `scim_groups g`.
pub(crate) const SCIM_GROUP_COLUMNS: &str = "t.id, t.org_id, t.name, t.created_at, t.updated_at, t.version, \
     o.name AS org_name, g.external_id AS g_external_id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_name_eq_uses_the_indexed_expression() {
        let q = ScimQuery {
            cond: Cond::Cmp(UserField::UserName, Op::Eq, Lit::Text("BJensen".into())),
            sort: None,
            offset: 0,
            limit: 10,
            org: None,
        };
        let (page, count) = users_sql(&q, "u.id");
        assert!(page.text.contains("(COALESCE(u.scim_user_name_key, u.email_key) = ?)"), "{}", page.text);
        assert_eq!(page.binds[0], Bind::Text("bjensen".into()));
        assert!(count.text.starts_with("SELECT COUNT(*)"));
    }

    #[test]
    fn case_exact_fields_keep_the_literal() {
        let mut sql = Sql::default();
        render(&Cond::Cmp(UserField::ExternalId, Op::Sw, Lit::Text("AbC".into())), &mut sql);
        assert_eq!(sql.binds, vec![Bind::Text("AbC".into()), Bind::Text("AbC".into())]);
    }
}
