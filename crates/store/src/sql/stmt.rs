//! A statement written once for both databases: SQL text with `?` placeholders and its
//! parameters, kept as plain data so that SQLite can join statements into one trip and
//! PostgreSQL can number the placeholders.

use std::borrow::Cow;

use crate::StoreError;

/// The type of a parameter, which a NULL keeps: PostgreSQL types each parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Real,
    Bool,
    Text,
}

/// A parameter of a [`Stmt`].
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Null(Kind),
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
}

/// A Rust type a statement binds, and the kind of its NULL.
pub(crate) trait Bind: Into<Arg> {
    const KIND: Kind;
}

/// Each type a statement binds: the parameter it makes, whose kind is also its NULL's.
macro_rules! bind {
    ($($t:ty => $kind:ident($make:expr)),* $(,)?) => {$(
        impl Bind for $t {
            const KIND: Kind = Kind::$kind;
        }
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::$kind(($make)(v))
            }
        }
    )*};
}
bind!(
    i64 => Int(|v| v),
    f64 => Real(|v| v),
    bool => Bool(|v| v),
    String => Text(|v| v),
    &str => Text(str::to_owned),
    &String => Text(String::clone),
);

impl<T: Bind> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null(T::KIND), Into::into)
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().map_or(Arg::Null(Kind::Text), Arg::from)
    }
}

/// One statement, or a few written as one piece (`;`-separated), with its parameters in order.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
    /// How many SQL statements `sql` holds: each sends back its own result (SQLite only).
    pub(crate) statements: usize,
    /// The statement must change exactly one row ([`Stmt::expect_one`]).
    pub(crate) expect_one: bool,
    /// What an error of this piece means.
    pub(crate) map: fn(StoreError) -> StoreError,
    /// What it changes no node keeps between transactions ([`Stmt::kept_by_no_node`]).
    pub(crate) kept_by_no_node: bool,
}

impl Stmt {
    /// A piece of one statement.
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
            statements: 1,
            expect_one: false,
            map: std::convert::identity,
            kept_by_no_node: false,
        }
    }

    /// A piece of `n` `;`-separated statements.
    pub(crate) fn statements(mut self, n: usize) -> Self {
        self.statements = n;
        self
    }

    /// Binds the next `?`.
    pub(crate) fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Adds `condition` when there is a `value`, bound to each `?` of it: a filter's condition
    /// and its value are written together, so that they cannot fall out of step.
    pub(crate) fn and_if<T: Into<Arg>>(mut self, condition: &str, value: Option<T>) -> Self {
        let Some(value) = value.map(Into::into) else { return self };
        self.sql.to_mut().push_str(condition);
        let marks = condition.matches('?').count();
        self.args.extend(std::iter::repeat_n(value, marks));
        self
    }

    /// Ends a list newest first by `id` (a column of v7 UUIDs or of a sequence): the rows before
    /// `before` when it is given, at most `limit` of them.
    pub(crate) fn newest_first<T: Into<Arg>>(self, id: &str, before: Option<T>, limit: u32) -> Self {
        self.and_if(&format!(" AND {id} < ?"), before)
            .append(&format!(" ORDER BY {id} DESC LIMIT ?"))
            .bind(i64::from(limit))
    }

    /// Adds `text`, which binds nothing.
    pub(crate) fn append(mut self, text: &str) -> Self {
        self.sql.to_mut().push_str(text);
        self
    }

    /// Binds the next `?`s, one value each.
    pub(crate) fn bind_each<T: Into<Arg>>(self, values: impl IntoIterator<Item = T>) -> Self {
        values.into_iter().fold(self, Stmt::bind)
    }

    /// The piece (its last statement) must change exactly one row, else it fails with
    /// [`crate::Constraint::VersionMismatch`] and nothing after it runs: on SQLite a check in
    /// the same trip, on PostgreSQL the count of rows changed.
    pub(crate) fn expect_one(mut self) -> Self {
        self.expect_one = true;
        self
    }

    /// What this piece changes no node keeps between transactions (a signed checkpoint of the
    /// audit chain): a database the nodes share need not tell the others of it, so none of them
    /// drops what it keeps.
    pub(crate) fn kept_by_no_node(mut self) -> Self {
        self.kept_by_no_node = true;
        self
    }

    /// Maps this piece's errors (after the backend's own mapping).
    pub(crate) fn map_err(mut self, map: fn(StoreError) -> StoreError) -> Self {
        self.map = map;
        self
    }
}

/// A row kept whole in one table: each field in the column of its name (declared with
/// `stored!` and its table in `crate::model`).
pub(crate) trait Table {
    /// The table it is kept in.
    const TABLE: &'static str;
    /// Every field, as its column ([`crate::rows::ToColumn`]).
    fn columns(&self) -> crate::StoreResult<Columns>;
}

/// The columns a statement writes, each with its value: one list, so that a name and its value
/// are written together, and a column added to a table is written by a row's insert and its
/// update both or by neither.
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    names: Vec<&'static str>,
    args: Vec<Arg>,
}

impl Columns {
    /// Writes `value` to the column `name`.
    pub(crate) fn set(mut self, name: &'static str, value: impl Into<Arg>) -> Self {
        self.names.push(name);
        self.args.push(value.into());
        self
    }

    /// `INSERT INTO table (…) VALUES (?, …)` of these columns.
    pub(crate) fn insert(self, table: &str) -> Stmt {
        let marks = vec!["?"; self.names.len()].join(", ");
        let mut stmt = Stmt::new(format!("INSERT INTO {table} ({}) VALUES ({marks})", self.names.join(", ")));
        stmt.args = self.args;
        stmt
    }

    /// The same insert, which leaves the row already under a unique key as it is.
    pub(crate) fn insert_unless_present(self, table: &str) -> Stmt {
        self.insert(table).append(" ON CONFLICT DO NOTHING")
    }

    /// The same insert, which updates every other column of the row already under `key`.
    pub(crate) fn upsert(self, table: &str, key: &str) -> Stmt {
        let set: Vec<String> =
            self.names.iter().filter(|n| **n != key).map(|n| format!("{n} = excluded.{n}")).collect();
        self.insert(table).append(&format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", ")))
    }

    /// `UPDATE table SET …` of the row `id`.
    pub(crate) fn update(self, table: &str, id: String) -> Stmt {
        self.update_open(table, id, &[])
    }

    /// `UPDATE table SET …` of the row `id` while each column of `open` is NULL: a row closed
    /// once (used, revoked, completed) is not closed again, and the count of rows changed says
    /// whether this statement closed it.
    pub(crate) fn update_open(self, table: &str, id: String, open: &[&str]) -> Stmt {
        let open: String = open.iter().map(|c| format!(" AND {c} IS NULL")).collect();
        self.update_where(table, &format!("id = ?{open}"), [id])
    }

    /// `UPDATE table SET … WHERE condition`, with the values of the condition's `?`s.
    pub(crate) fn update_where<T: Into<Arg>>(
        self,
        table: &str,
        condition: &str,
        values: impl IntoIterator<Item = T>,
    ) -> Stmt {
        let mut stmt = Stmt::new(format!("UPDATE {table} SET {} WHERE {condition}", self.assignments()));
        stmt.args = self.args;
        stmt.bind_each(values)
    }

    /// `UPDATE table SET … , version = version + 1` of the row `id` while it is at `version`:
    /// it changes no row when someone else changed it first.
    pub(crate) fn update_versioned(self, table: &str, id: String, version: i64) -> Stmt {
        let mut stmt = Stmt::new(format!(
            "UPDATE {table} SET {}, version = version + 1 WHERE id = ? AND version = ?",
            self.assignments()
        ));
        stmt.args = self.args;
        stmt.bind(id).bind(version)
    }

    /// `a = ?, b = ?, …`
    fn assignments(&self) -> String {
        self.names.iter().map(|n| format!("{n} = ?")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(stmt: &Stmt) -> Vec<String> {
        stmt.args.iter().map(|a| format!("{a:?}")).collect()
    }

    #[test]
    fn a_filter_adds_its_condition_and_its_value_together_or_neither() {
        let stmt = Stmt::new("SELECT * FROM t WHERE 1 = 1")
            .and_if(" AND a = ?", Some("x"))
            .and_if(" AND b = ?", None::<i64>)
            .and_if(" AND (c = ? OR d = ?)", Some(7_i64))
            .newest_first("id", Some("cursor"), 5);
        assert_eq!(
            stmt.sql,
            "SELECT * FROM t WHERE 1 = 1 AND a = ? AND (c = ? OR d = ?) AND id < ? ORDER BY id DESC LIMIT ?"
        );
        assert_eq!(texts(&stmt), ["Text(\"x\")", "Int(7)", "Int(7)", "Text(\"cursor\")", "Int(5)"]);
        let first = Stmt::new("SELECT * FROM t").newest_first("id", None::<String>, 5);
        assert_eq!((&*first.sql, texts(&first)), ("SELECT * FROM t ORDER BY id DESC LIMIT ?", vec!["Int(5)".into()]));
    }

    #[test]
    fn columns_are_written_with_their_values_in_order() {
        let columns = || Columns::default().set("a", "x").set("b", 1_i64);
        let closed = columns().update_open("t", "id-1".into(), &["a", "c"]);
        assert_eq!(closed.sql, "UPDATE t SET a = ?, b = ? WHERE id = ? AND a IS NULL AND c IS NULL");
        assert_eq!(texts(&closed), ["Text(\"x\")", "Int(1)", "Text(\"id-1\")"]);
        let put = columns().upsert("t", "a");
        assert_eq!(put.sql, "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b");
        let kept = columns().insert_unless_present("t");
        assert_eq!(kept.sql, "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING");
        let versioned = columns().update_versioned("t", "id-1".into(), 3);
        assert_eq!(versioned.sql, "UPDATE t SET a = ?, b = ?, version = version + 1 WHERE id = ? AND version = ?");
        assert_eq!(texts(&versioned).len(), 4);
    }
}
