//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): the syntax tree, a parser written
//! for it, and a printer whose output parses back to the same tree. Evaluation against stored
//! users belongs to the store (the filter becomes SQL); [`Filter::matches`] only judges the
//! elements of one multi-valued attribute, as PATCH value paths need.

use std::fmt;

use serde_json::Value;

/// How deeply filters may nest; deeper input is refused instead of exhausting the stack.
const MAX_DEPTH: usize = 32;
/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;

/// An attribute named in a filter or path: `urn:…:User:name.givenName` is the URI, `name`, and
/// the sub-attribute `givenName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URI prefix, when written.
    pub uri: Option<String>,
    /// The attribute name as written.
    pub name: String,
    /// The sub-attribute, when written.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path without URI or sub-attribute.
    pub fn simple(name: &str) -> Self {
        AttrPath { uri: None, name: name.to_owned(), sub: None }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
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

impl CompareOp {
    const ALL: [(CompareOp, &'static str); 9] = [
        (CompareOp::Eq, "eq"),
        (CompareOp::Ne, "ne"),
        (CompareOp::Co, "co"),
        (CompareOp::Sw, "sw"),
        (CompareOp::Ew, "ew"),
        (CompareOp::Gt, "gt"),
        (CompareOp::Ge, "ge"),
        (CompareOp::Lt, "lt"),
        (CompareOp::Le, "le"),
    ];

    fn parse(word: &str) -> Option<CompareOp> {
        Self::ALL.iter().find(|(_, w)| w.eq_ignore_ascii_case(word)).map(|(op, _)| *op)
    }

    /// The operator as written in a filter.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(op, _)| *op == self).map_or("eq", |(_, w)| w)
    }
}

/// A literal compared against.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

impl CompValue {
    /// The literal as a JSON value.
    pub fn to_json(&self) -> Value {
        match self {
            CompValue::Null => Value::Null,
            CompValue::Bool(b) => Value::Bool(*b),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::String(s) => Value::String(s.clone()),
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    /// `attr pr`
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued `attr` matches `filter`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH target: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (its `sub` is set only for the plain `attr.sub` form).
    pub attr: AttrPath,
    /// The element filter of a value path.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value path's `]`.
    pub sub: Option<String>,
}

/// Why a filter or path did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at})")]
pub struct ParseError {
    /// What was wrong.
    pub message: String,
    /// The byte offset where it went wrong.
    pub at: usize,
}

/// Parses a filter.
pub fn parse_filter(input: &str) -> Result<Filter, ParseError> {
    let mut p = Parser::new(input)?;
    let filter = p.filter(0, false)?;
    p.skip_ws();
    if !p.done() {
        return Err(p.error("unexpected text after the filter"));
    }
    Ok(filter)
}

/// Parses a PATCH path.
pub fn parse_path(input: &str) -> Result<PatchPath, ParseError> {
    let mut p = Parser::new(input)?;
    p.skip_ws();
    let attr = p.attr_path()?;
    let mut path = PatchPath { attr, filter: None, sub: None };
    if p.eat('[') {
        if path.attr.sub.is_some() {
            return Err(p.error("a value filter follows the attribute, not its sub-attribute"));
        }
        let filter = p.filter(1, true)?;
        p.skip_ws();
        if !p.eat(']') {
            return Err(p.error("expected ']'"));
        }
        path.filter = Some(filter);
        if p.eat('.') {
            path.sub = Some(p.name()?);
        }
    }
    p.skip_ws();
    if !p.done() {
        return Err(p.error("unexpected text after the path"));
    }
    Ok(path)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, ParseError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(ParseError { message: format!("longer than {MAX_FILTER_LEN} bytes"), at: 0 });
        }
        Ok(Parser { text, pos: 0 })
    }

    fn error(&self, message: &str) -> ParseError {
        ParseError { message: message.to_owned(), at: self.pos }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn done(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// The next word (letters, digits and the characters of attribute paths), not consumed.
    fn word(&self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '$')))
            .map_or(rest.len(), |(i, _)| i);
        &rest[..end]
    }

    /// Consumes the keyword `kw` (any case) when it stands next as a whole word.
    fn keyword(&mut self, kw: &str) -> bool {
        let w = self.word();
        if w.eq_ignore_ascii_case(kw) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    /// `or` binds loosest, then `and`, then `not` and grouping.
    fn filter(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("the filter nests too deeply"));
        }
        let mut left = self.conjunction(depth, in_brackets)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.pos > save && self.keyword("or") {
                self.require_ws()?;
                let right = self.conjunction(depth, in_brackets)?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn conjunction(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut left = self.unary(depth, in_brackets)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.pos > save && self.keyword("and") {
                self.require_ws()?;
                let right = self.unary(depth, in_brackets)?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn require_ws(&mut self) -> Result<(), ParseError> {
        let save = self.pos;
        self.skip_ws();
        if self.pos == save && self.peek() != Some('(') {
            return Err(self.error("expected a space"));
        }
        Ok(())
    }

    fn unary(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        self.skip_ws();
        let save = self.pos;
        if self.keyword("not") {
            self.skip_ws();
            if self.eat('(') {
                let inner = self.filter(depth + 1, in_brackets)?;
                self.skip_ws();
                if !self.eat(')') {
                    return Err(self.error("expected ')'"));
                }
                return Ok(Filter::Not(Box::new(inner)));
            }
            // An attribute may be called `not…`; only `not (` is the operator.
            self.pos = save;
        }
        if self.eat('(') {
            let inner = self.filter(depth + 1, in_brackets)?;
            self.skip_ws();
            if !self.eat(')') {
                return Err(self.error("expected ')'"));
            }
            return Ok(inner);
        }
        self.attr_expr(depth, in_brackets)
    }

    fn attr_expr(&mut self, depth: usize, in_brackets: bool) -> Result<Filter, ParseError> {
        let path = self.attr_path()?;
        if self.peek() == Some('[') {
            if in_brackets {
                return Err(self.error("value filters do not nest"));
            }
            if path.sub.is_some() {
                return Err(self.error("a value filter follows the attribute, not its sub-attribute"));
            }
            self.pos += 1;
            let inner = self.filter(depth + 1, true)?;
            self.skip_ws();
            if !self.eat(']') {
                return Err(self.error("expected ']'"));
            }
            return Ok(Filter::ValuePath { path, filter: Box::new(inner) });
        }
        let save = self.pos;
        self.skip_ws();
        if self.pos == save {
            return Err(self.error("expected an operator after the attribute"));
        }
        let op_at = self.pos;
        let word = self.word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += word.len();
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(word)
            .ok_or_else(|| ParseError { message: format!("unknown operator {word:?}"), at: op_at })?;
        self.pos += word.len();
        let save = self.pos;
        self.skip_ws();
        if self.pos == save {
            return Err(self.error("expected a space before the value"));
        }
        let value = self.value()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn name(&mut self) -> Result<String, ParseError> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if c.is_ascii_alphabetic() || c == '$' => {}
            _ => return Err(self.error("expected an attribute name")),
        }
        let end =
            chars.find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')).map_or(rest.len(), |(i, _)| i);
        self.pos += end;
        Ok(rest[..end].to_owned())
    }

    fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let word = self.word();
        if word.is_empty() {
            return Err(self.error("expected an attribute name"));
        }
        // A schema URI ends at the last ':'; what follows is `name` or `name.sub`.
        let (uri, _) = match word.rfind(':') {
            Some(i) => (Some(&word[..i]), &word[i + 1..]),
            None => (None, word),
        };
        if uri.is_some_and(|u| !u.to_ascii_lowercase().starts_with("urn:")) {
            return Err(self.error("a schema URI starts with urn:"));
        }
        self.pos = start + uri.map_or(0, |u| u.len() + 1);
        let name = self.name()?;
        let sub = if self.rest().starts_with('.') && self.pos < start + word.len() {
            self.pos += 1;
            Some(self.name()?)
        } else {
            None
        };
        if self.pos != start + word.len() && self.rest().starts_with('.') {
            return Err(self.error("an attribute path has at most one sub-attribute"));
        }
        Ok(AttrPath { uri: uri.map(str::to_owned), name, sub })
    }

    fn value(&mut self) -> Result<CompValue, ParseError> {
        if self.peek() == Some('"') {
            let rest = self.rest();
            let mut escaped = false;
            let mut end = None;
            for (i, c) in rest.char_indices().skip(1) {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                }
            }
            let end = end.ok_or_else(|| self.error("unterminated string"))?;
            let literal = &rest[..=end];
            let s: String = serde_json::from_str(literal).map_err(|_| self.error("invalid string"))?;
            self.pos += end + 1;
            return Ok(CompValue::String(s));
        }
        let word = self.word();
        let value = if word == "true" {
            CompValue::Bool(true)
        } else if word == "false" {
            CompValue::Bool(false)
        } else if word == "null" {
            CompValue::Null
        } else {
            // `word` stops at characters a number may hold only in its exponent sign.
            let rest = self.rest();
            let end = rest
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
                .map_or(rest.len(), |(i, _)| i);
            let number: serde_json::Number = serde_json::from_str(&rest[..end])
                .map_err(|_| self.error("expected a value: a string, number, true, false or null"))?;
            self.pos += end;
            return Ok(CompValue::Number(number));
        };
        self.pos += word.len();
        Ok(value)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
            // Left-associative: a right operand of the same kind, or a looser one, needs parentheses.
            Filter::And(l, r) => {
                let left = if matches!(**l, Filter::Or(..)) { format!("({l})") } else { l.to_string() };
                let right =
                    if matches!(**r, Filter::Or(..) | Filter::And(..)) { format!("({r})") } else { r.to_string() };
                write!(f, "{left} and {right}")
            }
            Filter::Or(l, r) => {
                let right = if matches!(**r, Filter::Or(..)) { format!("({r})") } else { r.to_string() };
                write!(f, "{l} or {right}")
            }
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Whether text comparisons of an attribute ignore case.
pub type CaseExact = fn(&AttrPath) -> bool;

impl Filter {
    /// Whether one element of a multi-valued attribute (a JSON object, or a bare value for
    /// `value`) matches this filter. Attribute names are compared without regard to case.
    pub fn matches(&self, element: &Value, case_exact: CaseExact) -> bool {
        match self {
            Filter::And(l, r) => l.matches(element, case_exact) && r.matches(element, case_exact),
            Filter::Or(l, r) => l.matches(element, case_exact) || r.matches(element, case_exact),
            Filter::Not(inner) => !inner.matches(element, case_exact),
            Filter::ValuePath { .. } => false,
            Filter::Present(path) => lookup(element, path).is_some_and(|v| !is_empty(v)),
            Filter::Compare { path, op, value } => {
                let exact = case_exact(path);
                match lookup(element, path) {
                    None | Some(Value::Null) => match op {
                        CompareOp::Eq => *value == CompValue::Null,
                        CompareOp::Ne => *value != CompValue::Null,
                        _ => false,
                    },
                    Some(Value::Array(items)) => items.iter().any(|v| compare(v, *op, value, exact)),
                    Some(v) => compare(v, *op, value, exact),
                }
            }
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn lookup<'v>(element: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let field = |v: &'v Value, name: &str| -> Option<&'v Value> {
        v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    };
    let first = match element {
        Value::Object(_) => field(element, &path.name)?,
        // A multi-valued attribute of plain values: its elements are their own `value`.
        other if path.name.eq_ignore_ascii_case("value") => other,
        _ => return None,
    };
    match &path.sub {
        Some(sub) => field(first, sub),
        None => Some(first),
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &CompValue, case_exact: bool) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, expected) {
        (Value::String(a), CompValue::String(e)) => {
            let (a, e) = if case_exact { (a.clone(), e.clone()) } else { (a.to_lowercase(), e.to_lowercase()) };
            match op {
                CompareOp::Co => return a.contains(&e),
                CompareOp::Sw => return a.starts_with(&e),
                CompareOp::Ew => return a.ends_with(&e),
                _ => a.cmp(&e),
            }
        }
        (Value::Bool(a), CompValue::Bool(e)) => match op {
            CompareOp::Eq => return a == e,
            CompareOp::Ne => return a != e,
            _ => return false,
        },
        (Value::Number(a), CompValue::Number(e)) => match (a.as_f64(), e.as_f64()) {
            (Some(a), Some(e)) => match a.partial_cmp(&e) {
                Some(o) => o,
                None => return false,
            },
            _ => return false,
        },
        _ => return op == CompareOp::Ne,
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(name: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare { path: AttrPath::simple(name), op, value }
    }

    #[test]
    fn every_operator_parses() {
        for (op, word) in CompareOp::ALL {
            let f = parse_filter(&format!("userName {word} \"bjensen\"")).unwrap();
            assert_eq!(f, cmp("userName", op, CompValue::String("bjensen".into())));
            let upper = parse_filter(&format!("userName {} \"bjensen\"", word.to_uppercase())).unwrap();
            assert_eq!(upper, f);
        }
        assert_eq!(parse_filter("title pr").unwrap(), Filter::Present(AttrPath::simple("title")));
    }

    #[test]
    fn precedence_and_grouping() {
        let f = parse_filter("a eq 1 or b eq 2 and c eq 3").unwrap();
        let one = || cmp("a", CompareOp::Eq, CompValue::Number(1.into()));
        let two = || cmp("b", CompareOp::Eq, CompValue::Number(2.into()));
        let three = || cmp("c", CompareOp::Eq, CompValue::Number(3.into()));
        assert_eq!(f, Filter::Or(Box::new(one()), Box::new(Filter::And(Box::new(two()), Box::new(three())))));
        let g = parse_filter("(a eq 1 or b eq 2) and c eq 3").unwrap();
        assert_eq!(g, Filter::And(Box::new(Filter::Or(Box::new(one()), Box::new(two()))), Box::new(three())));
        let n = parse_filter("not (a eq 1) and NOT(b eq 2)").unwrap();
        assert_eq!(n, Filter::And(Box::new(Filter::Not(Box::new(one()))), Box::new(Filter::Not(Box::new(two())))));
    }

    #[test]
    fn value_paths_uris_and_literals() {
        let f = parse_filter(r#"emails[type eq "work" and value co "@example.com"]"#).unwrap();
        let Filter::ValuePath { path, filter } = f else { panic!("not a value path") };
        assert_eq!(path, AttrPath::simple("emails"));
        assert!(matches!(*filter, Filter::And(..)));

        let f = parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName sw "J""#).unwrap();
        let Filter::Compare { path, .. } = f else { panic!("not a comparison") };
        assert_eq!(path.uri.as_deref(), Some("urn:ietf:params:scim:schemas:core:2.0:User"));
        assert_eq!((path.name.as_str(), path.sub.as_deref()), ("name", Some("familyName")));

        assert_eq!(parse_filter("active eq true").unwrap(), cmp("active", CompareOp::Eq, CompValue::Bool(true)));
        assert_eq!(parse_filter("x ne null").unwrap(), cmp("x", CompareOp::Ne, CompValue::Null));
        assert_eq!(
            parse_filter("meta.lastModified gt \"2011-05-13T04:42:34Z\"").unwrap().to_string(),
            "meta.lastModified gt \"2011-05-13T04:42:34Z\""
        );
        assert_eq!(
            parse_filter(r#"displayName eq "say \"hi\"""#).unwrap(),
            cmp("displayName", CompareOp::Eq, CompValue::String("say \"hi\"".into()))
        );
        assert!(matches!(parse_filter("n ge -1.5e3").unwrap(), Filter::Compare { value: CompValue::Number(_), .. }));
    }

    #[test]
    fn bad_filters_are_refused_with_a_position() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq \"a",
            "(userName eq \"a\"",
            "userName eq \"a\" and",
            "emails[type eq \"work\"",
            "emails[x[y eq 1]]",
            "userName eq \"a\" extra",
            "a.b.c eq 1",
            "http://x:y eq 1",
            "userName eq bare",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}a eq 1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_filter(&deep).unwrap_err().message.contains("deeply"));
    }

    #[test]
    fn patch_paths() {
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, AttrPath::simple("emails"));
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("givenName"));
        let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert!(p.filter.is_some() && p.sub.is_none());
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap();
        assert_eq!(p.attr.name, "manager");
        assert!(parse_path("emails[type eq \"work\"]x").is_err());
        assert!(parse_path("name.givenName[x eq 1]").is_err());
    }

    #[test]
    fn element_matching_follows_case_rules() {
        let insensitive: CaseExact = |_| false;
        let exact: CaseExact = |_| true;
        let element = serde_json::json!({"value": "Bob@Example.com", "type": "work", "primary": true});
        let f = parse_filter(r#"type eq "WORK" and value ew "example.COM""#).unwrap();
        assert!(f.matches(&element, insensitive));
        assert!(!f.matches(&element, exact));
        assert!(parse_filter("primary eq true").unwrap().matches(&element, exact));
        assert!(parse_filter("display pr").map(|f| !f.matches(&element, exact)).unwrap());
        assert!(parse_filter(r#"not (type eq "home")"#).unwrap().matches(&element, exact));
        assert!(parse_filter(r#"value eq "x""#).unwrap().matches(&serde_json::json!("x"), exact));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn name() -> BoxedStrategy<String> {
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}"
            .prop_filter("not a keyword", |n| {
                ![
                    "and", "or", "not", "pr", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "true", "false",
                    "null",
                ]
                .contains(&n.to_ascii_lowercase().as_str())
            })
            .boxed()
    }

    fn path() -> BoxedStrategy<AttrPath> {
        (
            prop::option::of(prop::sample::select(vec![
                "urn:ietf:params:scim:schemas:core:2.0:User".to_owned(),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned(),
            ])),
            name(),
            prop::option::of(name()),
        )
            .prop_map(|(uri, name, sub)| AttrPath { uri, name, sub })
            .boxed()
    }

    fn value() -> BoxedStrategy<CompValue> {
        prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            (-1e9f64..1e9).prop_map(|f| CompValue::Number(serde_json::Number::from_f64(f).expect("finite"))),
            ".{0,12}".prop_map(CompValue::String),
        ]
        .boxed()
    }

    fn op() -> BoxedStrategy<CompareOp> {
        prop::sample::select(CompareOp::ALL.iter().map(|(o, _)| *o).collect::<Vec<_>>()).boxed()
    }

    fn leaf() -> BoxedStrategy<Filter> {
        prop_oneof![
            (path(), op(), value()).prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            path().prop_map(Filter::Present),
        ]
        .boxed()
    }

    fn tree(leaf: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::And(Box::new(l), Box::new(r))),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::Or(Box::new(l), Box::new(r))),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
        .boxed()
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let simple_leaf = (name(), op(), value()).prop_map(|(n, op, value)| Filter::Compare {
            path: AttrPath::simple(&n),
            op,
            value,
        });
        let value_path = (name(), tree(simple_leaf.boxed()))
            .prop_map(|(n, f)| Filter::ValuePath { path: AttrPath::simple(&n), filter: Box::new(f) });
        tree(prop_oneof![4 => leaf(), 1 => value_path].boxed())
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_tree(f in filter()) {
            let text = f.to_string();
            prop_assert_eq!(parse_filter(&text).map_err(|e| format!("{text}: {e}")), Ok(f));
        }

        #[test]
        fn patch_paths_print_and_parse_back(attr in name(), f in prop::option::of(leaf()), sub in prop::option::of(name())) {
            let path = match f {
                Some(f) => PatchPath { attr: AttrPath::simple(&attr), filter: Some(f), sub },
                None => PatchPath { attr: AttrPath { uri: None, name: attr, sub }, filter: None, sub: None },
            };
            let text = path.to_string();
            prop_assert_eq!(parse_path(&text).map_err(|e| format!("{text}: {e}")), Ok(path));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = parse_filter(&text);
            let _ = parse_path(&text);
        }
    }
}
