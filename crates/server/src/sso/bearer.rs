//! Bearer JWTs from trusted issuers: the user a token acts as, and its refusals (logged, and
//! audited at most once a minute when the token was authentic).

use super::*;

/// Refuses a token that proved nothing: made up, forged, misaddressed or stale. Such refusals
/// are logged, not audited, since anyone can send them.
fn refuse(why: impl std::fmt::Display) -> ApiError {
    tracing::info!(reason = %why, "refused a JWT");
    ApiError::unauthenticated("the credentials are not valid")
}

/// Refuses an authentic token (a trusted issuer signed it for Steward, and it is current) and
/// audits why as `jwt.refused`, once a minute at most for the same issuer, subject and reason.
/// The answer is the same as for any other refusal.
async fn refuse_authentic(
    state: &AppState,
    issuer: &JwtIssuerRow,
    id: &ExternalIdentity,
    user: Option<&UserRow>,
    reason: &'static str,
) -> ApiError {
    let due = {
        let mut seen = state.sso.jwt_refusals.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= JWT_REFUSALS_KEPT {
            seen.retain(|_, at| at.elapsed() < JWT_REFUSAL_AUDIT_EVERY);
        }
        let key = (issuer.id, id.subject.clone(), reason);
        let due = seen.get(&key).is_none_or(|at| at.elapsed() >= JWT_REFUSAL_AUDIT_EVERY);
        if due {
            seen.insert(key, Instant::now());
        }
        due
    };
    if due {
        let (kind, target) = match user {
            Some(u) => (TargetType::User, u.id.to_string()),
            None => (TargetType::Instance, issuer.id.to_string()),
        };
        let event = AuditDraft::new("jwt.refused", Actor::SYSTEM, kind, target)
            .detail(json!({ "jwt_issuer_id": issuer.id, "reason": reason }))
            .personal(json!({ "subject": id.subject }));
        let now = state.clock.now();
        let written = match state.store.write().await {
            Ok(tx) => state.commit(tx, vec![event], now).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = written {
            tracing::warn!(error = ?e, "could not audit a refused JWT");
        }
    }
    refuse(reason)
}

async fn issuer_keys(state: &AppState, issuer: &JwtIssuerRow, kid: Option<&str>) -> Result<Vec<PublicKey>, String> {
    match (&issuer.public_key_pem, &issuer.jwks_url) {
        (Some(pem), _) => PublicKey::from_pem(pem).map(|k| vec![k]),
        (None, Some(url)) => state.sso.jwks(url, kid).await.map(|keys| keys.as_ref().clone()),
        (None, None) => Err("the issuer has no key".into()),
    }
}

/// The user a JWT from a trusted issuer acts as, the issuer's id and the token's expiry. The
/// caller checks the user's status, on every request.
pub async fn jwt_user(state: &AppState, token: &str) -> ApiResult<(UserRow, uuid::Uuid, Option<OffsetDateTime>)> {
    let unverified = jwt::decode(token).map_err(refuse)?;
    let iss = unverified.issuer().ok_or_else(|| refuse(JwtError::Issuer))?.to_owned();
    let kid = unverified.kid().map(str::to_owned);
    let mut tx = state.store.read().await?;
    let issuers = tx.jwt_issuers_named(&iss).await?;
    tx.rollback().await?;
    if issuers.is_empty() {
        return Err(refuse(JwtError::Issuer));
    }
    let now = state.clock.now();
    let (issuer, claims) = verify_with(state, issuers, &unverified, kid.as_deref(), now).await?;
    let id = ExternalIdentity::from_claims(
        &issuer.issuer,
        &claims,
        &issuer.subject_claim,
        issuer.email_claim.as_deref(),
        "name",
    )
    .ok_or_else(|| refuse(JwtError::Claim))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .and_then(|e| OffsetDateTime::from_unix_timestamp(e as i64 + jwt::SKEW_SECS).ok());
    let mut tx = state.store.read().await?;
    let found = find_user(tx.as_mut(), &id).await?;
    tx.rollback().await?;
    let in_domains = |email: &str| {
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        issuer.domains.is_empty() || domain.is_some_and(|d| issuer.domains.contains(&d))
    };
    let user = match found {
        Some((user, _)) => user,
        None if issuer.jit && !id.email.as_ref().is_some_and(|e| in_domains(e.as_str())) => {
            return Err(refuse_authentic(state, &issuer, &id, None, "outside_domains").await);
        }
        None if issuer.jit => jit_user(state, &issuer, &id, now).await?,
        None => return Err(refuse_authentic(state, &issuer, &id, None, "unknown_user").await),
    };
    if user.kind != steward_core::UserKind::Person {
        return Err(refuse_authentic(state, &issuer, &id, Some(&user), "service_user").await);
    }
    if !in_domains(&user.email) {
        return Err(refuse_authentic(state, &issuer, &id, Some(&user), "outside_domains").await);
    }
    // An issuer speaks for the people of its domains, not for the instance's admins, unless it
    // was created to.
    if !user.instance_roles.is_empty() && !issuer.allow_instance_roles {
        return Err(refuse_authentic(state, &issuer, &id, Some(&user), "instance_role").await);
    }
    if !user.status.can_sign_in() {
        return Err(refuse_authentic(state, &issuer, &id, Some(&user), "user_inactive").await);
    }
    Ok((user, issuer.id, exp))
}

/// The first of the issuers named by the token's `iss` whose keys verify it and whose issuer and
/// audience its claims match (several issuers may share an `iss`, told apart by audience and
/// perhaps by keys), with the claims.
async fn verify_with(
    state: &AppState,
    issuers: Vec<JwtIssuerRow>,
    unverified: &jwt::Unverified,
    kid: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult<(JwtIssuerRow, serde_json::Map<String, Value>)> {
    let mut last = JwtError::Issuer;
    for issuer in issuers {
        let keys = issuer_keys(state, &issuer, kid).await.map_err(refuse)?;
        match unverified
            .clone()
            .verify(&keys)
            .and_then(|claims| jwt::check_claims(&claims, &issuer.issuer, &issuer.audience, now).map(|()| claims))
        {
            Ok(claims) => return Ok((issuer, claims)),
            Err(e) => last = e,
        }
    }
    Err(refuse(last))
}

/// The user an issuer that creates users just in time signs in for a new identity: created now,
/// unless another request created it meanwhile (writers are serialized).
async fn jit_user(
    state: &AppState,
    issuer: &JwtIssuerRow,
    id: &ExternalIdentity,
    now: OffsetDateTime,
) -> ApiResult<UserRow> {
    let mut tx = state.store.write().await?;
    if let Some((user, _)) = find_user(tx.as_mut(), id).await? {
        tx.rollback().await?;
        return Ok(user);
    }
    let detail = json!({ "method": "jwt", "jwt_issuer_id": issuer.id });
    let (user, event) = create_jit_user(tx.as_mut(), id, detail, now).await.map_err(|e| refuse(e.problem().detail))?;
    state.commit(tx, vec![event], now).await?;
    Ok(user)
}
