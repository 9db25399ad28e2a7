//! A state-machine property test: random sequences of create / add member / transfer /
//! deactivate / reactivate / deprovision / restore over a small population, checking
//! invariants 1–4 and 7 after every step.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app};

const USERS: usize = 3;
const ORGS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    CreateOrg { owner: usize },
    AddMember { org: usize, user: usize, role: &'static str },
    Transfer { org: usize, to: usize },
    Deactivate { user: usize },
    Reactivate { user: usize },
    Deprovision { org: usize },
    Restore { org: usize },
    DeprovisionThenRestore { org: usize },
    CreateDuplicate { user: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let org = 0..ORGS;
    let role = prop::sample::select(vec!["admin", "member", "accountant", "viewer"]);
    prop_oneof![
        2 => user.clone().prop_map(|owner| Op::CreateOrg { owner }),
        3 => (org.clone(), user.clone(), role).prop_map(|(org, user, role)| Op::AddMember { org, user, role }),
        2 => (org.clone(), user.clone()).prop_map(|(org, to)| Op::Transfer { org, to }),
        3 => user.clone().prop_map(|user| Op::Deactivate { user }),
        3 => user.clone().prop_map(|user| Op::Reactivate { user }),
        1 => org.clone().prop_map(|org| Op::Deprovision { org }),
        1 => org.clone().prop_map(|org| Op::Restore { org }),
        1 => org.prop_map(|org| Op::DeprovisionThenRestore { org }),
        1 => user.prop_map(|user| Op::CreateDuplicate { user }),
    ]
}

/// A deactivated user's (org, role) memberships at deactivation, and the orgs touched since.
type Dormant = (Vec<(String, String)>, BTreeSet<String>);

struct Model {
    users: Vec<(String, String)>,
    orgs: Vec<String>,
    /// A token of each user taken while they were active; after deactivation it must be dead.
    tokens: Vec<Option<String>>,
    /// Memberships of each deactivated user as they were at deactivation, and the orgs touched
    /// since (whose roles may legitimately differ).
    dormant: BTreeMap<usize, Dormant>,
}

async fn restorable_state(app: &TestApp, org: &str) -> Value {
    let view = app.get(&format!("/api/v1/orgs/{org}"), &app.admin).await.expect(200);
    let members = app.get(&format!("/api/v1/orgs/{org}/members"), &app.admin).await.expect(200);
    let mut roles = Vec::new();
    for m in members["items"].as_array().unwrap() {
        let id = m["user_id"].as_str().unwrap();
        let n = app.get(&format!("/api/v1/users/{id}/notifications"), &app.admin).await.expect(200);
        let of_org = n["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == org).map(|o| o["categories"].clone());
        roles.push(json!([id, m["role"], n["categories"], of_org]));
    }
    roles.sort_by_key(|r| r[0].as_str().unwrap().to_owned());
    json!({"license": view["license"], "owner": view["owner_id"], "members": roles})
}

fn roles_of(rows: Vec<(String, String, bool)>) -> Vec<(String, String)> {
    rows.into_iter().map(|(o, r, _)| (o, r)).collect()
}

#[track_caller]
fn allowed(status: u16, what: &Op) {
    assert!(matches!(status, 200 | 201 | 204 | 400 | 404 | 409), "{what:?} answered {status}");
}

async fn step(app: &TestApp, model: &mut Model, op: &Op) {
    match op {
        Op::CreateOrg { owner } => {
            let r = app
                .post(
                    "/api/v1/orgs",
                    &app.admin,
                    json!({"name": format!("Org {}", model.orgs.len()), "owner_id": model.users[*owner].0}),
                )
                .await;
            allowed(r.status.as_u16(), op);
            if r.status == 201 && model.orgs.len() < ORGS {
                model.orgs.push(r.body["id"].as_str().unwrap().to_owned());
            }
        }
        Op::AddMember { org, user, role } => {
            let Some(org) = model.orgs.get(*org).cloned() else { return };
            let r = app
                .put(&format!("/api/v1/orgs/{org}/members/{}", model.users[*user].0), &app.admin, json!({"role": role}))
                .await;
            allowed(r.status.as_u16(), op);
            touch(model, &org);
        }
        Op::Transfer { org, to } => {
            let Some(org) = model.orgs.get(*org).cloned() else { return };
            let r = app
                .post(
                    &format!("/api/v1/orgs/{org}/transfer-ownership"),
                    &app.admin,
                    json!({"new_owner_id": model.users[*to].0}),
                )
                .await;
            allowed(r.status.as_u16(), op);
            touch(model, &org);
        }
        Op::Deactivate { user } => {
            let id = model.users[*user].0.clone();
            let before = roles_of(app.memberships(&id).await);
            let r = app.post(&format!("/api/v1/users/{id}/deactivate"), &app.admin, json!({})).await;
            allowed(r.status.as_u16(), op);
            if r.status == 200 {
                // Orgs the user owned were handed to the placeholder: their roles there changed.
                let owner_orgs: BTreeSet<String> =
                    before.iter().filter(|(_, r)| r == "owner").map(|(o, _)| o.clone()).collect();
                model.dormant.insert(*user, (before, owner_orgs));
                if let Some(t) = &model.tokens[*user] {
                    app.get("/api/v1/me", t).await.expect_problem(401, "unauthenticated");
                }
            }
        }
        Op::Reactivate { user } => {
            let id = model.users[*user].0.clone();
            let r = app.post(&format!("/api/v1/users/{id}/reactivate"), &app.admin, json!({})).await;
            allowed(r.status.as_u16(), op);
            if r.status == 200 {
                let (before, touched) = model.dormant.remove(user).expect("only deactivated users reactivate");
                let after = roles_of(app.memberships(&id).await);
                let keep = |v: &Vec<(String, String)>| -> Vec<(String, String)> {
                    v.iter().filter(|(o, _)| !touched.contains(o)).cloned().collect()
                };
                assert_eq!(keep(&after), keep(&before), "invariant 4 for {id}");
                model.tokens[*user] = Some(app.login(&model.users[*user].1, PASSWORD).await);
            }
        }
        Op::Deprovision { org } => {
            let Some(org) = model.orgs.get(*org).cloned() else { return };
            let r = app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "test"})).await;
            allowed(r.status.as_u16(), op);
            touch(model, &org);
        }
        Op::Restore { org } => {
            let Some(org) = model.orgs.get(*org).cloned() else { return };
            let r = app.post(&format!("/api/v1/orgs/{org}/restore"), &app.admin, json!({})).await;
            allowed(r.status.as_u16(), op);
            touch(model, &org);
        }
        Op::DeprovisionThenRestore { org } => {
            let Some(org) = model.orgs.get(*org).cloned() else { return };
            let before = restorable_state(app, &org).await;
            let r =
                app.post(&format!("/api/v1/orgs/{org}/deprovision"), &app.admin, json!({"reason": "round trip"})).await;
            allowed(r.status.as_u16(), op);
            if r.status == 200 {
                app.post(&format!("/api/v1/orgs/{org}/restore"), &app.admin, json!({})).await.expect(200);
                assert_eq!(restorable_state(app, &org).await, before, "invariant 7");
            }
        }
        Op::CreateDuplicate { user } => {
            let email = model.users[*user].1.to_uppercase();
            let r = app.post("/api/v1/users", &app.admin, json!({"email": email, "name": "Dup"})).await;
            assert_eq!(r.status.as_u16(), 409, "invariant 2: {email} is taken");
        }
    }
}

fn touch(model: &mut Model, org: &str) {
    for (_, touched) in model.dormant.values_mut() {
        touched.insert(org.to_owned());
    }
}

async fn check_invariants(app: &TestApp, model: &Model) {
    let db = app.db().await;
    // 1: exactly one owner per org, the recorded one, a member with role owner.
    let bad = db.i64("SELECT COUNT(*) FROM orgs o WHERE (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id AND m.role = 'owner' \
         AND m.ended_at IS NULL) <> 1 OR NOT EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = o.id AND m.user_id = o.owner_id \
         AND m.role = 'owner' AND m.ended_at IS NULL)", &[]).await;
    assert_eq!(bad, 0, "invariant 1");
    // 2: no two users share an email key, and every user created is still there.
    let dups = db.i64("SELECT COUNT(*) - COUNT(DISTINCT email_key) FROM users", &[]).await;
    assert_eq!(dups, 0, "invariant 2");
    for (id, _) in &model.users {
        let n = db.i64("SELECT COUNT(*) FROM users WHERE id = ?", &[id]).await;
        assert_eq!(n, 1, "invariant 2: users are never deleted");
    }
    // 3: nobody inactive holds a live credential.
    let live = db.i64("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.status IN ('deactivated', 'anonymized') \
         AND s.revoked_at IS NULL", &[]).await;
    assert_eq!(live, 0, "invariant 3");
    // 4 (standing part): a deactivated user's memberships are all dormant, an active user's none.
    let wrong = db.i64("SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.ended_at IS NULL \
         AND u.kind = 'person' AND (m.dormant AND u.status <> 'deactivated' OR NOT m.dormant AND u.status = 'deactivated')", &[]).await;
    assert_eq!(wrong, 0, "invariant 4: dormancy follows the status");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_along_any_sequence_of_lifecycle_steps(ops in prop::collection::vec(op(), 4..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let app = spawn_app().await;
            let mut model = Model { users: Vec::new(), orgs: Vec::new(), tokens: Vec::new(), dormant: BTreeMap::new() };
            for i in 0..USERS {
                let email = format!("u{i}@machine.test");
                let id = app.user(&email).await;
                model.tokens.push(Some(app.login(&email, PASSWORD).await));
                model.users.push((id, email));
            }
            for op in &ops {
                step(&app, &mut model, op).await;
                check_invariants(&app, &model).await;
            }
        });
    }
}
