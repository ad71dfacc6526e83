//! Several `latchkey serve` replicas on one PostgreSQL database: any replica takes admin calls,
//! workstations poll different replicas for the same keys, every delivery is delivered exactly
//! once, and a replica killed in the middle loses nothing (its leases expire and another
//! replica delivers; changes it was running are recovered by another one).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyproto::envelope::TrustAnchor;
use keyproto::identity::TenantId;
use keyproto::softkey::SoftwareKey;
use latchkey_tests::server::{Db, Options, Server};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// The replicas' URLs, and which are still alive; a call fails over to the next live one.
struct Cluster {
    urls: Vec<String>,
    alive: Vec<AtomicBool>,
    http: reqwest::Client,
}

impl Cluster {
    /// A call to replica `preferred` (or the next live one): (status, body).
    async fn call(
        &self,
        preferred: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        for attempt in 0..self.urls.len() * 2 {
            let i = (preferred + attempt) % self.urls.len();
            if !self.alive[i].load(Ordering::SeqCst) {
                continue;
            }
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.urls[i]))
                .bearer_auth(token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let value = response.json::<Value>().await.unwrap_or(Value::Null);
                    return (status, value);
                }
                // The replica died under us: the request may or may not have happened there.
                Err(_) => continue,
            }
        }
        panic!("no replica answered {method} {path}");
    }
}

struct TestKey {
    id: String,
    username: String,
    key: Mutex<SoftwareKey>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_deliver_every_change_exactly_once_and_survive_losing_one() {
    const CHANGES: usize = 200;
    let options = Options {
        plugins: vec!["test-echo"],
        env: vec![
            ("LATCHKEY_LEASE_SECONDS", "3".into()),
            ("LATCHKEY_SWEEP_SECONDS", "1".into()),
            ("LATCHKEY_RECOVERY_GRACE_SECONDS", "3".into()),
        ],
        ..Options::default()
    };
    let a = Server::start_with(Db::Postgres, options).await;
    let b = a.replica().await;
    let mut c = a.replica().await;
    let cluster = Arc::new(Cluster {
        urls: vec![a.url.clone(), b.url.clone(), c.url.clone()],
        alive: (0..3).map(|_| AtomicBool::new(true)).collect(),
        http: a.http.clone(),
    });
    use reqwest::Method;

    // Set-up, each call on another replica.
    let (tenant, owner) = a.tenant_with_admin("replicas", "owner").await;
    let t = |path: &str| format!("/api/v1/tenants/{tenant}{path}");
    let (status, connector) = cluster
        .call(
            1,
            Method::POST,
            &t("/connectors"),
            &owner,
            Some(json!({"plugin": "test-echo", "role": "primary"})),
        )
        .await;
    assert_eq!(status, 201, "{connector:#}");
    let connector = connector["id"].as_str().unwrap().to_string();

    // Three workstations, one per replica.
    let mut workstations = Vec::new();
    for replica in 0..3 {
        let (_, code) = cluster
            .call(replica, Method::POST, &t("/enrollment-codes"), &owner, None)
            .await;
        let (status, enrolled) = cluster
            .call(
                replica,
                Method::POST,
                "/api/v1/client/enroll",
                "",
                Some(json!({"code": code["code"], "name": format!("ws-{replica}")})),
            )
            .await;
        assert_eq!(status, 201, "{enrolled:#}");
        let id = enrolled["id"].as_str().unwrap();
        let (status, _) = cluster
            .call(
                replica + 1,
                Method::POST,
                &t(&format!("/workstations/{id}/approve")),
                &owner,
                None,
            )
            .await;
        assert_eq!(status, 200);
        workstations.push(enrolled);
    }
    let server_key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(workstations[0]["server_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let anchor = TrustAnchor {
        tenant: TenantId(*uuid::Uuid::parse_str(&tenant).unwrap().as_bytes()),
        server_key: ed25519_dalek::VerifyingKey::from_bytes(&server_key).unwrap(),
    };

    // An employee and an active key per change.
    let mut keys = Vec::new();
    for i in 0..CHANGES {
        let username = format!("user{i:03}");
        let (status, employee) = cluster
            .call(
                i,
                Method::POST,
                &t("/employees"),
                &owner,
                Some(json!({"connector": connector, "account": username})),
            )
            .await;
        assert_eq!(status, 201, "{employee:#}");
        let mut key =
            SoftwareKey::generate(&format!("soft-{i:03}"), &mut rand_core::OsRng).unwrap();
        key.provision(anchor.clone()).unwrap();
        let (status, registered) = cluster
            .call(i + 1, Method::POST, &t("/keys"), &owner, Some(json!({
                "serial": key.serial(),
                "kem_public_key": URL_SAFE_NO_PAD.encode(key.identity().kem_public_key()),
                "sig_public_key": URL_SAFE_NO_PAD.encode(key.identity().sig_public_key().as_bytes()),
            })))
            .await;
        assert_eq!(status, 201, "{registered:#}");
        let id = registered["id"].as_str().unwrap().to_string();
        let (status, _) = cluster
            .call(
                i + 2,
                Method::PATCH,
                &t(&format!("/keys/{id}")),
                &owner,
                Some(json!({"status": "active", "employee": employee["id"]})),
            )
            .await;
        assert_eq!(status, 200);
        keys.push(Arc::new(TestKey {
            id,
            username,
            key: Mutex::new(key),
        }));
    }

    // Pollers: workstation w polls through replica w the keys k with k % 3 == w or
    // (k + 1) % 3 == w, so every key has two workstations on two replicas competing for it.
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let mut pollers = Vec::new();
    for (w, workstation) in workstations.iter().enumerate() {
        let token = workstation["token"].as_str().unwrap().to_string();
        let mine: Vec<Arc<TestKey>> = keys
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 3 == w || (k + 1) % 3 == w)
            .map(|(_, key)| key.clone())
            .collect();
        let (cluster, done, received) = (cluster.clone(), done.clone(), received.clone());
        pollers.push(tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                for key in &mine {
                    let (status, pulled) = cluster
                        .call(
                            w,
                            Method::GET,
                            &format!("/api/v1/client/keys/{}/deliveries", key.id),
                            &token,
                            None,
                        )
                        .await;
                    assert_eq!(status, 200, "{pulled:#}");
                    for delivery in pulled["deliveries"].as_array().unwrap() {
                        let id = delivery["id"].as_str().unwrap().to_string();
                        let envelope = URL_SAFE_NO_PAD
                            .decode(delivery["envelope"].as_str().unwrap())
                            .unwrap();
                        let ack = key
                            .key
                            .lock()
                            .await
                            .receive(&envelope, latchkey::store::now() as u64)
                            .expect("the key opens it");
                        *received.lock().unwrap().entry(id.clone()).or_default() += 1;
                        let (status, acked) = cluster
                            .call(
                                w,
                                Method::POST,
                                &format!("/api/v1/client/keys/{}/acks", key.id),
                                &token,
                                Some(json!({"delivery": id, "ack": URL_SAFE_NO_PAD.encode(&ack)})),
                            )
                            .await;
                        assert_eq!(status, 200, "{acked:#}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // The changes, 8 at a time, spread over the replicas; replica C dies half-way.
    let passwords: Vec<String> = (0..CHANGES)
        .map(|i| format!("Replica-{i}-{:08x}!", latchkey_tests::samba::rand_u32()))
        .collect();
    let started = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for lane in 0..8 {
        let (cluster, started, accepted, keys, passwords, owner, tenant) = (
            cluster.clone(),
            started.clone(),
            accepted.clone(),
            keys.clone(),
            passwords.clone(),
            owner.clone(),
            tenant.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = lane;
            while i < CHANGES {
                started.fetch_add(1, Ordering::SeqCst);
                let employee = {
                    let (_, list) = cluster.call(i, Method::GET, &format!("/api/v1/tenants/{tenant}/employees?q={}", keys[i].username), &owner, None).await;
                    list["employees"][0]["id"].as_str().unwrap().to_string()
                };
                let (status, answer) = cluster
                    .call(i, Method::POST, &format!("/api/v1/tenants/{tenant}/employees/{employee}/password"), &owner,
                        Some(json!({"mode": "manual", "password": passwords[i], "confirm": passwords[i]})))
                    .await;
                if status == 202 {
                    accepted.lock().unwrap().push((i, answer["change_id"].as_str().unwrap().to_string()));
                }
                i += 8;
            }
        }));
    }
    while started.load(Ordering::SeqCst) < CHANGES / 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.alive[2].store(false, Ordering::SeqCst);
    c.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();

    // Wait until nothing is left in flight: every change final, every delivery ended.
    let mut last = Value::Null;
    for _ in 0..600 {
        // What is still in flight in this round (nothing, once everything settled).
        last = Value::Null;
        let (_, list) = cluster
            .call(
                0,
                Method::GET,
                &t("/password-changes?limit=500"),
                &owner,
                None,
            )
            .await;
        let changes = list["changes"].as_array().unwrap().clone();
        if let Some(unfinished) = changes
            .iter()
            .find(|c| c["state"] == "held" || c["state"] == "applying")
        {
            last = unfinished.clone();
        }
        let mut settled = last.is_null();
        if settled {
            for change in &changes {
                let (_, full) = cluster
                    .call(
                        1,
                        Method::GET,
                        &t(&format!(
                            "/password-changes/{}",
                            change["id"].as_str().unwrap()
                        )),
                        &owner,
                        None,
                    )
                    .await;
                let state = full["delivery"]["state"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string();
                if !["delivered", "failed", "superseded", "expired"].contains(&state.as_str()) {
                    settled = false;
                    last = full;
                    break;
                }
            }
        }
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, Ordering::SeqCst);
    for poller in pollers {
        poller.await.unwrap();
    }
    assert!(last.is_null(), "still in flight after 2 minutes: {last:#}");

    // Every accepted change reached its key, with the password the admin typed.
    assert!(
        accepted.len() >= CHANGES * 9 / 10,
        "most changes were accepted: {}",
        accepted.len()
    );
    for (i, change) in &accepted {
        let (_, full) = cluster
            .call(
                0,
                Method::GET,
                &t(&format!("/password-changes/{change}")),
                &owner,
                None,
            )
            .await;
        assert_eq!(full["delivery"]["state"], "delivered", "{full:#}");
        let key = keys[*i].key.lock().await;
        let credential = key
            .credential_for_account(&keys[*i].username)
            .expect("the key holds it");
        assert_eq!(credential.password().expose_secret(), passwords[*i]);
    }
    // Delivered exactly once: one `delivery.delivered` record per delivered delivery, none
    // twice, and no envelope opened by two workstations.
    let (_, audit) = cluster
        .call(
            0,
            Method::GET,
            &t("/audit?action=delivery.delivered&limit=1000"),
            &owner,
            None,
        )
        .await;
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for record in audit["records"].as_array().unwrap() {
        for delivery in record["details"]["deliveries"].as_array().unwrap() {
            *per_delivery
                .entry(delivery.as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(
        per_delivery.len() >= accepted.len(),
        "{} delivered of {} accepted",
        per_delivery.len(),
        accepted.len()
    );
    assert!(
        per_delivery.values().all(|n| *n == 1),
        "a delivery was delivered twice: {per_delivery:?}"
    );
    let received = received.lock().unwrap();
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    // An envelope leased through C as C died is offered again once its lease expires; any other
    // repeat would be a double claim.
    assert!(twice.len() <= 8, "envelopes handed out twice: {twice:?}");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_replica_is_woken_by_a_change_made_on_another() {
    let options = Options {
        plugins: vec!["test-echo"],
        ..Options::default()
    };
    let a = Server::start_with(Db::Postgres, options).await;
    let b = a.replica().await;
    let (tenant, owner) = a.tenant_with_admin("notify", "owner").await;
    let t = |path: &str| format!("/api/v1/tenants/{tenant}{path}");
    let connector = a
        .expect(
            201,
            "POST",
            &t("/connectors"),
            &owner,
            Some(json!({"plugin": "test-echo", "role": "primary"})),
        )
        .await;
    let employee = a
        .expect(
            201,
            "POST",
            &t("/employees"),
            &owner,
            Some(json!({"connector": connector["id"], "account": "dana"})),
        )
        .await;
    let key = SoftwareKey::generate("soft-notify", &mut rand_core::OsRng).unwrap();
    let registered = a
        .expect(201, "POST", &t("/keys"), &owner, Some(json!({
            "serial": key.serial(),
            "kem_public_key": URL_SAFE_NO_PAD.encode(key.identity().kem_public_key()),
            "sig_public_key": URL_SAFE_NO_PAD.encode(key.identity().sig_public_key().as_bytes()),
        })))
        .await;
    let key_id = registered["id"].as_str().unwrap().to_string();
    a.expect(
        200,
        "PATCH",
        &t(&format!("/keys/{key_id}")),
        &owner,
        Some(json!({"status": "active", "employee": employee["id"]})),
    )
    .await;
    let code = a
        .expect(201, "POST", &t("/enrollment-codes"), &owner, None)
        .await;
    let enrolled = b
        .expect(
            201,
            "POST",
            "/api/v1/client/enroll",
            "",
            Some(json!({"code": code["code"], "name": "desk"})),
        )
        .await;
    a.expect(
        200,
        "POST",
        &t(&format!(
            "/workstations/{}/approve",
            enrolled["id"].as_str().unwrap()
        )),
        &owner,
        None,
    )
    .await;

    // The workstation waits on B (up to 30 s); the admin resets on A. Only B's LISTEN for A's
    // NOTIFY can answer the poll before its wait runs out (it looked once, found nothing).
    let poll = {
        let http = b.http.clone();
        let url = format!("{}/api/v1/client/keys/{key_id}/deliveries?wait=30", b.url);
        let token = enrolled["token"].as_str().unwrap().to_string();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let answer = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap();
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.expect(
        202,
        "POST",
        &t(&format!(
            "/employees/{}/password",
            employee["id"].as_str().unwrap()
        )),
        &owner,
        Some(json!({"mode": "generate"})),
    )
    .await;
    let (answer, waited) = poll.await.unwrap();
    assert_eq!(
        answer["deliveries"].as_array().unwrap().len(),
        1,
        "woken with the delivery: {answer:#}"
    );
    // Not a timing assertion: a poll that was not woken answers empty after 30 s, which the
    // line above refuses; this only reports.
    eprintln!("the poll on B answered after {waited:?}");
}
