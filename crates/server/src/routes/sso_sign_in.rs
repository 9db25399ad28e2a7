//! Single sign-on with OpenID Connect, the browser's round trip (`/sso/{id}/start`,
//! `/sso/callback`): authorization code with PKCE (S256), `state` and `nonce` bound to a signed
//! short-lived cookie, the ID token checked with the provider's keys, the user found, linked or
//! created, group roles applied, then a session exactly as a password login opens. Every
//! sign-in and refusal is audited with it.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use steward_core::org::{self, RoleChange};
use steward_core::{Actor, AuditDraft, OrgId, OrgRole, TargetType, UserStatus};
use steward_store::{SsoConnectionRow, Tx, UserRow};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::extract::cookie;
use crate::extract::set_session_cookies;
use crate::routes::orgs::check_seats;
use crate::routes::{ClientIp, auth::open_session};
use crate::sso::{ExternalIdentity, Found, create_jit_user, find_user, validate_id_token};
use crate::state::AppState;
use steward_ops::orgs::rules_view_of;

use super::sso::{load, redirect_uri};

/// The cookie that carries the signed sign-in state between start and callback.
const STATE_COOKIE: &str = "steward_sso";
/// How long a sign-in may take at the provider.
const STATE_SECS: i64 = 600;

/// `/sso/{id}/start` and `/sso/callback`, outside the JSON API.
pub fn browser_router() -> Router<AppState> {
    Router::new().route("/sso/{id}/start", get(start)).route("/sso/callback", get(callback))
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    login_hint: Option<String>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "the identity provider could not be used");
    ApiError::other(StatusCode::BAD_GATEWAY, "sso_unavailable", "the identity provider could not be reached")
}

fn state_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = crate::extract::secure(state);
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; Path=/sso; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("steward_sso=; Path=/sso; Max-Age=0"))
}

/// Sends the browser to the provider with a fresh state, nonce and PKCE challenge.
async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
) -> ApiResult<Response> {
    let mut tx = state.store.read().await?;
    let c = load(tx.as_mut(), &id).await?;
    let key = state.sso.key(tx.as_mut()).await?.ok_or_else(|| ApiError::internal("no SSO key for a connection"))?;
    tx.rollback().await?;
    let discovery = state.sso.discover(&c.issuer).await.map_err(unavailable)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    let sign_in = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let (_, challenge) = key.pkce(&sign_in);
    let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(unavailable)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &c.client_id)
            .append_pair("redirect_uri", &redirect_uri(&state))
            .append_pair("scope", &c.scopes.join(" "))
            .append_pair("state", &sign_in)
            .append_pair("nonce", &key.nonce(&sign_in))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = q.login_hint.as_deref().filter(|h| !h.is_empty() && h.len() <= 320) {
            query.append_pair("login_hint", hint);
        }
    }
    let expires = state.clock.now().unix_timestamp() + STATE_SECS;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .append(header::SET_COOKIE, state_cookie(&state, &key.sign_state(c.id, &sign_in, expires), STATE_SECS));
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// Why a sign-in through a connection was refused; audited, then answered with its code.
struct Refusal {
    code: &'static str,
    reason: String,
    user: Option<steward_core::UserId>,
    email: Option<String>,
}

impl Refusal {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Refusal { code, reason: reason.into(), user: None, email: None }
    }
}

/// Completes the sign-in the provider sent back: code exchange, ID token, user, roles, session.
async fn callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let wants_page = wants_page(&headers);
    let mut response = match complete_sign_in(&state, ip, &headers, q).await {
        Ok(response) => response,
        // The provider sent a person's browser here: it gets a page of the instance.
        Err(e) if wants_page => {
            let problem = e.problem();
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            crate::pages::PageError::Status(status, refusal_sentence(&problem.code, &problem.detail)).into_response()
        }
        Err(e) => e.into_response(),
    };
    // The sign-in is over either way.
    response.headers_mut().append(header::SET_COOKIE, state_cookie(&state, "", 0));
    response
}

/// Whether the caller is a browser that asked for a page.
fn wants_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
}

/// What a person reads when single sign-on refuses them: what happened and what to do.
fn refusal_sentence(code: &str, detail: &str) -> String {
    let reason = detail.trim_start_matches("single sign-on refused: ");
    match code {
        "sso_state_invalid" => {
            "This sign-in was not started here, or it took too long. Start again from the sign-in page.".into()
        }
        "sso_unavailable" => {
            "The identity provider could not be reached. Try again in a few minutes; if it keeps failing, tell your \
             administrator."
                .into()
        }
        "sso_user_inactive" => {
            format!(
                "Single sign-on cannot sign you in here: {reason}. Ask your administrator to reactivate your account."
            )
        }
        _ => format!(
            "Single sign-on refused this sign-in: {reason}. Start again from the sign-in page, or ask your administrator."
        ),
    }
}

/// The callback's work: the provider's answer checked, the person signed in or refused.
async fn complete_sign_in(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> ApiResult<Response> {
    let bad_state = || {
        ApiError::other(
            StatusCode::BAD_REQUEST,
            "sso_state_invalid",
            "this sign-in was not started here, or it expired; start again",
        )
    };
    let sign_in = q.state.clone().ok_or_else(bad_state)?;
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let key = state.sso.key(tx.as_mut()).await?.ok_or_else(bad_state)?;
    let cookie_value = cookie(headers, STATE_COOKIE).ok_or_else(bad_state)?;
    let connection_id = key.verify_state(&cookie_value, &sign_in, now.unix_timestamp()).ok_or_else(bad_state)?;
    let c = tx.sso_connection(connection_id).await?.ok_or_else(bad_state)?;
    tx.rollback().await?;

    let outcome = match exchange(state, &c, &key, &sign_in, &q, now).await {
        Ok((id, groups)) => sign_in_user(state, &c, id, &groups, ip, headers, now).await?,
        Err(refusal) => Err(refusal),
    };
    match outcome {
        Ok((user, secret, expires_at)) => {
            let target = if user.instance_roles.is_empty() { "/app" } else { "/admin" };
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static(target));
            set_session_cookies(state, response.headers_mut(), &secret, (expires_at - now).whole_seconds());
            Ok(response)
        }
        Err(refusal) => Err(refused(state, &c, refusal, now).await?),
    }
}

/// Audits a refused sign-in as `sso.refused` and gives the refusal to answer (a page for a
/// person's browser, see [`callback`]).
async fn refused(state: &AppState, c: &SsoConnectionRow, refusal: Refusal, now: OffsetDateTime) -> ApiResult<ApiError> {
    let tx = state.store.write().await?;
    let target = refusal.user.map_or_else(|| c.id.to_string(), |u| u.to_string());
    let kind = if refusal.user.is_some() { TargetType::User } else { TargetType::Instance };
    let mut event = AuditDraft::new("sso.refused", Actor::SYSTEM, kind, target)
        .in_org_opt(c.org_id)
        .detail(json!({ "connection_id": c.id, "code": refusal.code, "reason": refusal.reason }));
    if let Some(email) = &refusal.email {
        event = event.personal(json!({ "email": email }));
    }
    state.commit(tx, vec![event], now).await?;
    let status = if refusal.code == "sso_unavailable" { StatusCode::BAD_GATEWAY } else { StatusCode::UNAUTHORIZED };
    Ok(ApiError::other(status, refusal.code, format!("single sign-on refused: {}", refusal.reason)))
}

/// Trades the code for tokens and reads who the provider says signed in, with their groups.
async fn exchange(
    state: &AppState,
    c: &SsoConnectionRow,
    key: &crate::sso::SsoKey,
    sign_in: &str,
    q: &CallbackQuery,
    now: OffsetDateTime,
) -> Result<(ExternalIdentity, Vec<String>), Refusal> {
    if let Some(error) = &q.error {
        let safe: String = error.chars().filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_').take(64).collect();
        return Err(Refusal::new("sso_failed", format!("the provider answered {safe}")));
    }
    // RFC 9207: a provider that names itself must be the one this sign-in went to.
    if q.iss.as_deref().is_some_and(|iss| iss != c.issuer) {
        return Err(Refusal::new("sso_failed", "the response came from another issuer"));
    }
    let code = q.code.as_deref().ok_or_else(|| Refusal::new("sso_failed", "no authorization code"))?;
    let discovery = state.sso.discover(&c.issuer).await.map_err(|e| {
        tracing::warn!(error = %e, "discovery failed");
        Refusal::new("sso_unavailable", "the provider's discovery document could not be read")
    })?;
    let tokens = request_tokens(state, c, key, sign_in, code, &discovery).await?;
    let id_token =
        tokens.get("id_token").and_then(Value::as_str).ok_or_else(|| Refusal::new("sso_failed", "no ID token"))?;
    let kid = crate::jwt::decode(id_token).ok().and_then(|u| u.kid().map(str::to_owned));
    let keys = state.sso.jwks(&discovery.jwks_uri, kid.as_deref()).await.map_err(|e| {
        tracing::warn!(error = %e, "JWKS fetch failed");
        Refusal::new("sso_unavailable", "the provider's keys could not be read")
    })?;
    let mut claims = validate_id_token(id_token, &keys, &c.issuer, &c.client_id, &key.nonce(sign_in), now)
        .map_err(|e| Refusal::new("sso_failed", format!("invalid ID token: {}", e.reason())))?;
    let wanted = [&c.claims.email, &c.claims.name, &c.claims.groups];
    if let (Some(userinfo), Some(access)) =
        (&discovery.userinfo_endpoint, tokens.get("access_token").and_then(Value::as_str))
        && wanted.iter().any(|w| !claims.contains_key(w.as_str()))
    {
        merge_userinfo(state, userinfo, access, &mut claims).await?;
    }
    let id = ExternalIdentity::from_claims(&c.issuer, &claims, "sub", Some(&c.claims.email), &c.claims.name)
        .ok_or_else(|| Refusal::new("sso_failed", "the ID token has no subject"))?;
    let groups = match claims.get(&c.claims.groups) {
        Some(Value::Array(list)) => list.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
        Some(Value::String(g)) => vec![g.clone()],
        _ => vec![],
    };
    Ok((id, groups))
}

/// Redeems the authorization code at the provider's token endpoint (client_secret_basic unless
/// the provider names only client_secret_post), with the PKCE verifier; answers the tokens.
async fn request_tokens(
    state: &AppState,
    c: &SsoConnectionRow,
    key: &crate::sso::SsoKey,
    sign_in: &str,
    code: &str,
    discovery: &crate::sso::Discovery,
) -> Result<Value, Refusal> {
    let secret = key
        .open(&c.client_secret_sealed)
        .map_err(|_| Refusal::new("sso_failed", "the client secret cannot be opened"))?;
    let (verifier, _) = key.pkce(sign_in);
    let redirect = redirect_uri(state);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let methods = &discovery.token_endpoint_auth_methods_supported;
    let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
    let mut request = state.sso.http().post(&discovery.token_endpoint).header(header::ACCEPT, "application/json");
    if basic {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(enc(&c.client_id), Some(enc(&secret)));
    } else {
        form.push(("client_id", c.client_id.as_str()));
        form.push(("client_secret", secret.as_str()));
    }
    let body = serde_urlencoded::to_string(&form).map_err(|_| Refusal::new("sso_failed", "bad token request"))?;
    let response =
        request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body).send().await.map_err(
            |e| {
                tracing::warn!(error = %e, "token request failed");
                Refusal::new("sso_unavailable", "the provider's token endpoint could not be reached")
            },
        )?;
    let status = response.status();
    let tokens: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = tokens.get("error").and_then(Value::as_str).unwrap_or("unknown");
        let safe: String = error.chars().filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_').take(64).collect();
        return Err(Refusal::new("sso_failed", format!("the token endpoint answered {status} {safe}")));
    }
    Ok(tokens)
}

/// Adds the UserInfo claims the ID token lacks (RFC: its `sub` must be the ID token's).
async fn merge_userinfo(
    state: &AppState,
    url: &str,
    access_token: &str,
    claims: &mut Map<String, Value>,
) -> Result<(), Refusal> {
    let info: Value = match state.sso.http().get(url).bearer_auth(access_token).send().await {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        _ => return Err(Refusal::new("sso_unavailable", "the provider's userinfo endpoint could not be read")),
    };
    let Value::Object(info) = info else { return Err(Refusal::new("sso_failed", "userinfo is not a JSON object")) };
    if info.get("sub") != claims.get("sub") {
        return Err(Refusal::new("sso_failed", "userinfo is about another subject"));
    }
    for (k, v) in info {
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

/// Finds, links or creates the user, checks their status, applies the role mapping and opens
/// the session, all in one transaction with its audit events.
async fn sign_in_user(
    state: &AppState,
    c: &SsoConnectionRow,
    id: ExternalIdentity,
    groups: &[String],
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> ApiResult<Result<(UserRow, String, OffsetDateTime), Refusal>> {
    let email = id.email.as_ref().map(|e| e.as_str().to_owned());
    let refuse = |code: &'static str, reason: &str, user: Option<&UserRow>| {
        Ok(Err(Refusal { code, reason: reason.to_owned(), user: user.map(|u| u.id), email: email.clone() }))
    };
    let mut tx = state.store.write().await?;
    let mut events = Vec::new();
    let (mut user, created) = match identified_user(tx.as_mut(), c, &id, now, &mut events).await? {
        Ok(found) => found,
        Err((code, reason, user)) => {
            tx.rollback().await?;
            return refuse(code, &reason, user.as_ref());
        }
    };
    if let Some(org) = c.org_id {
        if created {
            // An org's connection provisions into its org; the role mapping may raise the role.
            match join_org(tx.as_mut(), c, org, &user, now).await? {
                Ok(event) => events.push(event),
                Err(why) => {
                    tx.rollback().await?;
                    return refuse("sso_user_unknown", &why, None);
                }
            }
        }
        // An org's identity provider signs in only the people that org alone holds.
        if !crate::governance::directory_reach(tx.as_mut(), org, &user).await?.governs() {
            tx.rollback().await?;
            return refuse(
                "sso_not_governed",
                "the organization's identity provider cannot sign in a user that the organization does not alone hold",
                Some(&user),
            );
        }
    }
    events.extend(activate_invited(tx.as_mut(), c, &mut user, now).await?);
    if !user.status.can_sign_in() || user.kind != steward_core::UserKind::Person {
        tx.rollback().await?;
        return refuse("sso_user_inactive", &format!("the user is {}", user.status), Some(&user));
    }
    events.extend(apply_role_mapping(tx.as_mut(), c, &user, groups, now).await?);
    let (secret, session, login) =
        open_session(tx.as_mut(), &user, ip, headers, json!({ "method": "sso", "connection_id": c.id }), now).await?;
    events.push(login);
    state.commit(tx, events, now).await?;
    metrics::counter!("steward_logins_total", "outcome" => "ok").increment(1);
    Ok(Ok((user, secret, session.expires_at)))
}

/// Why the identity found no user to sign in: the refusal's code and reason, and the user it
/// concerns when one is known.
type NoUser = (&'static str, String, Option<UserRow>);

/// The user the provider's identity stands for: linked before (while the connection's domains
/// still take their address), found by a verified email in the connection's domains (and linked
/// now), or created just in time when the connection does. Returns whether it was created.
async fn identified_user(
    tx: &mut dyn Tx,
    c: &SsoConnectionRow,
    id: &ExternalIdentity,
    now: OffsetDateTime,
    events: &mut Vec<AuditDraft>,
) -> ApiResult<Result<(UserRow, bool), NoUser>> {
    let unknown = |reason: &str, user: Option<UserRow>| Ok(Err(("sso_user_unknown", reason.to_owned(), user)));
    let in_domains =
        id.email.as_ref().is_some_and(|e| c.domains.is_empty() || c.domains.iter().any(|d| d == e.domain()));
    match find_user(tx, id).await? {
        Some((user, Found::Linked)) => {
            let domain = user.email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
            if !c.domains.is_empty() && !domain.is_some_and(|d| c.domains.contains(&d)) {
                return unknown("the user's email is outside the connection's domains", Some(user));
            }
            Ok(Ok((user, false)))
        }
        Some((_, Found::ByEmail)) if !in_domains => unknown("the email is outside the connection's domains", None),
        Some((user, Found::ByEmail)) => {
            if user.status.can_sign_in() || user.status == UserStatus::Invited {
                tx.link_external_identity(&id.issuer, &id.subject, user.id, now).await?;
                events.push(
                    AuditDraft::new("user.sso_linked", Actor::SYSTEM, TargetType::User, user.id)
                        .detail(json!({ "connection_id": c.id, "issuer": id.issuer })),
                );
            }
            Ok(Ok((user, false)))
        }
        None if c.jit && in_domains => {
            let detail = json!({ "method": "sso", "connection_id": c.id });
            match create_jit_user(tx, id, detail, now).await {
                Ok((user, event)) => {
                    events.push(event);
                    Ok(Ok((user, true)))
                }
                Err(e) => unknown(&e.problem().detail, None),
            }
        }
        None => unknown("no user has this identity and the connection does not create users", None),
    }
}

/// Signing in through the provider proves the address, as accepting the invitation would: an
/// invited person becomes active.
async fn activate_invited(
    tx: &mut dyn Tx,
    c: &SsoConnectionRow,
    user: &mut UserRow,
    now: OffsetDateTime,
) -> ApiResult<Option<AuditDraft>> {
    if user.status != UserStatus::Invited || user.kind != steward_core::UserKind::Person {
        return Ok(None);
    }
    user.status = UserStatus::Active;
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    Ok(Some(
        AuditDraft::new("user.activated", Actor::SYSTEM, TargetType::User, user.id)
            .detail(json!({ "via": "sso", "connection_id": c.id })),
    ))
}

/// Makes a user just created through an org's connection a member of that org, seats permitting;
/// Err with the reason when the org cannot take them.
async fn join_org(
    tx: &mut dyn Tx,
    c: &SsoConnectionRow,
    org_id: OrgId,
    user: &UserRow,
    now: OffsetDateTime,
) -> ApiResult<Result<AuditDraft, String>> {
    let Some(org) = tx.org(org_id).await? else { return Ok(Err("the connection's organization is gone".into())) };
    if org.state != steward_core::OrgState::Active {
        return Ok(Err(format!("the organization is {}", org.state)));
    }
    if let Err(e) = check_seats(tx, &org, now).await {
        return Ok(Err(e.problem().detail));
    }
    tx.insert_membership(org.id, user.id, OrgRole::Member, now).await?;
    Ok(Ok(AuditDraft::new("org.member_added", Actor::SYSTEM, TargetType::User, user.id)
        .in_org(org.id)
        .detail(json!({ "role": OrgRole::Member, "source": "sso", "connection_id": c.id }))))
}

/// Grants or updates the org roles the user's groups map to. The owner's role is never touched,
/// and a grant past the license's seats is skipped (and audited as such).
async fn apply_role_mapping(
    tx: &mut dyn Tx,
    c: &SsoConnectionRow,
    user: &UserRow,
    groups: &[String],
    now: OffsetDateTime,
) -> ApiResult<Vec<AuditDraft>> {
    let mapping = c.role_mapping.iter().map(|m| (m.group.as_str(), m.org_id, m.role));
    let mut events = Vec::new();
    for (org_id, role) in steward_core::sso::granted_roles(groups, mapping) {
        let Some(org) = tx.org(org_id).await? else { continue };
        if org.state == steward_core::OrgState::Purged {
            continue;
        }
        let rules = rules_view_of(tx, &org, &[user.id]).await?;
        let Ok((change, event)) = org::set_member_role(&rules, user.id, user.status, role, Actor::SYSTEM) else {
            continue;
        };
        if change == RoleChange::Added
            && let Err(e) = check_seats(tx, &org, now).await
        {
            events.push(
                AuditDraft::new("sso.mapping_skipped", Actor::SYSTEM, TargetType::User, user.id)
                    .in_org(org.id)
                    .detail(json!({ "connection_id": c.id, "role": role, "code": e.code() })),
            );
            continue;
        }
        match change {
            RoleChange::Added => tx.insert_membership(org.id, user.id, role, now).await?,
            RoleChange::Changed { .. } => tx.set_membership_role(org.id, user.id, role).await?,
            RoleChange::Unchanged => {}
        }
        if let Some(mut event) = event {
            if let Some(detail) = event.detail.as_object_mut() {
                detail.insert("source".into(), json!("sso"));
                detail.insert("connection_id".into(), json!(c.id));
            }
            events.push(event);
        }
    }
    Ok(events)
}
