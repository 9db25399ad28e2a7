//! Integration tests of the HTTP API: each test runs its own Steward on port 0 with a fresh
//! database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod auth;
mod bad_input;
mod cli;
mod deprovision;
mod email;
mod erasure;
mod helpers;
mod idempotency;
mod impersonation;
mod isolation;
mod lifecycle;
mod metering;
mod nodes;
mod operations;
mod orgs;
mod platform;
mod reviews;
mod schedules;
mod smtp;
mod state_machine;
mod teams;
mod users;
mod webhooks;
