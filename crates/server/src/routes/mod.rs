//! The `/api/v1` routers, one module per resource family.

pub mod assets;
pub mod audit;
pub mod auth;
pub mod deprovision;
pub mod erasure;
pub mod health;
pub mod hooks;
pub mod instance;
pub mod invitations;
pub mod jwt_issuers;
pub mod lifecycle;
pub mod orgs;
pub mod reviews;
pub mod roles;
pub mod scim_tokens;
pub mod security;
pub mod sso;
pub mod sso_sign_in;
pub mod teams;
pub mod tokens;
pub mod usage;
pub mod usage_events;
pub mod users;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

/// The peer address of the connection (forwarding headers are not trusted).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let plain = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let tls = || parts.extensions.get::<ConnectInfo<crate::tls::PeerAddr>>().map(|c| c.0.0.ip());
        Ok(ClientIp(plain.or_else(tls)))
    }
}

/// The `User-Agent`, cut to a sane length.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect())
}
