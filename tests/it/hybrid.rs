//! Hybrid AD + Entra ID end to end: the real `latchkey serve` with the bundled `ad-ldap` (the
//! real Samba AD DC) as primary and the bundled `azure-ad` as secondary, against the Graph
//! emulator (tests/graph-emulator) whose simulated password hash sync reads the same DC.
//!
//! - a synced user's reset lands in Samba, is never written through Graph, and the change goes
//!   `awaiting-sync` → `synced` when the emulator's sync carries it; with sync stopped it goes
//!   `sync-overdue` after the connector's timeout; both audited;
//! - a cloud-only user (azure-ad as the tenant's primary) is written through Graph with
//!   force-change honoured; throttling is waited out within the budget, and past it the reset
//!   is a 503 naming the connector with nothing written;
//! - Graph's refusals reach the admin as typed errors: a missing permission, a synced account
//!   as primary, an account that is gone; test-connection says which permission is missing;
//! - the client secret is in no log line, no connector answer and no Graph request.

use std::time::{Duration, Instant};

use latchkey_graph_emulator::{EmulatorOptions, GraphEmulator, OnPremSource, SyncSettings};
use latchkey_tests::samba::{UserSpec, dc, random_password};
use latchkey_tests::server::{Db, Options, Server};
use serde_json::{Value, json};

use crate::server_core::{Tenant, add_employee, register_key, tenant_with_ad};

/// An emulator; with `sync`, its password hash sync reads the test DC.
async fn emulator(sync: bool) -> GraphEmulator {
    let on_prem = sync.then(|| {
        let env = std::env::var("LATCHKEY_SAMBA_ENV").expect(
            "LATCHKEY_SAMBA_ENV is not set: start the DC with `tests/services/samba-dc start DIR` \
             and set LATCHKEY_SAMBA_ENV=DIR/env, or run `tests/run`",
        );
        OnPremSource::from_samba_env(env).expect("the Samba DC's env file")
    });
    GraphEmulator::start(EmulatorOptions {
        on_prem,
        sync: SyncSettings {
            interval: Duration::from_millis(300),
            delay: Duration::from_secs(1),
        },
        ..EmulatorOptions::default()
    })
    .await
}

/// A server that sweeps (and so verifies sync) every second, logging at debug level so the
/// secret scan reads as much as the server can write.
async fn server() -> Server {
    Server::start_with(
        Db::Sqlite,
        Options {
            env: vec![
                ("LATCHKEY_SWEEP_SECONDS", "1".to_string()),
                ("RUST_LOG", "debug".to_string()),
            ],
            ..Options::default()
        },
    )
    .await
}

/// Adds the azure-ad connector to tenant `tenant_id` with `role`, pointed at the emulator.
async fn add_entra(
    server: &Server,
    tenant_id: &str,
    owner: &str,
    g: &GraphEmulator,
    role: &str,
    extra: Value,
) -> String {
    let mut config = json!({
        "tenant_id": g.tenant_id(), "client_id": g.client_id(),
        "graph_endpoint": g.url(), "authority": g.url(),
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let connector = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{tenant_id}/connectors"),
            owner,
            Some(json!({"plugin": "azure-ad", "role": role, "config": config,
                        "secrets": {"client_secret": g.client_secret()}})),
        )
        .await;
    assert_eq!(connector["secrets"], json!(["client_secret"]));
    assert!(!connector.to_string().contains(&g.client_secret()));
    connector["id"].as_str().unwrap().to_string()
}

async fn change(server: &Server, tenant_id: &str, token: &str, id: &str) -> Value {
    server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{tenant_id}/password-changes/{id}"),
            token,
            None,
        )
        .await
}

/// Polls change `id` until `done` holds, for at most `timeout`.
async fn wait_for(
    server: &Server,
    tenant_id: &str,
    token: &str,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let until = Instant::now() + timeout;
    loop {
        let c = change(server, tenant_id, token, id).await;
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < until, "timed out; the change is {c:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn reset(server: &Server, t: &Tenant, employee: &str, body: Value) -> (u16, Value) {
    server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(body),
        )
        .await
}

fn manual(password: &str) -> Value {
    json!({"mode": "manual", "password": password, "confirm": password})
}

async fn audit_actions(server: &Server, t: &Tenant, change_id: &str) -> Vec<String> {
    let audit = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/audit?limit=500", t.id),
            &t.owner,
            None,
        )
        .await;
    audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["details"]["change"] == change_id)
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_user_is_set_on_premises_and_sync_carries_it_to_entra() {
    let g = emulator(true).await;
    let server = server().await;
    let dc = dc();
    let t = tenant_with_ad(&server, "hybrid", "owner").await;
    let entra = add_entra(
        &server,
        &t.id,
        &t.owner,
        &g,
        "secondary",
        json!({"sync_timeout_seconds": 30}),
    )
    .await;
    let user = dc.create_user("hyb", UserSpec::default()).await;
    let upn = format!("{}@corp.test", user.username);
    g.add_synced_user(&upn, &format!("Test {}", user.username), &user.username);
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    register_key(&server, &t, keys.path(), &employee, "active").await;
    let synced_before = g.user(&upn).unwrap().last_password_change;

    let password = random_password();
    let (status, accepted) = reset(&server, &t, &employee, manual(&password)).await;
    assert_eq!(status, 202, "{accepted:#}");
    let change_id = accepted["change_id"].as_str().unwrap().to_string();
    let c = change(&server, &t.id, &t.token, &change_id).await;
    assert_eq!(c["state"], "applied", "{c:#}");
    assert_eq!(c["connectors"][&t.connector]["status"], "applied", "{c:#}");
    assert_eq!(c["connectors"][&entra]["status"], "awaiting-sync", "{c:#}");
    assert_eq!(c["sync"], "awaiting-sync", "{c:#}");
    // On-premises has it; Graph was never asked to write it.
    dc.bind(&user.dn, &password)
        .await
        .expect("the new password binds");
    assert!(
        g.requests().iter().all(|r| r.method != "PATCH"),
        "a synced user is not written through Graph"
    );
    assert_eq!(g.user(&upn).unwrap().password_resets, 0);

    // The emulator's hash sync sees pwdLastSet move and lands it; the sweeper verifies.
    let c = wait_for(
        &server,
        &t.id,
        &t.token,
        &change_id,
        Duration::from_secs(30),
        |c| c["sync"] == "synced",
    )
    .await;
    assert_eq!(c["connectors"][&entra]["status"], "synced", "{c:#}");
    assert!(c["connectors"][&entra]["synced_at"].as_i64().is_some());
    assert!(g.user(&upn).unwrap().last_password_change > synced_before);
    let actions = audit_actions(&server, &t, &change_id).await;
    assert!(
        actions.contains(&"password.change.synced".to_string()),
        "{actions:?}"
    );

    // With sync stopped, the next change is overdue once the timeout passes.
    server
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/tenants/{}/connectors/{entra}", t.id),
            &t.owner,
            Some(json!({"config": {
                "tenant_id": g.tenant_id(), "client_id": g.client_id(),
                "graph_endpoint": g.url(), "authority": g.url(),
                "sync_timeout_seconds": 3,
            }})),
        )
        .await;
    g.pause_sync();
    let password = random_password();
    let (status, accepted) = reset(&server, &t, &employee, manual(&password)).await;
    assert_eq!(status, 202, "{accepted:#}");
    let change_id = accepted["change_id"].as_str().unwrap().to_string();
    let c = wait_for(
        &server,
        &t.id,
        &t.token,
        &change_id,
        Duration::from_secs(30),
        |c| c["sync"] != "awaiting-sync",
    )
    .await;
    assert_eq!(c["sync"], "sync-overdue", "{c:#}");
    let message = c["connectors"][&entra]["message"].as_str().unwrap();
    assert!(message.contains("Entra Connect"), "{message}");
    assert_eq!(
        c["state"], "applied",
        "the primary and the key are unaffected"
    );
    let actions = audit_actions(&server, &t, &change_id).await;
    assert!(
        actions.contains(&"password.change.sync-overdue".to_string()),
        "{actions:?}"
    );

    assert_secret_nowhere(&server, &g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_only_user_is_written_through_graph_and_throttling_is_waited_out() {
    let g = emulator(false).await;
    let server = server().await;
    let (tenant_id, owner) = server.tenant_with_admin("cloud", "owner").await;
    let entra = add_entra(&server, &tenant_id, &owner, &g, "primary", json!({})).await;
    let t = Tenant {
        id: tenant_id,
        token: owner.clone(),
        owner,
        connector: entra.clone(),
    };
    let upn = "carol@latchkeytest.onmicrosoft.com";
    g.add_cloud_user(upn, "Carol Cloud");
    let employee = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/employees", t.id),
            &t.owner,
            Some(json!({"connector": entra, "account": upn})),
        )
        .await;
    assert_eq!(employee["username"], "carol");
    let employee = employee["id"].as_str().unwrap().to_string();
    let keys = tempfile::tempdir().unwrap();
    register_key(&server, &t, keys.path(), &employee, "active").await;

    // Entra's own rules, named, before anything is written.
    let (status, refused) = reset(&server, &t, &employee, manual("short1A")).await;
    assert_eq!(status, 422, "{refused:#}");
    let rules: Vec<&str> = refused["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"too-short"), "{refused:#}");
    let (status, refused) = reset(&server, &t, &employee, manual("Zq8-vwx-Plenty€€")).await;
    assert_eq!(status, 422, "{refused:#}");
    assert!(
        refused.to_string().contains("invalid-character"),
        "{refused:#}"
    );
    assert_eq!(g.user(upn).unwrap().password_resets, 0);
    // A password only Entra knows to refuse (its banned-password list): Graph's 400 comes back
    // as a violation named for the connector, and nothing is set.
    let (status, refused) = reset(&server, &t, &employee, manual("Welcome-2026-Zq8!")).await;
    assert_eq!(status, 422, "{refused:#}");
    let violation = &refused["violations"][0];
    assert_eq!(violation["connector"], entra.as_str(), "{refused:#}");
    assert_eq!(violation["rule"], "rejected-by-directory", "{refused:#}");
    assert_eq!(g.user(upn).unwrap().password_resets, 0);

    // Written through Graph, must-change honoured.
    let password = "Zq8!vwx-Plenty-41";
    let mut body = manual(password);
    body["must_change_at_next_logon"] = json!(true);
    let (status, accepted) = reset(&server, &t, &employee, body).await;
    assert_eq!(status, 202, "{accepted:#}");
    let user = g.user(upn).unwrap();
    let profile = user.last_password_profile.unwrap();
    assert_eq!(profile.password.as_deref(), Some(password));
    assert_eq!(profile.force_change_password_next_sign_in, Some(true));
    let change_id = accepted["change_id"].as_str().unwrap();
    let c = change(&server, &t.id, &t.token, change_id).await;
    assert_eq!(c["connectors"][&entra]["status"], "applied", "{c:#}");
    assert_eq!(c["sync"], Value::Null);

    // A generated password satisfies Entra's rules too (its symbols, its classes): Graph
    // takes it.
    let (status, accepted) = reset(&server, &t, &employee, json!({"mode": "generate"})).await;
    assert_eq!(status, 202, "{accepted:#}");
    let generated = g.user(upn).unwrap().password.unwrap();
    assert_ne!(generated, password);
    assert!(generated.len() >= 8, "{}", generated.len());
    assert_eq!(g.user(upn).unwrap().password_resets, 2);

    // Two 429s with Retry-After: 2 — the change succeeds after the waits.
    g.throttle_next(2, 2);
    let started = Instant::now();
    let (status, accepted) = reset(&server, &t, &employee, manual("Zq8!vwx-Plenty-42")).await;
    assert_eq!(status, 202, "{accepted:#}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(
        g.user(upn).unwrap().password.as_deref(),
        Some("Zq8!vwx-Plenty-42")
    );

    // Past the budget: unavailable, naming the connector; nothing written.
    g.throttle_next(50, 30);
    let (status, refused) = reset(&server, &t, &employee, manual("Zq8!vwx-Plenty-43")).await;
    assert_eq!(status, 503, "{refused:#}");
    assert_eq!(refused["connector"], entra.as_str(), "{refused:#}");
    assert!(
        refused["detail"].as_str().unwrap().contains("throttl"),
        "{refused:#}"
    );
    g.clear_faults();
    assert_eq!(
        g.user(upn).unwrap().password.as_deref(),
        Some("Zq8!vwx-Plenty-42")
    );

    assert_secret_nowhere(&server, &g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_refusals_reach_the_admin_as_typed_errors() {
    let g = emulator(false).await;
    let server = server().await;
    let (tenant_id, owner) = server.tenant_with_admin("entra-errors", "owner").await;
    let entra = add_entra(&server, &tenant_id, &owner, &g, "primary", json!({})).await;
    let t = Tenant {
        id: tenant_id,
        token: owner.clone(),
        owner,
        connector: entra.clone(),
    };
    let keys = tempfile::tempdir().unwrap();
    let import = |upn: &'static str| {
        let server = &server;
        let t = &t;
        let entra = entra.clone();
        let keys = keys.path().to_path_buf();
        async move {
            let employee = server
                .expect(
                    201,
                    "POST",
                    &format!("/api/v1/tenants/{}/employees", t.id),
                    &t.owner,
                    Some(json!({"connector": entra, "account": upn})),
                )
                .await;
            let id = employee["id"].as_str().unwrap().to_string();
            register_key(server, t, &keys, &id, "active").await;
            id
        }
    };
    let test_connection = || async {
        server
            .expect(
                200,
                "POST",
                &format!("/api/v1/tenants/{}/connectors/{entra}/test", t.id),
                &t.owner,
                None,
            )
            .await
    };
    // With every permission: token, read, the password permission probe, sync status.
    let report = test_connection().await;
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 3, "{report:#}");
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{report:#}");

    // A synced account cannot be set through Graph: the admin learns what hybrid needs.
    g.add_synced_user("hank@corp.test", "Hank Hybrid", "hank");
    let hank = import("hank@corp.test").await;
    let (status, refused) = reset(&server, &t, &hank, manual("Zq8!vwx-Plenty-51")).await;
    assert_eq!(status / 100, 5, "{refused:#}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("primary"), "{refused:#}");
    assert!(detail.contains("on-premises"), "{refused:#}");

    // The application lost its password permission: denied, naming it; test-connection agrees.
    g.add_cloud_user("ivy@latchkeytest.onmicrosoft.com", "Ivy Cloud");
    let ivy = import("ivy@latchkeytest.onmicrosoft.com").await;
    g.set_app_permissions(&["User.Read.All", "Organization.Read.All"]);
    g.expire_tokens();
    let (status, refused) = reset(&server, &t, &ivy, manual("Zq8!vwx-Plenty-52")).await;
    assert_eq!(status, 502, "{refused:#}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("User-PasswordProfile.ReadWrite.All"),
        "{refused:#}"
    );
    let report = test_connection().await;
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert!(
        failed[0]["advice"]
            .as_str()
            .unwrap()
            .contains("User-PasswordProfile.ReadWrite.All"),
        "{report:#}"
    );
    g.set_app_permissions(&[
        "User.Read.All",
        "User-PasswordProfile.ReadWrite.All",
        "Organization.Read.All",
    ]);
    g.expire_tokens();

    // The account was deleted in Entra after it was imported: not found, named.
    g.remove_user("ivy@latchkeytest.onmicrosoft.com");
    let (status, refused) = reset(&server, &t, &ivy, manual("Zq8!vwx-Plenty-53")).await;
    assert_eq!(status, 502, "{refused:#}");
    assert_eq!(refused["error"]["kind"], "not-found", "{refused:#}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("find the account again"),
        "{refused:#}"
    );

    assert_secret_nowhere(&server, &g);
}

/// The client secret is in no line the server wrote (at debug level) and in no Graph request
/// (only the token endpoint's form carries it).
fn assert_secret_nowhere(server: &Server, g: &GraphEmulator) {
    let secret = g.client_secret();
    let log = server.log();
    assert!(!log.is_empty());
    assert!(
        !log.contains(&secret),
        "the server's log holds the client secret"
    );
    for r in g.requests() {
        assert!(!r.query.as_deref().unwrap_or("").contains(&secret), "{r:?}");
        if !r.is_token_request() {
            assert!(r.form_fields.is_empty(), "{r:?}");
        }
    }
}
