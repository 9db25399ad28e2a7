//! Statements both databases accept, written once with `?` placeholders (the PostgreSQL backend
//! numbers them). Each module holds the statements of one aggregate.

pub(crate) mod credentials;
