//! Integration tests of the HTTP API: each test runs its own Steward on port 0 with a fresh
//! database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod auth;
mod bad_input;
mod cli;
mod helpers;
mod idempotency;
mod isolation;
mod orgs;
mod platform;
mod teams;
mod users;
