//! Faults end to end (issue 10): the real `latchkey serve` while what it depends on fails, and
//! after the fault clears, without restarting it.
//!
//! - the directory (the shared Samba DC, reached only through `latchkey_tests::proxy`) down,
//!   slow, slower than the connector's `timeout_ms`, frozen, and flapping during a series of
//!   changes;
//! - a private PostgreSQL cluster restarted twice (fast, then down for ~5 s) under concurrent
//!   changes;
//! - SQLite on a full disk (a small tmpfs, filled with a ballast file);
//! - 32 concurrent changes whose plugin never returns, beside a tenant that keeps working.
//!
//! Every change a fault touched must end applied with the key and the directory agreeing, or
//! failed with the old password still binding and nothing queued for the key
//! (`latchkey_tests::invariants`); none stays held or applying once the fault has cleared; every
//! refusal is a problem+json saying what happened and what to do, answered promptly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_tests::invariants::{self, Outcome, Subject};
use latchkey_tests::proxy::{Mode, Proxy};
use latchkey_tests::samba::{ServiceAccount, TestUser, UserSpec, dc, rand_u32};
use latchkey_tests::server::{Db, Options, Server, agent_run_once};
use serde_json::{Value, json};

use crate::server_core::{
    Tenant, add_employee, agent_run_once_with_approval, register_key, tenant_with_ad,
};

/// The connector's `timeout_ms` in the directory tests: connect + TLS + bind, and each
/// operation.
const LDAP_TIMEOUT_MS: u64 = 3000;

/// The problem type URI of `code`.
fn problem(code: &str) -> String {
    format!("https://latchkey.invalid/problems/{code}")
}

/// The DC's LDAPS address (what the proxy forwards to).
fn dc_address() -> SocketAddr {
    let url = url::Url::parse(&dc().ldaps_url).expect("the DC's LDAPS URL");
    let host = url.host_str().expect("a host");
    format!("{host}:{}", url.port().unwrap_or(636))
        .parse()
        .expect("the DC listens on an IP address")
}

/// A tenant whose primary AD connector reaches the DC only through `proxy` (its certificate
/// names IP:127.0.0.1, so LDAPS verifies through the proxy as it does directly).
async fn tenant_through(server: &Server, name: &str, proxy: &Proxy) -> Tenant {
    let (id, owner) = server.tenant_with_admin(name, "owner").await;
    let dc = dc();
    let (svc_dn, svc_password) = dc.service_account(ServiceAccount::Delegated);
    let connector = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{id}/connectors"),
            &owner,
            Some(json!({
                "plugin": "ad-ldap",
                "role": "primary",
                "config": {
                    "url": format!("ldaps://127.0.0.1:{}", proxy.port()),
                    "base_dn": dc.staff_ou, "bind_dn": svc_dn,
                    "ca_file": dc.ca_file, "timeout_ms": LDAP_TIMEOUT_MS,
                },
                "secrets": {"bind_password": svc_password},
            })),
        )
        .await;
    Tenant {
        id,
        token: owner.clone(),
        owner,
        connector: connector["id"].as_str().unwrap().to_string(),
    }
}

/// A directory user with an employee, an active software key and an approved workstation.
struct Person {
    /// The user, with the password the directory holds now.
    user: TestUser,
    employee: String,
    key_file: PathBuf,
    _keys: tempfile::TempDir,
}

impl Person {
    async fn new(server: &Server, t: &Tenant, prefix: &str) -> Person {
        let person = Person::without_workstation(server, t, prefix).await;
        agent_run_once_with_approval(server, t, &person.key_file).await;
        next_second().await;
        person
    }

    /// Without a workstation yet (`agent_run_once_with_approval` enrolls one later), and
    /// without waiting for `next_second`.
    async fn without_workstation(server: &Server, t: &Tenant, prefix: &str) -> Person {
        let user = dc().create_user(prefix, UserSpec::default()).await;
        let employee = add_employee(server, t, &user).await;
        let keys = tempfile::tempdir().unwrap();
        let (_, key_file) = register_key(server, t, keys.path(), &employee, "active").await;
        Person {
            user,
            employee,
            key_file,
            _keys: keys,
        }
    }

    /// A manual reset to `candidate`: the status, the body and how long the answer took.
    async fn reset(&self, server: &Server, t: &Tenant, candidate: &str) -> (u16, Value, Duration) {
        reset(server, t, &self.employee, candidate).await
    }

    /// Delivers what is due, checks the invariants of `change_id` and returns the outcome; on
    /// `Agree`, the directory's password is `candidate` from now on.
    async fn check(
        &mut self,
        server: &Server,
        t: &Tenant,
        change_id: &str,
        candidate: &str,
    ) -> Outcome {
        settle(server, t, change_id).await;
        deliver(&self.key_file).await;
        let report = invariants::check(&Subject {
            server,
            tenant: &t.id,
            token: &t.token,
            change_id,
            user: &self.user,
            key_file: &self.key_file,
            candidate: Some(candidate),
            extra: Vec::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("change {change_id}: {e}\n{}", server.log()));
        assert_ne!(
            report.outcome,
            Outcome::AdminTold,
            "a change with one directory is applied and delivered, or failed: {:#}",
            report.change
        );
        if report.outcome == Outcome::Agree {
            assert_eq!(report.key_password.as_deref(), Some(candidate));
            self.user.password = candidate.to_string();
            // The next change must be told apart from this one by password-changed-at.
            next_second().await;
        }
        report.outcome
    }

    /// The directory still takes the password it had.
    async fn old_password_binds(&self) {
        dc().bind(&self.user.dn, &self.user.password)
            .await
            .unwrap_or_else(|e| panic!("the old password no longer binds: {e}"));
    }
}

/// pwdLastSet is in whole seconds: a change must begin in a later second than the account's
/// last password change for password-changed-at to tell "before" from "after".
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn reset(
    server: &Server,
    t: &Tenant,
    employee: &str,
    candidate: &str,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = server
        .call(
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "manual", "password": candidate, "confirm": candidate})),
        )
        .await;
    (status, body, started.elapsed())
}

/// A password the DC's policy takes.
fn candidate(tag: &str) -> String {
    format!("{tag}-{:08x}-Pw!", rand_u32())
}

/// The change once nothing is left to decide (neither held nor applying); 30 s at most. Reads
/// that fail meanwhile (a database that is down) are retried.
async fn settle(server: &Server, t: &Tenant, change_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (status, change) = server
            .call(
                "GET",
                &format!("/api/v1/tenants/{}/password-changes/{change_id}", t.id),
                &t.token,
                None,
            )
            .await;
        if status == 200 && !matches!(change["state"].as_str(), Some("held" | "applying")) {
            return change;
        }
        last = change;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "change {change_id} is still unresolved after 30 s: {last:#}\n{}",
        server.log()
    );
}

/// The tenant's changes (of `employee`, when given).
async fn changes(server: &Server, t: &Tenant, employee: Option<&str>) -> Vec<Value> {
    let filter = employee
        .map(|e| format!("?employee={e}"))
        .unwrap_or_default();
    let list = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/password-changes{filter}", t.id),
            &t.token,
            None,
        )
        .await;
    list["changes"].as_array().expect("a list").clone()
}

/// No change of the tenant is held or applying.
async fn nothing_in_progress(server: &Server, t: &Tenant) {
    for change in changes(server, t, None).await {
        assert!(
            !matches!(change["state"].as_str(), Some("held" | "applying")),
            "a change is still in progress: {change:#}"
        );
    }
}

/// `latchkey agent run --once` with the key's approved workstation: delivers what is due.
async fn deliver(key_file: &Path) {
    let run = agent_run_once(key_file).await;
    assert!(
        run.status.success(),
        "agent run --once: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Polls until `ready` (10 s at most).
async fn until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// A refusal because the directory cannot be reached: 503, problem+json, saying so and what
/// to do.
fn assert_directory_unavailable(status: u16, body: &Value, took: Duration) {
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["type"], problem("directory-unavailable"), "{body:#}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("domain controller") && detail.contains("try again"),
        "the detail says the directory is unreachable and what to do: {detail}"
    );
    // The connector's timeout bounds each step; nothing waits for the plugin's 10 s deadline.
    assert!(
        took < Duration::from_millis(3 * LDAP_TIMEOUT_MS + 2500),
        "answered in {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_down_slow_or_frozen_fails_cleanly_and_recovers_without_a_restart() {
    let proxy = Proxy::start(dc_address()).await;
    // Every change waits 1.5 s before its write: time to break the directory then.
    let server = Server::start_with_delayed_writes(Db::Sqlite, 1500).await;
    let t = tenant_through(&server, "acme-directory-faults", &proxy).await;
    let mut person = Person::new(&server, &t, "dirfault").await;

    // Down before the change: refused at once, nothing recorded, nothing queued.
    proxy.set(Mode::Down);
    let (status, body, took) = person.reset(&server, &t, &candidate("Down")).await;
    assert_directory_unavailable(status, &body, took);
    assert!(took < Duration::from_secs(3), "refused at once: {took:?}");
    assert!(body["change_id"].is_null(), "{body:#}");
    nothing_in_progress(&server, &t).await;
    person.old_password_binds().await;

    // Down between the checks and the write: the change cannot be confirmed while the
    // directory is down; once it is back, recovery asks it and fails the change.
    proxy.set(Mode::Pass);
    let password = candidate("Cut");
    let (status, body) = {
        let request = reset(&server, &t, &person.employee, &password);
        let breaker = async {
            until("the change to reach its write", async || {
                changes(&server, &t, Some(&person.employee))
                    .await
                    .iter()
                    .any(|c| c["state"] == "applying")
            })
            .await;
            proxy.set(Mode::Down);
        };
        let ((status, body, _), ()) = tokio::join!(request, breaker);
        (status, body)
    };
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["type"], problem("directory-unavailable"), "{body:#}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("did not confirm") && detail.contains("reset again only after"),
        "{detail}"
    );
    let change_id = body["change_id"].as_str().expect("the change is named");
    proxy.set(Mode::Pass);
    let change = settle(&server, &t, change_id).await;
    assert_eq!(change["state"], "failed", "{change:#}");
    assert!(
        change["failure"]
            .as_str()
            .is_some_and(|f| f.contains("Reset again")),
        "{change:#}"
    );
    assert_eq!(
        person.check(&server, &t, change_id, &password).await,
        Outcome::FailedUntouched
    );

    // Slow, within the connector's timeout: the change goes through.
    proxy.set(Mode::Latency(Duration::from_millis(150)));
    let password = candidate("Slow");
    let (status, body, _) = person.reset(&server, &t, &password).await;
    assert_eq!(status, 202, "{body:#}\n{}", server.log());
    assert_eq!(body["state"], "applied", "{body:#}");
    let change_id = body["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        person.check(&server, &t, &change_id, &password).await,
        Outcome::Agree
    );

    // Slower than the timeout, then frozen: refused within the timeout, nothing stuck.
    for fault in [
        Mode::Latency(Duration::from_millis(LDAP_TIMEOUT_MS + 1000)),
        Mode::Blackhole,
    ] {
        proxy.set(fault);
        let password = candidate("Stall");
        let (status, body, took) = person.reset(&server, &t, &password).await;
        assert_directory_unavailable(status, &body, took);
        proxy.set(Mode::Pass);
        if let Some(change_id) = body["change_id"].as_str() {
            assert_eq!(
                person.check(&server, &t, change_id, &password).await,
                Outcome::FailedUntouched,
                "{fault:?}"
            );
        }
        nothing_in_progress(&server, &t).await;
        person.old_password_binds().await;
    }

    // The fault cleared: the same server changes the password again.
    proxy.set(Mode::Pass);
    let password = candidate("Back");
    let (status, body, _) = person.reset(&server, &t, &password).await;
    assert_eq!(status, 202, "{body:#}\n{}", server.log());
    let change_id = body["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        person.check(&server, &t, &change_id, &password).await,
        Outcome::Agree
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_directory_leaves_every_change_applied_and_delivered_or_failed_cleanly() {
    let proxy = Proxy::start(dc_address()).await;
    let server = Server::start_with(
        Db::Sqlite,
        Options {
            env: vec![
                ("LATCHKEY_SWEEP_SECONDS", "1".into()),
                ("LATCHKEY_RECOVERY_GRACE_SECONDS", "1".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let t = tenant_through(&server, "acme-flapping", &proxy).await;
    let mut person = Person::new(&server, &t, "flapping").await;

    // Down and up again every 300-1000 ms, until the changes are done; held up while the
    // invariants are checked (the checker asks the directory too).
    let (flapping, flapping_state) = tokio::sync::watch::channel(Flapping::Flap);
    let flapper = {
        let proxy = &proxy;
        let mut state = flapping_state.clone();
        async move {
            loop {
                let now = *state.borrow_and_update();
                match now {
                    Flapping::Stop => break,
                    Flapping::Hold => {
                        proxy.set(Mode::Pass);
                        let _ = state.changed().await;
                    }
                    Flapping::Flap => {
                        let pause = Duration::from_millis(300 + u64::from(rand_u32() % 700));
                        if tokio::time::timeout(pause, state.changed()).await.is_ok() {
                            continue;
                        }
                        let next = if proxy.mode() == Mode::Pass {
                            Mode::Down
                        } else {
                            Mode::Pass
                        };
                        proxy.set(next);
                    }
                }
            }
            proxy.set(Mode::Pass);
        }
    };
    let changes_made = async {
        let mut answers = Vec::new();
        for round in 0..8 {
            flapping.send_replace(Flapping::Flap);
            // Half the changes begin while the directory is down, half while it is up.
            let start_in = if round % 2 == 0 {
                Mode::Down
            } else {
                Mode::Pass
            };
            until("the directory to flap", async || proxy.mode() == start_in).await;
            let password = candidate("Flap");
            let (status, body, took) = person.reset(&server, &t, &password).await;
            match status {
                202 => {}
                503 => assert_directory_unavailable(status, &body, took),
                _ => panic!("{status} {body:#}\n{}", server.log()),
            }
            flapping.send_replace(Flapping::Hold);
            until("the directory to be held up", async || {
                proxy.mode() == Mode::Pass
            })
            .await;
            let outcome = match body["change_id"].as_str() {
                Some(change_id) => Some(person.check(&server, &t, change_id, &password).await),
                None => {
                    nothing_in_progress(&server, &t).await;
                    None
                }
            };
            answers.push((status, outcome));
        }
        flapping.send_replace(Flapping::Stop);
        answers
    };
    let (answers, ()) = tokio::join!(changes_made, flapper);
    eprintln!("flapping directory: (status, outcome) per change: {answers:?}");
    assert!(
        answers.iter().any(|(status, _)| *status == 202)
            && answers.iter().any(|(status, _)| *status == 503),
        "the flapping both let changes through and refused some: {answers:?}"
    );
    nothing_in_progress(&server, &t).await;

    // Steady again: the same server changes the password.
    proxy.set(Mode::Pass);
    let password = candidate("Steady");
    let (status, body, _) = person.reset(&server, &t, &password).await;
    assert_eq!(status, 202, "{body:#}\n{}", server.log());
    let change_id = body["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        person.check(&server, &t, &change_id, &password).await,
        Outcome::Agree
    );
}

/// What the flapping directory does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flapping {
    Flap,
    /// Up, while the test looks.
    Hold,
    Stop,
}

/// A private PostgreSQL cluster (`tests/services/postgres`), stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    /// The admin URL (database `test`).
    url: String,
}

fn postgres_script() -> PathBuf {
    latchkey_tests::workspace_root().join("tests/services/postgres")
}

impl Cluster {
    async fn start() -> Cluster {
        assert!(
            is_root(),
            "a private PostgreSQL cluster needs root (the script runs the server as the \
             postgres user): run the tests as root, as tests/run and CI do"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut cluster = Cluster {
            dir,
            port,
            url: String::new(),
        };
        let output = cluster.script("start").await;
        cluster.url = String::from_utf8_lossy(&output.stdout).trim().to_string();
        cluster
    }

    async fn script(&self, command: &str) -> std::process::Output {
        let mut args = vec![command.to_string(), self.dir.path().display().to_string()];
        if command == "start" {
            args.push(self.port.to_string());
        }
        let output = tokio::task::spawn_blocking(move || {
            Command::new(postgres_script()).args(&args).output()
        })
        .await
        .unwrap()
        .expect("running tests/services/postgres");
        assert!(
            output.status.success(),
            "tests/services/postgres {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Stops the cluster (fast shutdown: sessions are ended), waits `down`, starts it again.
    async fn restart(&self, down: Duration) {
        self.script("stop").await;
        tokio::time::sleep(down).await;
        self.script("start").await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(postgres_script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_answers_503_and_leaves_no_change_stuck() {
    let cluster = Cluster::start().await;
    let server = Server::start_with(
        Db::Postgres,
        Options {
            postgres_admin_url: Some(cluster.url.clone()),
            env: vec![
                ("LATCHKEY_SWEEP_SECONDS", "1".into()),
                ("LATCHKEY_RECOVERY_GRACE_SECONDS", "2".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let t = tenant_with_ad(&server, "acme-postgres-restart", "owner").await;
    let mut people = Vec::new();
    for n in 0..6 {
        people.push(Person::without_workstation(&server, &t, &format!("pgload{n}")).await);
    }
    next_second().await;

    // Six changes, begun every 600 ms, while the cluster restarts fast and then stays down ~5 s;
    // meanwhile a reader asks for the changes every 250 ms.
    let server = Arc::new(server);
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for (n, person) in people.into_iter().enumerate() {
        let (server, t) = (server.clone(), same_tenant(&t));
        load.spawn(async move {
            tokio::time::sleep(Duration::from_millis(600 * n as u64)).await;
            let password = candidate("Pg");
            let (status, body, took) = person.reset(&server, &t, &password).await;
            (n, person, password, status, body, took)
        });
    }
    let reader = {
        let (server, t) = (server.clone(), same_tenant(&t));
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while started.elapsed() < Duration::from_secs(12) {
                let asked = Instant::now();
                let (status, body) = server
                    .call(
                        "GET",
                        &format!("/api/v1/tenants/{}/password-changes", t.id),
                        &t.token,
                        None,
                    )
                    .await;
                answers.push((status, body, asked.elapsed()));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.restart(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.restart(Duration::from_secs(5)).await;
    eprintln!(
        "postgres restarts done at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut results = load.join_all().await;
    results.sort_by_key(|r| r.0);
    let reads = reader.await.unwrap();

    // Every answer was prompt and either a success or a clear 503.
    let mut unavailable = 0;
    for (status, body, took) in &reads {
        assert!(
            took < &Duration::from_secs(8),
            "a read took {took:?}: {status} {body:#}"
        );
        match status {
            200 => {}
            503 => {
                unavailable += 1;
                assert_eq!(body["type"], problem("database-unavailable"), "{body:#}");
                assert!(
                    body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("try again")),
                    "{body:#}"
                );
            }
            _ => panic!(
                "a read during the restarts: {status} {body:#}\n{}",
                server.log()
            ),
        }
    }
    assert!(
        unavailable > 0,
        "the outage was seen: {} reads",
        reads.len()
    );
    for (_, _, _, status, body, took) in &results {
        assert!(took < &Duration::from_secs(8), "a reset took {took:?}");
        assert!(
            matches!(status, 202 | 503),
            "a reset during the restarts: {status} {body:#}\n{}",
            server.log()
        );
        if *status == 503 {
            assert!(
                body["type"] == problem("database-unavailable")
                    || body["type"] == problem("directory-unavailable"),
                "{body:#}"
            );
        }
    }
    eprintln!(
        "postgres restarts: resets answered {:?}; {} reads, {unavailable} answered 503",
        results.iter().map(|r| r.3).collect::<Vec<_>>(),
        reads.len()
    );

    // Once the database is back: no change stuck, each one applied and delivered or failed
    // with the directory untouched, and the server serves as before.
    let mut people = Vec::new();
    for (_, mut person, password, _, _, _) in results {
        let made = changes(&server, &t, Some(&person.employee)).await;
        assert!(made.len() <= 1, "{made:#?}");
        agent_run_once_with_approval(&server, &t, &person.key_file).await;
        match made.first() {
            Some(change) => {
                let change_id = change["id"].as_str().unwrap();
                person.check(&server, &t, change_id, &password).await;
            }
            None => person.old_password_binds().await,
        }
        people.push(person);
    }
    nothing_in_progress(&server, &t).await;
    let person = &mut people[0];
    let password = candidate("PgBack");
    let (status, body, _) = person.reset(&server, &t, &password).await;
    assert_eq!(status, 202, "{body:#}\n{}", server.log());
    let change_id = body["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        person.check(&server, &t, &change_id, &password).await,
        Outcome::Agree
    );
}

/// The same tenant, for another task.
fn same_tenant(t: &Tenant) -> Tenant {
    Tenant {
        id: t.id.clone(),
        token: t.token.clone(),
        owner: t.owner.clone(),
        connector: t.connector.clone(),
    }
}

/// A tmpfs of `size` mounted on a directory of its own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        assert!(
            is_root(),
            "the full-disk test mounts a small tmpfs, which needs root: run the tests as root, as \
             tests/run and CI do"
        );
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            output.status.success(),
            "mounting a tmpfs on {}: {} (the test needs a kernel and privileges that allow \
             tmpfs mounts)",
            dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `file` until the disk is full.
    fn fill(&self, file: &Path) {
        use std::io::Write as _;
        let mut ballast = std::fs::File::create(file).expect("the ballast file");
        let chunk = vec![0u8; 64 << 10];
        loop {
            match ballast.write_all(&chunk) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(28) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // The last partial chunk may fit in bytes a page still had free.
        while ballast.write_all(&[0u8]).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// Every file under `dir` that holds `needle` (ASCII) as UTF-8 or UTF-16LE.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let utf16: String = needle.chars().flat_map(|c| [c, '\0']).collect();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                // Invalid UTF-8 becomes U+FFFD, never an ASCII byte: ASCII needles are found
                // exactly where their bytes are.
                let text = String::from_utf8_lossy(&bytes);
                if text.contains(needle) || text.contains(&utf16) {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_refuses_changes_cleanly_and_recovers_when_space_is_freed() {
    let disk = SmallDisk::mount("64m");
    let server = Server::start_with(
        Db::Sqlite,
        Options {
            data_dir_in: Some(disk.path().to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    let t = tenant_with_ad(&server, "acme-full-disk", "owner").await;
    let mut person = Person::new(&server, &t, "fulldisk").await;

    let ballast = disk.path().join("ballast");
    disk.fill(&ballast);
    // A write that still fits in pages the database files already have may succeed; the
    // next ones need new pages.
    let mut refused = None;
    let mut applied = None;
    for _ in 0..5 {
        let password = candidate("Full");
        let (status, body, took) = person.reset(&server, &t, &password).await;
        assert!(took < Duration::from_secs(15), "answered in {took:?}");
        match status {
            507 => {
                refused = Some((password, body));
                break;
            }
            // Checked once there is space again (the key's ack needs some too).
            202 => {
                let before = std::mem::replace(&mut person.user.password, password.clone());
                let change_id = body["change_id"].as_str().unwrap().to_string();
                applied = Some((change_id, password, before));
            }
            _ => panic!(
                "a change on a full disk: {status} {body:#}\n{}",
                server.log()
            ),
        }
    }
    let (password, body) = refused.expect("a change on the full disk was refused");
    assert_eq!(body["type"], problem("disk-full"), "{body:#}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("disk") && detail.contains("free space"),
        "the detail names the disk and what to do: {detail}"
    );
    // Nothing half-written: no change recorded for it, none in progress, the directory
    // untouched, the password nowhere on disk.
    assert!(body["change_id"].is_null(), "{body:#}");
    nothing_in_progress(&server, &t).await;
    person.old_password_binds().await;
    let holding = files_holding(server.data_dir.path(), &password);
    assert!(holding.is_empty(), "the password is on disk: {holding:?}");

    // Space freed: what went through is delivered, and the same server changes the password.
    std::fs::remove_file(&ballast).unwrap();
    if let Some((change_id, password, before)) = applied {
        person.user.password = before;
        assert_eq!(
            person.check(&server, &t, &change_id, &password).await,
            Outcome::Agree
        );
    }
    let password = candidate("Freed");
    let (status, body, _) = person.reset(&server, &t, &password).await;
    assert_eq!(status, 202, "{body:#}\n{}", server.log());
    let change_id = body["change_id"].as_str().unwrap().to_string();
    assert_eq!(
        person.check(&server, &t, &change_id, &password).await,
        Outcome::Agree
    );
    drop(server);
}
/// The resident memory of process `pid`, in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}

/// A tenant with one connector of `plugin` (primary) and an employee with an active key.
async fn tenant_on(
    server: &Server,
    name: &str,
    plugin: &str,
) -> (Tenant, String, tempfile::TempDir) {
    let (id, owner) = server.tenant_with_admin(name, "owner").await;
    let connector = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{id}/connectors"),
            &owner,
            Some(json!({"plugin": plugin, "role": "primary"})),
        )
        .await;
    let t = Tenant {
        id,
        token: owner.clone(),
        owner,
        connector: connector["id"].as_str().unwrap().to_string(),
    };
    let employee = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{}/employees", t.id),
            &t.owner,
            Some(json!({"connector": t.connector, "account": format!("user-{plugin}")})),
        )
        .await;
    let employee = employee["id"].as_str().unwrap().to_string();
    let keys = tempfile::tempdir().unwrap();
    register_key(server, &t, keys.path(), &employee, "active").await;
    (t, employee, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_timeouts_under_load_answer_within_the_deadline_while_other_tenants_work() {
    const CONCURRENT: usize = 32;
    const DEADLINE: Duration = Duration::from_secs(10);
    let server = Server::start_with(
        Db::Sqlite,
        Options {
            plugins: vec!["test-loop", "test-echo"],
            ..Options::default()
        },
    )
    .await;
    let (stuck, stuck_employee, _stuck_keys) = tenant_on(&server, "acme-loop", "test-loop").await;
    let (working, working_employee, _working_keys) =
        tenant_on(&server, "acme-echo", "test-echo").await;
    let pid = server.pid().expect("the server runs");
    let (status, body, _) = reset(&server, &working, &working_employee, &candidate("Work")).await;
    assert_eq!(status, 202, "{body:#}");
    let before = rss_kib(pid);

    let server = Arc::new(server);
    let started = Instant::now();
    let loops: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (server, t) = (server.clone(), same_tenant(&stuck));
            let employee = stuck_employee.clone();
            tokio::spawn(async move { reset(&server, &t, &employee, &candidate("Loop")).await })
        })
        .collect();
    // Meanwhile the other tenant's changes go through, one after another.
    let mut served = Vec::new();
    while served.len() < 3 {
        let (status, body, took) =
            reset(&server, &working, &working_employee, &candidate("Work")).await;
        assert_eq!(status, 202, "{body:#}");
        assert!(
            !loops.iter().any(|l| l.is_finished()),
            "the other tenant's change waited for the stuck ones ({:?} after they began)",
            started.elapsed()
        );
        served.push(took);
    }
    let mut answers = Vec::new();
    for stuck in loops {
        answers.push(stuck.await.unwrap());
    }
    for (status, body, took) in &answers {
        assert_eq!(*status, 502, "{body:#}");
        assert_eq!(body["type"], problem("directory-failed"), "{body:#}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("deadline") && detail.contains("10s"),
            "the detail names the deadline: {detail}"
        );
        assert!(
            *took < DEADLINE + Duration::from_secs(5),
            "answered within about the deadline: {took:?}"
        );
    }
    assert!(
        changes(&server, &stuck, None).await.is_empty(),
        "the loop is in the checks: no change was begun"
    );
    nothing_in_progress(&server, &working).await;
    let after = rss_kib(pid);
    eprintln!(
        "plugin timeouts: {CONCURRENT} concurrent answered in {:?}..{:?}; the other tenant served \
         {} changes meanwhile ({:?} max); server RSS {before} KiB before, {after} KiB after",
        answers.iter().map(|a| a.2).min().unwrap(),
        answers.iter().map(|a| a.2).max().unwrap(),
        served.len(),
        served.iter().max().unwrap()
    );
    assert!(
        after < before + 64 * 1024,
        "{CONCURRENT} timed-out instances are not kept: RSS {before} KiB, then {after} KiB"
    );
}
