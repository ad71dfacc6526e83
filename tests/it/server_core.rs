//! The server core end to end: the real `latchkey serve` binary on SQLite (and PostgreSQL
//! where the backend matters), the real Samba AD DC, `latchkey agent` with a software key.
//!
//! - the seed's use case: a locked-out user, a generated reset with unlock, the agent relays
//!   the envelope, the key's ack verifies, LDAPS binds prove the new password, and afterwards
//!   no row, WAL page or log line holds the password or the ciphertext;
//! - manual mode: a mismatched confirmation, a password from the host's history, violations
//!   named per connector, a key that may not receive a password, an employee without a key;
//! - workstations: unapproved and revoked ones get nothing, another tenant's key is not found,
//!   a forged ack is refused and the delivery stays;
//! - tenant isolation on every route of the route table; problem+json for malformed input;
//! - crash recovery at start-up through password-changed-at.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyproto::envelope::TrustAnchor;
use keyproto::identity::TenantId;
use keyproto::softkey::SoftwareKey;
use latchkey::api::{Access, ROUTES};
use latchkey::store::{MasterKey, Store};
use latchkey_tests::samba::{ServiceAccount, TestUser, UserSpec, dc};
use latchkey_tests::server::{
    Db, Options, Server, agent, agent_with_input, sqlite_files, stdout_of,
};
use serde_json::{Value, json};

/// A tenant with the AD connector (primary, the delegated service account) and an admin.
pub(crate) struct Tenant {
    pub(crate) id: String,
    /// The admin with the role the test asked for (resets).
    pub(crate) token: String,
    /// The tenant's owner (set-up).
    pub(crate) owner: String,
    pub(crate) connector: String,
}

pub(crate) async fn tenant_with_ad(server: &Server, name: &str, role: &str) -> Tenant {
    let (id, owner) = server.tenant_with_admin(name, "owner").await;
    let token = owner.clone();
    let dc = dc();
    let (svc_dn, svc_password) = dc.service_account(ServiceAccount::Delegated);
    let connector = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{id}/connectors"),
            &token,
            Some(json!({
                "plugin": "ad-ldap",
                "role": "primary",
                "config": {
                    "url": dc.ldaps_url, "base_dn": dc.staff_ou, "bind_dn": svc_dn,
                    "ca_file": dc.ca_file, "timeout_ms": 5000,
                },
                "secrets": {"bind_password": svc_password},
            })),
        )
        .await;
    assert_eq!(connector["secrets"], json!(["bind_password"]));
    assert!(
        !connector.to_string().contains(svc_password),
        "a secret is never shown back"
    );
    let token = if role == "owner" {
        token
    } else {
        let admin = server
            .expect(
                201,
                "POST",
                &format!("/api/v1/tenants/{id}/admins"),
                &token,
                Some(json!({"name": format!("{name} {role}"), "role": role})),
            )
            .await;
        admin["token"].as_str().unwrap().to_string()
    };
    Tenant {
        id,
        token,
        owner,
        connector: connector["id"].as_str().unwrap().to_string(),
    }
}

pub(crate) async fn add_employee(server: &Server, t: &Tenant, user: &TestUser) -> String {
    let employee = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/employees", t.id),
            &t.owner,
            Some(json!({"connector": t.connector, "account": user.username})),
        )
        .await;
    assert_eq!(employee["username"], user.username.as_str());
    employee["id"].as_str().unwrap().to_string()
}

/// A software key made by `latchkey agent init`, registered and (when `status` is given) set to
/// that status and assigned to `employee`. Returns (key id, key file).
pub(crate) async fn register_key(
    server: &Server,
    t: &Tenant,
    dir: &std::path::Path,
    employee: &str,
    status: &str,
) -> (String, std::path::PathBuf) {
    let key_file = dir.join(format!("key-{}.bin", latchkey_tests::samba::rand_u32()));
    let printed = stdout_of(
        &agent(&["init", "--key-file", key_file.to_str().unwrap()]),
        "agent init",
    );
    let public: Value = serde_json::from_str(printed.trim()).expect("agent init prints JSON");
    let key = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/keys", t.id),
            &t.owner,
            Some(public),
        )
        .await;
    assert_eq!(key["status"], "ready");
    let id = key["id"].as_str().unwrap().to_string();
    server
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/tenants/{}/keys/{id}", t.id),
            &t.owner,
            Some(json!({"employee": employee, "status": status})),
        )
        .await;
    (id, key_file)
}

pub(crate) async fn enrollment_code(server: &Server, t: &Tenant) -> String {
    let code = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/enrollment-codes", t.id),
            &t.owner,
            None,
        )
        .await;
    code["code"].as_str().unwrap().to_string()
}

/// `latchkey agent run --once` enrolling with `code` as workstation `name`, in the background
/// (it waits up to 60 s for an admin's approval).
pub(crate) fn spawn_agent_run_once(
    server: &Server,
    code: &str,
    key_file: &std::path::Path,
    name: &str,
) -> tokio::task::JoinHandle<std::process::Output> {
    let args: Vec<String> = [
        "run",
        "--server",
        &server.url,
        "--enrollment-code",
        code,
        "--key-file",
        key_file.to_str().unwrap(),
        "--name",
        name,
        "--once",
        "--approval-timeout",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        agent(&args)
    })
}

/// Runs `latchkey agent run --once` while approving its workstation as soon as it enrolls.
pub(crate) async fn agent_run_once_with_approval(
    server: &Server,
    t: &Tenant,
    key_file: &std::path::Path,
) -> String {
    let code = enrollment_code(server, t).await;
    let run = spawn_agent_run_once(server, &code, key_file, "e2e-workstation");
    let mut approved = false;
    for _ in 0..300 {
        let list = server
            .expect(
                200,
                "GET",
                &format!("/api/v1/tenants/{}/workstations", t.id),
                &t.owner,
                None,
            )
            .await;
        if let Some(w) = list["workstations"]
            .as_array()
            .and_then(|l| l.iter().find(|w| w["status"] == "enrolled"))
        {
            let id = w["id"].as_str().unwrap();
            server
                .expect(
                    200,
                    "POST",
                    &format!("/api/v1/tenants/{}/workstations/{id}/approve", t.id),
                    &t.owner,
                    None,
                )
                .await;
            approved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(approved, "the agent enrolled a workstation");
    let output = run.await.unwrap();
    assert!(
        output.status.success(),
        "agent run --once: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

async fn open_store(server: &Server) -> Store {
    let key = std::fs::read_to_string(server.data_dir.path().join("master.key")).unwrap();
    Store::open(
        &format!(
            "sqlite://{}",
            server.sqlite_file.as_ref().unwrap().display()
        ),
        MasterKey::from_base64(&key).unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_use_case_end_to_end_against_samba() {
    let dc = dc();
    let user = dc.create_user("e2elocked", UserSpec::default()).await;
    // Locked out by bad binds (the domain locks after 3).
    for _ in 0..3 {
        let refused = dc.bind(&user.dn, "Wrong-Passw0rd").await.unwrap_err();
        assert!(refused.contains("data 52e"), "{refused}");
    }
    let locked = dc.bind(&user.dn, &user.password).await.unwrap_err();
    assert!(locked.contains("data 775"), "locked out: {locked}");

    let mut server = Server::start(Db::Sqlite).await;
    let t = tenant_with_ad(&server, "acme-e2e", "helpdesk").await;
    let tested = server
        .expect(
            200,
            "POST",
            &format!("/api/v1/tenants/{}/connectors/{}/test", t.id, t.connector),
            &server.operator_token,
            None,
        )
        .await;
    assert_eq!(
        tested["ok"], true,
        "the delegated account passes every check: {tested:#}"
    );
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    let (key_id, key_file) = register_key(&server, &t, keys.path(), &employee, "active").await;

    // The helpdesk admin resets in generate mode with unlock.
    let (status, answer) = server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "generate", "unlock": true})),
        )
        .await;
    assert_eq!(status, 202, "{answer:#}");
    let change_id = answer["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        answer.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["change_id", "state"],
        "the answer holds nothing else, no password"
    );
    let change = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes/{change_id}", t.id),
            &t.token,
            None,
        )
        .await;
    assert_eq!(change["state"], "applied", "{change:#}");
    assert_eq!(change["connectors"][&t.connector]["ok"], true, "{change:#}");
    assert_eq!(change["delivery"]["state"], "pending");
    // The old password still works until... no: the reset replaced it already.
    assert!(dc.bind(&user.dn, &user.password).await.is_err());

    // The workstation relays the envelope; the key opens it; the ack verifies.
    let agent_log = agent_run_once_with_approval(&server, &t, &key_file).await;
    let change = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes/{change_id}", t.id),
            &t.token,
            None,
        )
        .await;
    assert_eq!(change["delivery"]["state"], "delivered", "{change:#}");

    // What the key types at the login screen is the account's password now.
    let typed = stdout_of(
        &agent(&[
            "type",
            "--key-file",
            key_file.to_str().unwrap(),
            "--account",
            &user.username,
        ]),
        "agent type",
    );
    let password = typed.trim_end().to_string();
    assert!(
        password.len() >= 20,
        "a generated password of the default length"
    );
    dc.bind(&user.dn, &password)
        .await
        .expect("the delivered password binds");
    let old = dc.bind(&user.dn, &user.password).await.unwrap_err();
    assert!(
        old.contains("data 52e"),
        "the old password is refused: {old}"
    );
    assert_eq!(
        dc.read(&user.dn, "lockoutTime").await.as_deref(),
        Some("0"),
        "unlocked"
    );
    assert!(!answer.to_string().contains(&password));
    assert!(!change.to_string().contains(&password));

    // Nobody can retrieve it now: no delivery row holds a ciphertext.
    let store = open_store(&server).await;
    let deliveries = store.deliveries_of_key(&t.id, &key_id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert!(
        deliveries.iter().all(|d| d.ciphertext.is_none()),
        "{deliveries:?}"
    );
    store.close().await;

    // The audit chain holds the story and verifies.
    let audit = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/audit", t.id),
            &t.token,
            None,
        )
        .await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "password.change.begin",
        "password.change.applied",
        "delivery.delivered",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let verified = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/audit/verify", t.id),
            &t.token,
            None,
        )
        .await;
    assert_eq!(verified["ok"], true);

    // After the run: neither the password's UTF-8 nor its UTF-16 bytes anywhere on disk (the
    // database and the WAL the killed server left) or in what the server and the agent printed.
    server.kill();
    let mut scanned = Vec::new();
    for file in sqlite_files(server.sqlite_file.as_ref().unwrap()) {
        scanned.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }
    assert!(
        scanned.len() >= 2,
        "the database and its WAL: {scanned:?}",
        scanned = scanned.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    scanned.push(("server log".into(), server.log().into_bytes()));
    scanned.push(("agent log".into(), agent_log.into_bytes()));
    for (what, bytes) in &scanned {
        for needle in [password.as_bytes().to_vec(), utf16le(&password)] {
            assert!(!contains(bytes, &needle), "the password is in {what}");
        }
    }
    // (Scanned first: the last connection to close checkpoints and removes the WAL.)
    let verify = std::process::Command::new(latchkey_tests::server::binary())
        .args(["audit", "verify", "--database-url"])
        .arg(format!(
            "sqlite://{}",
            server.sqlite_file.as_ref().unwrap().display()
        ))
        .arg("--master-key-file")
        .arg(server.data_dir.path().join("master.key"))
        .output()
        .unwrap();
    assert!(stdout_of(&verify, "audit verify").contains("ok: the audit chain is whole"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_refusals_write_nothing_and_name_every_rule() {
    let dc = dc();
    let user = dc.create_user("e2emanual", UserSpec::default()).await;
    let server = Server::start(Db::Sqlite).await;
    let t = tenant_with_ad(&server, "acme-manual", "helpdesk").await;
    let employee = add_employee(&server, &t, &user).await;
    let path = format!("/api/v1/tenants/{}/employees/{employee}/password", t.id);

    // No key yet: 409 naming it.
    let (status, problem) = server
        .call("POST", &path, &t.token, Some(json!({"mode": "generate"})))
        .await;
    assert_eq!(
        (status, problem["precondition"].as_str()),
        (409, Some("no-key")),
        "{problem:#}"
    );

    let keys = tempfile::tempdir().unwrap();
    let (key_id, _) = register_key(&server, &t, keys.path(), &employee, "active").await;

    // A mismatched confirmation: 422 beside the field, and nothing written.
    let (status, problem) = server
        .call("POST", &path, &t.token, Some(json!({"mode": "manual", "password": "Corr3ct-Horse-1", "confirm": "Corr3ct-Horse-2"})))
        .await;
    assert_eq!(status, 422, "{problem:#}");
    assert_eq!(problem["errors"][0]["field"], "confirm");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/invalid-field")
    );
    assert!(
        !problem.to_string().contains("Corr3ct-Horse"),
        "no password in the error"
    );

    // Every violation together, each naming its connector and rule.
    let (status, problem) = server
        .call(
            "POST",
            &path,
            &t.token,
            Some(json!({"mode": "manual", "password": "abc", "confirm": "abc"})),
        )
        .await;
    assert_eq!(status, 422, "{problem:#}");
    let rules: Vec<(&str, &str)> = problem["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["connector"].as_str().unwrap(),
                v["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        rules.contains(&(t.connector.as_str(), "too-short")),
        "{rules:?}"
    );
    assert!(
        rules.contains(&(t.connector.as_str(), "not-complex")),
        "{rules:?}"
    );
    let changes = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes", t.id),
            &t.token,
            None,
        )
        .await;
    assert_eq!(changes["changes"], json!([]), "nothing was written");
    dc.bind(&user.dn, &user.password)
        .await
        .expect("the directory is untouched");

    // The check endpoint says the same without changing anything.
    let check = server
        .expect(
            200,
            "POST",
            &format!("{path}/check"),
            &t.token,
            Some(json!({"password": "abc"})),
        )
        .await;
    assert_eq!(check["ok"], false);

    // A good password goes through; the same one again is in the host's history.
    let chosen = format!("Manual-{:08x}-Ok!", latchkey_tests::samba::rand_u32());
    let body = json!({"mode": "manual", "password": chosen, "confirm": chosen, "must_change_at_next_logon": false});
    let answer = server
        .expect(202, "POST", &path, &t.token, Some(body.clone()))
        .await;
    assert!(!answer.to_string().contains(&chosen));
    dc.bind(&user.dn, &chosen)
        .await
        .expect("the typed password is set");
    let (status, problem) = server
        .call("POST", &path, &t.token, Some(body.clone()))
        .await;
    assert_eq!(status, 422, "{problem:#}");
    let violations = problem["violations"].as_array().unwrap();
    assert!(
        violations
            .iter()
            .any(|v| v["rule"] == "in-history" && v["connector"] == "latchkey"),
        "{violations:?}"
    );

    // A locked key may not receive a password: 409 naming the key's status.
    server
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/tenants/{}/keys/{key_id}", t.id),
            &t.owner,
            Some(json!({"status": "locked"})),
        )
        .await;
    let other = format!("Other-{:08x}-Ok!", latchkey_tests::samba::rand_u32());
    let (status, problem) = server
        .call(
            "POST",
            &path,
            &t.token,
            Some(json!({"mode": "manual", "password": other, "confirm": other})),
        )
        .await;
    assert_eq!(status, 409, "{problem:#}");
    assert_eq!(problem["precondition"], "key-status");
    assert!(
        problem["detail"].as_str().unwrap().contains("locked"),
        "{problem:#}"
    );
    dc.bind(&user.dn, &chosen)
        .await
        .expect("nothing changed in the directory");

    // Malformed JSON and unknown fields: 400 problem+json saying what is wrong.
    let response = server
        .http
        .post(format!("{}{path}", server.url))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .body("{\"mode\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let (status, problem) = server
        .call(
            "POST",
            &path,
            &t.token,
            Some(json!({"mode": "generate", "colour": "blue"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem:#}"
    );
    // A helpdesk admin may reset but not manage connectors.
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/keys", t.id),
            &t.token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workstations_get_nothing_until_approved_and_a_forged_ack_is_refused() {
    let dc = dc();
    let user = dc.create_user("e2ews", UserSpec::default()).await;
    let server = Server::start(Db::Sqlite).await;
    let t = tenant_with_ad(&server, "acme-ws", "owner").await;
    let other = tenant_with_ad(&server, "other-ws", "owner").await;
    let employee = add_employee(&server, &t, &user).await;

    // A key in this test process, so the test can forge with it.
    let mut key = SoftwareKey::generate("soft-forge", &mut rand_core::OsRng).unwrap();
    let public = json!({
        "serial": "soft-forge",
        "kem_public_key": URL_SAFE_NO_PAD.encode(key.identity().kem_public_key()),
        "sig_public_key": URL_SAFE_NO_PAD.encode(key.identity().sig_public_key().as_bytes()),
    });
    let registered = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/keys", t.id),
            &t.token,
            Some(public),
        )
        .await;
    let key_id = registered["id"].as_str().unwrap().to_string();
    server
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/tenants/{}/keys/{key_id}", t.id),
            &t.token,
            Some(json!({"employee": employee, "status": "active"})),
        )
        .await;

    // Enrolment: a code is used once.
    let code = enrollment_code(&server, &t).await;
    let enrolled = server
        .expect(
            201,
            "POST",
            "/api/v1/client/enroll",
            "",
            Some(json!({"code": code, "name": "desk-1"})),
        )
        .await;
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/client/enroll",
            "",
            Some(json!({"code": code, "name": "desk-2"})),
        )
        .await;
    assert_eq!(status, 403, "a used code does not enroll again");
    let ws_token = enrolled["token"].as_str().unwrap().to_string();
    let ws_id = enrolled["id"].as_str().unwrap().to_string();
    let server_key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(enrolled["server_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    key.provision(TrustAnchor {
        tenant: TenantId(*uuid_bytes(&t.id)),
        server_key: ed25519_dalek::VerifyingKey::from_bytes(&server_key).unwrap(),
    })
    .unwrap();

    // A reset queues an envelope.
    let change = server
        .expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "generate"})),
        )
        .await;
    let change_id = change["change_id"].as_str().unwrap();
    let pull = format!("/api/v1/client/keys/{key_id}/deliveries");

    // Not approved yet: 403 and nothing.
    let (status, problem) = server.call("GET", &pull, &ws_token, None).await;
    assert_eq!(status, 403, "{problem:#}");
    assert!(
        problem["detail"].as_str().unwrap().contains("approve"),
        "{problem:#}"
    );
    server
        .expect(
            200,
            "POST",
            &format!("/api/v1/tenants/{}/workstations/{ws_id}/approve", t.id),
            &t.token,
            None,
        )
        .await;

    // A forged ack for the delivery before anyone pulled it: refused, and it stays pending.
    let status_path = format!("/api/v1/tenants/{}/password-changes/{change_id}", t.id);
    let before = server
        .expect(200, "GET", &status_path, &t.token, None)
        .await;
    assert_eq!(before["delivery"]["state"], "pending");
    let pending_id = before["delivery"]["id"].as_str().unwrap().to_string();
    let (status, problem) = server
        .call(
            "POST",
            &format!("/api/v1/client/keys/{key_id}/acks"),
            &ws_token,
            Some(json!({"delivery": pending_id, "ack": URL_SAFE_NO_PAD.encode([7u8; 178])})),
        )
        .await;
    assert_eq!(status, 422, "{problem:#}");
    let after = server
        .expect(200, "GET", &status_path, &t.token, None)
        .await;
    assert_eq!(after["delivery"]["state"], "pending", "{after:#}");

    // Another tenant's key (and this tenant's admin approving another tenant's workstation): 404.
    let foreign = server
        .expect(201, "POST", &format!("/api/v1/tenants/{}/keys", other.id), &other.token, Some(json!({
            "serial": "soft-foreign",
            "kem_public_key": URL_SAFE_NO_PAD.encode(key.identity().kem_public_key()),
            "sig_public_key": URL_SAFE_NO_PAD.encode(key.identity().sig_public_key().as_bytes()),
        })))
        .await;
    let (status, _) = server
        .call(
            "GET",
            &format!(
                "/api/v1/client/keys/{}/deliveries",
                foreign["id"].as_str().unwrap()
            ),
            &ws_token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/workstations/{ws_id}/approve", other.id),
            &other.token,
            None,
        )
        .await;
    assert_eq!(status, 404, "another tenant's workstation is not found");

    // Approved: the envelope arrives; the key opens it.
    let pulled = server
        .expect(200, "GET", &format!("{pull}?wait=5"), &ws_token, None)
        .await;
    let deliveries = pulled["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{pulled:#}");
    let delivery_id = deliveries[0]["id"].as_str().unwrap().to_string();
    let envelope = URL_SAFE_NO_PAD
        .decode(deliveries[0]["envelope"].as_str().unwrap())
        .unwrap();
    let ack = key
        .receive(&envelope, latchkey::store::now() as u64)
        .expect("the key opens it");
    assert!(key.credential_for_account(&user.username).is_some());

    // A forged ack (one bit changed, or signed by nobody) is refused; the delivery stays.
    let acks = format!("/api/v1/client/keys/{key_id}/acks");
    let mut forged = ack.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut zeroed = ack.clone();
    zeroed[40..80].fill(0);
    for bad in [forged, zeroed, b"not an ack".to_vec()] {
        let (status, problem) = server
            .call(
                "POST",
                &acks,
                &ws_token,
                Some(json!({"delivery": delivery_id, "ack": URL_SAFE_NO_PAD.encode(&bad)})),
            )
            .await;
        assert_eq!(status, 422, "{problem:#}");
        assert!(problem["type"].as_str().unwrap().ends_with("/ack-refused"));
    }
    let state = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes/{change_id}", t.id),
            &t.token,
            None,
        )
        .await;
    assert_eq!(state["delivery"]["state"], "leased", "{state:#}");

    // In a batch, each ack is answered on its own: the forged one refused, nothing delivered.
    let batch = server
        .expect(
            200,
            "POST",
            &acks,
            &ws_token,
            Some(json!({"acks": [
                {"delivery": delivery_id, "ack": URL_SAFE_NO_PAD.encode(b"forged in a batch")},
            ]})),
        )
        .await;
    assert!(
        batch["results"][0]["error"]["type"] == "ack-refused",
        "{batch:#}"
    );
    let (status, _) = server
        .call("POST", &acks, &ws_token, Some(json!({"acks": []})))
        .await;
    assert_eq!(status, 400, "an empty batch is not an ack");

    // The genuine ack: delivered.
    let done = server
        .expect(
            200,
            "POST",
            &acks,
            &ws_token,
            Some(json!({"delivery": delivery_id, "ack": URL_SAFE_NO_PAD.encode(&ack)})),
        )
        .await;
    assert_eq!(done["state"], "delivered");
    // Repeating the genuine ack is harmless; a forged one is refused even now.
    let again = server
        .expect(
            200,
            "POST",
            &acks,
            &ws_token,
            Some(json!({"delivery": delivery_id, "ack": URL_SAFE_NO_PAD.encode(&ack)})),
        )
        .await;
    assert_eq!(again["state"], "delivered");
    let (status, _) = server
        .call(
            "POST",
            &acks,
            &ws_token,
            Some(json!({"delivery": delivery_id, "ack": URL_SAFE_NO_PAD.encode(b"forged")})),
        )
        .await;
    assert_eq!(status, 422);

    // Revoked: the token stops working.
    server
        .expect(
            200,
            "POST",
            &format!("/api/v1/tenants/{}/workstations/{ws_id}/revoke", t.id),
            &t.token,
            None,
        )
        .await;
    let (status, _) = server.call("GET", &pull, &ws_token, None).await;
    assert_eq!(status, 403, "a revoked workstation gets nothing");
}

fn uuid_bytes(id: &str) -> Box<[u8; 16]> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let bytes = hex::decode(hex).expect("a UUID");
    Box::new(bytes.try_into().expect("16 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_route_hides_other_tenants_and_every_route_is_served() {
    let server = Server::start(Db::Sqlite).await;
    let (a, a_owner) = server.tenant_with_admin("iso-a", "owner").await;
    let (b, _) = server.tenant_with_admin("iso-b", "owner").await;
    let openapi = server
        .expect(200, "GET", "/api/v1/openapi.json", "", None)
        .await;
    for route in ROUTES {
        assert!(
            openapi["paths"][route.path][route.method.to_lowercase()].is_object(),
            "{} {} is in the OpenAPI document",
            route.method,
            route.path
        );
        let path = route
            .path
            .replace("{tenant}", &b)
            .replace("{employee}", "00000000-0000-4000-8000-000000000001")
            .replace("{id}", "00000000-0000-4000-8000-000000000002")
            .replace("{key}", "00000000-0000-4000-8000-000000000003");
        let body = matches!(route.method, "POST" | "PATCH").then(|| json!({}));
        let (status, problem) = server
            .call(route.method, &path, &a_owner, body.clone())
            .await;
        let routed = !problem.to_string().contains("route not found");
        assert!(
            routed,
            "{} {} is served: {status} {problem}",
            route.method, route.path
        );
        match route.access {
            Access::Tenant(_) if route.path.contains("{tenant}") => {
                assert_eq!(
                    status, 404,
                    "{} {} as another tenant's owner: {problem}",
                    route.method, route.path
                );
                assert_eq!(
                    problem["detail"], "tenant not found",
                    "{} {}",
                    route.method, route.path
                );
            }
            Access::Operator => assert_eq!(status, 403, "{} {}", route.method, route.path),
            Access::Workstation => assert_eq!(
                status, 403,
                "{} {} with an admin's token",
                route.method, route.path
            ),
            _ => {}
        }
        if route.access != Access::Public {
            let (status, _) = server.call(route.method, &path, "", body).await;
            assert!(
                matches!(status, 401 | 403),
                "{} {} without a token: {status}",
                route.method,
                route.path
            );
        }
    }
    // The owner of A still sees A.
    server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{a}/connectors"),
            &a_owner,
            None,
        )
        .await;
    let metrics = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("latchkey_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/api/v1/tenants/{tenant}/connectors\""),
        "labelled by route, not path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_interrupted_by_a_crash_is_resolved_at_start_up() {
    let dc = dc();
    let landed = dc.create_user("e2ecrash1", UserSpec::default()).await;
    let lost = dc.create_user("e2ecrash2", UserSpec::default()).await;
    let mut server = Server::start_with(
        Db::Sqlite,
        Options {
            plugins: vec!["test-echo"],
            ..Options::default()
        },
    )
    .await;
    let t = tenant_with_ad(&server, "acme-crash", "owner").await;
    // A secondary the crash left without an outcome: recovery names it.
    let secondary = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/connectors", t.id),
            &t.token,
            Some(json!({"plugin": "test-echo", "role": "secondary"})),
        )
        .await;
    let secondary = secondary["id"].as_str().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut held = Vec::new();
    for user in [&landed, &lost] {
        let employee = add_employee(&server, &t, user).await;
        let (key_id, _) = register_key(&server, &t, keys.path(), &employee, "active").await;
        held.push((employee, key_id));
    }
    server.kill();
    // The users' own pwdLastSet is from their creation, a second or more before the changes.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // As if the server had died mid-change: each change sealed and held, applying; for the
    // first, the directory took the password before the crash; for the second, it did not.
    let store = open_store(&server).await;
    let mut changes = Vec::new();
    for ((employee, key_id), user) in held.iter().zip([&landed, &lost]) {
        let key = store.key(&t.id, key_id).await.unwrap();
        let server_key = store.tenant_signing_key(&t.id).await.unwrap();
        let password = secrecy::SecretString::from(format!(
            "Crash-{:08x}-Pw!",
            latchkey_tests::samba::rand_u32()
        ));
        let at = latchkey::store::now();
        let sealed = latchkey::delivery::seal_for_key(
            &server_key,
            &key,
            &user.username,
            &user.username,
            &password,
            1,
            at,
            3600,
        )
        .unwrap();
        let (change, _) = store
            .begin_change(
                &t.id,
                latchkey::store::NewChange {
                    employee_id: employee.clone(),
                    key_id: key_id.clone(),
                    actor: "admin".into(),
                    mode: latchkey::store::ChangeMode::Generate,
                    options: json!({}),
                    slot: user.username.clone(),
                    delivery_id: sealed.delivery_id,
                    sequence: sealed.sequence,
                    envelope: sealed.envelope,
                    receipt: sealed.receipt,
                    not_after: Some(sealed.not_after),
                    history_hash: None,
                },
                at,
            )
            .await
            .unwrap();
        store
            .set_change_state(
                &t.id,
                &change.id,
                latchkey::store::ChangeState::Applying,
                None,
                at,
            )
            .await
            .unwrap();
        changes.push(change.id);
        if user.username == landed.username {
            // Wait a second, so the directory's change is clearly after the change began.
            tokio::time::sleep(Duration::from_secs(1)).await;
            set_password_as_admin(user, secrecy::ExposeSecret::expose_secret(&password)).await;
        }
    }
    store.close().await;

    server.spawn().await;
    let released = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes/{}", t.id, changes[0]),
            &t.token,
            None,
        )
        .await;
    assert_eq!(released["state"], "partially_applied", "{released:#}");
    let note = released["failure"].as_str().unwrap();
    assert!(
        note.contains(&format!("secondary connector {secondary} may not have it")),
        "{note}"
    );
    assert_eq!(
        released["delivery"]["state"], "pending",
        "the key will get the password the directory has"
    );
    let failed = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes/{}", t.id, changes[1]),
            &t.token,
            None,
        )
        .await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert_eq!(failed["delivery"]["state"], "failed");
    assert!(failed["failure"].as_str().unwrap().contains("Reset again"));
    dc.bind(&lost.dn, &lost.password)
        .await
        .expect("the second user's directory is untouched");
    let audit = server
        .expect(
            200,
            "GET",
            &format!(
                "/api/v1/tenants/{}/audit?action=password.change.recovered",
                t.id
            ),
            &t.token,
            None,
        )
        .await;
    assert_eq!(audit["records"].as_array().unwrap().len(), 2);
}

/// Sets `user`'s password as the DC's Administrator (what a primary connector would have done).
async fn set_password_as_admin(user: &TestUser, password: &str) {
    let mut admin = dc().admin().await;
    let quoted = latchkey_plugin_sdk::unicode_pwd::encode(password);
    let result = admin
        .modify(
            &user.dn,
            vec![ldap3::Mod::Replace(
                b"unicodePwd".to_vec(),
                std::collections::HashSet::from([quoted]),
            )],
        )
        .await
        .unwrap();
    assert_eq!(result.rc, 0, "{}", result.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_their_own_password_from_the_workstation() {
    let dc = dc();
    let user = dc
        .create_user("e2euser", UserSpec::in_groups(&[&dc.pso_group_dn]))
        .await;
    let server = Server::start(Db::Postgres).await;
    let t = tenant_with_ad(&server, "acme-user", "owner").await;
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    let (_, key_file) = register_key(&server, &t, keys.path(), &employee, "active").await;
    server
        .expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "generate"})),
        )
        .await;
    agent_run_once_with_approval(&server, &t, &key_file).await;
    let key_path = key_file.to_str().unwrap();
    let first = stdout_of(
        &agent(&["type", "--key-file", key_path, "--account", &user.username]),
        "agent type",
    );

    let chosen = format!("Mine-{:08x}-Pw!", latchkey_tests::samba::rand_u32());
    let changed = agent_with_input(
        &[
            "change-password",
            "--key-file",
            key_path,
            "--account",
            &user.username,
        ],
        &format!("{chosen}\n"),
    );
    let answer: Value =
        serde_json::from_str(stdout_of(&changed, "agent change-password").trim()).unwrap();
    assert_eq!(answer["state"], "applied", "{answer:#}");
    dc.bind(&user.dn, &chosen)
        .await
        .expect("the user's new password binds");
    assert!(dc.bind(&user.dn, first.trim_end()).await.is_err());
    // The key receives it on the next run (on PostgreSQL, woken through NOTIFY or the poll).
    let output = agent(&["run", "--key-file", key_path, "--once"]);
    stdout_of(&output, "agent run");
    let typed = stdout_of(
        &agent(&["type", "--key-file", key_path, "--account", &user.username]),
        "agent type",
    );
    assert_eq!(typed.trim_end(), chosen);
    // The same password again is refused by the host's history (the DC's own history also
    // applies to a user's change).
    let again = agent_with_input(
        &[
            "change-password",
            "--key-file",
            key_path,
            "--account",
            &user.username,
        ],
        &format!("{chosen}\n"),
    );
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("previous passwords"), "{stderr}");
    assert!(!stderr.contains(&chosen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_is_down_is_a_503_naming_it_and_nothing_is_written() {
    let dc = dc();
    let user = dc.create_user("e2edown", UserSpec::default()).await;
    let server = Server::start(Db::Sqlite).await;
    let t = tenant_with_ad(&server, "acme-down", "owner").await;
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    register_key(&server, &t, keys.path(), &employee, "active").await;
    // The DC moves away: nothing listens on port 1.
    let (svc_dn, _) = dc.service_account(ServiceAccount::Delegated);
    server
        .expect(
            200,
            "PATCH",
            &format!("/api/v1/tenants/{}/connectors/{}", t.id, t.connector),
            &t.owner,
            Some(json!({
                "config": {"url": "ldaps://127.0.0.1:1", "base_dn": dc.staff_ou, "bind_dn": svc_dn,
                           "ca_file": dc.ca_file, "timeout_ms": 2000},
            })),
        )
        .await;
    let (status, problem) = server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "generate"})),
        )
        .await;
    assert_eq!(status, 503, "{problem:#}");
    assert_eq!(problem["connector"], t.connector.as_str());
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/directory-unavailable")
    );
    assert!(
        problem["detail"].as_str().unwrap().contains(&t.connector),
        "{problem:#}"
    );
    let changes = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes", t.id),
            &t.token,
            None,
        )
        .await;
    assert_eq!(changes["changes"], json!([]), "nothing was written");
    let (status, problem) = server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/employees", t.id),
            &t.owner,
            Some(json!({"connector": t.connector, "account": "anyone"})),
        )
        .await;
    assert_eq!(status, 503, "{problem:#}");
    dc.bind(&user.dn, &user.password)
        .await
        .expect("the directory is untouched");
}

/// A workstation enrolled through the API and approved: its token.
pub(crate) async fn approved_workstation(server: &Server, t: &Tenant, name: &str) -> String {
    let code = enrollment_code(server, t).await;
    let enrolled = server
        .expect(
            201,
            "POST",
            "/api/v1/client/enroll",
            "",
            Some(json!({"code": code, "name": name})),
        )
        .await;
    let id = enrolled["id"].as_str().unwrap();
    server
        .expect(
            200,
            "POST",
            &format!("/api/v1/tenants/{}/workstations/{id}/approve", t.id),
            &t.owner,
            None,
        )
        .await;
    enrolled["token"].as_str().unwrap().to_string()
}

async fn a_waiting_workstation_is_woken_by_a_release(db: Db) {
    let dc = dc();
    let user = dc.create_user("e2ewake", UserSpec::default()).await;
    let server = Server::start(db).await;
    let t = tenant_with_ad(&server, "acme-wake", "owner").await;
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    let (key_id, _) = register_key(&server, &t, keys.path(), &employee, "active").await;
    let token = approved_workstation(&server, &t, "desk-wake").await;

    // The poll waits up to 30 s; the reset happens while it waits. Had the release not woken
    // it, it would answer empty when its wait ran out.
    let poll = {
        let http = server.http.clone();
        let url = format!(
            "{}/api/v1/client/keys/{key_id}/deliveries?wait=30",
            server.url
        );
        tokio::spawn(async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "generate"})),
        )
        .await;
    let answer = poll.await.unwrap();
    assert_eq!(
        answer["deliveries"].as_array().unwrap().len(),
        1,
        "{answer:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_workstation_is_woken_by_a_release_on_sqlite() {
    a_waiting_workstation_is_woken_by_a_release(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_workstation_is_woken_by_a_release_on_postgres() {
    a_waiting_workstation_is_woken_by_a_release(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_reset_supersedes_the_undelivered_one() {
    let dc = dc();
    let user = dc.create_user("e2esuper", UserSpec::default()).await;
    let server = Server::start(Db::Sqlite).await;
    let t = tenant_with_ad(&server, "acme-super", "owner").await;
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    let (_, key_file) = register_key(&server, &t, keys.path(), &employee, "active").await;
    let path = format!("/api/v1/tenants/{}/employees/{employee}/password", t.id);
    let mut changes = Vec::new();
    let mut passwords = Vec::new();
    for n in 0..2 {
        let password = format!("Super-{n}-{:08x}-Pw!", latchkey_tests::samba::rand_u32());
        let answer = server
            .expect(
                202,
                "POST",
                &path,
                &t.token,
                Some(json!({"mode": "manual", "password": password, "confirm": password})),
            )
            .await;
        changes.push(answer["change_id"].as_str().unwrap().to_string());
        passwords.push(password);
    }
    let first = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes/{}", t.id, changes[0]),
            &t.token,
            None,
        )
        .await;
    assert_eq!(first["delivery"]["state"], "superseded", "{first:#}");
    agent_run_once_with_approval(&server, &t, &key_file).await;
    let typed = stdout_of(
        &agent(&[
            "type",
            "--key-file",
            key_file.to_str().unwrap(),
            "--account",
            &user.username,
        ]),
        "agent type",
    );
    assert_eq!(
        typed.trim_end(),
        passwords[1],
        "the key holds the newer password"
    );
    dc.bind(&user.dn, &passwords[1])
        .await
        .expect("which the directory has");
}
