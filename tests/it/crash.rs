//! The crash matrix: the real `latchkey serve` killed with SIGKILL at every step of a password
//! change, on SQLite and on PostgreSQL, against the real Samba AD DC and a software key.
//!
//! Each case sets up a tenant with the AD connector, an employee, an active software key and an
//! approved workstation (`latchkey agent`); arms one crash point (`FAILPOINTS`, a build with
//! the `failpoints` feature); makes a manual reset with a known password (or, for the ack
//! point, lets the agent deliver it); checks the server died of SIGKILL at that point; restarts
//! it on the same database without the point; waits for recovery (start-up and the sweeper,
//! every second); runs the agent once; and hands the change to `latchkey_tests::invariants`,
//! which must find the directory and the key agreeing, or the change failed with the directory
//! untouched, and no plaintext on disk. Each point's expected outcome is asserted too.
//!
//! The cases of one database run concurrently (each has its own server, database, user and
//! key); one test per database reports every case that failed.

use std::path::Path;
use std::time::Duration;

use latchkey_tests::invariants::{self, Outcome, Subject};
use latchkey_tests::samba::{UserSpec, dc};
use latchkey_tests::server::{Db, Options, Server, agent_run_once};
use serde_json::{Value, json};

use crate::server_core::{
    add_employee, agent_run_once_with_approval, register_key, tenant_with_ad,
};

/// Every crash point, in the order a change reaches them, and what recovery must make of a
/// change interrupted there.
const POINTS: &[(&str, Outcome)] = &[
    // Sealed and held: no directory was asked; the change fails, the envelope is destroyed.
    ("change::after-seal", Outcome::FailedUntouched),
    // The directory took the password, nothing recorded: password-changed-at says so, the
    // held envelope is released.
    ("change::set-password", Outcome::Agree),
    ("change::after-primary", Outcome::Agree),
    ("change::after-secondaries", Outcome::Agree),
    ("change::before-release", Outcome::Agree),
    // Released and final (the history remembered the password right after the primary).
    ("change::after-release", Outcome::Agree),
    // The key stored the envelope and its ack verified; not recorded: the lease runs out, the
    // envelope goes again, the key answers with the same ack.
    ("ack::after-verify", Outcome::Agree),
];

/// What a crashed server's recovery left: which points' changes went through recovery (as
/// opposed to ending before the crash point).
fn recovered(point: &str) -> bool {
    !matches!(point, "change::after-release" | "ack::after-verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_crash_point_on_sqlite_recovers_to_an_invariant() {
    matrix(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_crash_point_on_postgres_recovers_to_an_invariant() {
    matrix(Db::Postgres).await;
}

/// Every point on `db`, concurrently; panics listing each case that failed.
async fn matrix(db: Db) {
    let started = std::time::Instant::now();
    let mut cases = tokio::task::JoinSet::new();
    for (point, expected) in POINTS {
        cases.spawn(async move {
            let outcome = tokio::spawn(case(db, point, *expected)).await;
            (*point, outcome)
        });
    }
    let mut failed = Vec::new();
    while let Some(joined) = cases.join_next().await {
        let (point, outcome) = joined.expect("the case's wrapper does not panic");
        if let Err(error) = outcome {
            let message = match error.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into()),
                Err(error) => error.to_string(),
            };
            failed.push(format!("{point}: {message}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} crash points on {db:?} failed:\n\n{}",
        failed.len(),
        POINTS.len(),
        failed.join("\n\n")
    );
    eprintln!(
        "crash matrix on {db:?}: {} points in {:.1} s",
        POINTS.len(),
        started.elapsed().as_secs_f64()
    );
}

/// One case: set up, crash at `point`, restart, recover, deliver, check.
async fn case(db: Db, point: &'static str, expected: Outcome) {
    let dc = dc();
    let user = dc.create_user("crash", UserSpec::default()).await;
    let arm_dir = tempfile::tempdir().unwrap();
    let arm = arm_dir.path().join("armed");
    let mut server = Server::start_with(
        db,
        Options {
            env: vec![
                ("FAILPOINTS", format!("{point}=return({})", arm.display())),
                ("LATCHKEY_SWEEP_SECONDS", "1".into()),
                ("LATCHKEY_RECOVERY_GRACE_SECONDS", "1".into()),
                ("LATCHKEY_LEASE_SECONDS", "2".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    assert!(
        server.log().contains("crash points armed"),
        "the server was built without crash points: build it with `cargo build -p latchkey \
         --features failpoints` (tests/run builds the workspace with --all-features):\n{}",
        server.log()
    );
    let t = tenant_with_ad(&server, "acme-crash-matrix", "owner").await;
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    let (_, key_file) = register_key(&server, &t, keys.path(), &employee, "active").await;
    // Enrolled and approved now (nothing to deliver yet), so the later runs only deliver.
    agent_run_once_with_approval(&server, &t, &key_file).await;
    // pwdLastSet is in whole seconds: the change must begin in a later second than the user's
    // creation for password-changed-at to tell "before" from "after".
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let candidate = format!("Crash-{:08x}-Pw!", latchkey_tests::samba::rand_u32());
    let reset = format!(
        "{}/api/v1/tenants/{}/employees/{employee}/password",
        server.url, t.id
    );
    let body = json!({"mode": "manual", "password": candidate, "confirm": candidate});
    let mut agent_output = Vec::new();
    if point.starts_with("change::") {
        std::fs::write(&arm, point).unwrap();
        let answer = server
            .http
            .post(&reset)
            .bearer_auth(&t.token)
            .json(&body)
            .send()
            .await;
        if let Ok(answer) = answer {
            panic!(
                "the server answered although it should have died at {point}: {} {}\n{}",
                answer.status(),
                answer.text().await.unwrap_or_default(),
                server.log()
            );
        }
    } else {
        let answer = server
            .http
            .post(&reset)
            .bearer_auth(&t.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        assert_eq!(status, 202, "{text}\n{}", server.log());
        std::fs::write(&arm, point).unwrap();
        let run = agent_run_once(&key_file).await;
        assert!(
            !run.status.success(),
            "the agent's ack should have met a dead server"
        );
        agent_output.push(("the agent's first run".to_string(), run.stderr));
    }
    died_at(&server, point).await;
    server.kill();
    std::fs::remove_file(&arm).unwrap();

    server.spawn().await;
    point_agent_at(&key_file, &server.url);
    let change_id = only_change(&server, &t.id, &t.token).await;
    let change = resolved(&server, &t.id, &t.token, &change_id).await;
    if point.starts_with("ack::") {
        // The lease of the delivery whose ack died with the server runs out (2 s).
        until(&server, &t.id, &t.token, &change_id, |c| {
            c["delivery"]["state"] != "leased"
        })
        .await;
    }
    let run = agent_run_once(&key_file).await;
    assert!(
        run.status.success(),
        "agent run after the restart: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    agent_output.push(("the agent's run after the restart".to_string(), run.stderr));

    let report = invariants::check(&Subject {
        server: &server,
        tenant: &t.id,
        token: &t.token,
        change_id: &change_id,
        user: &user,
        key_file: &key_file,
        candidate: Some(&candidate),
        extra: agent_output,
    })
    .await
    .unwrap_or_else(|e| panic!("after a crash at {point}: {e}\n{}", server.log()));
    assert_eq!(
        report.outcome,
        expected,
        "after a crash at {point}: {:#}\n{}",
        report.change,
        server.log()
    );
    if expected == Outcome::Agree {
        assert_eq!(
            report.key_password.as_deref(),
            Some(candidate.as_str()),
            "the key holds what the admin typed"
        );
    }
    if recovered(point) {
        let failure = change["failure"].as_str();
        if change["state"] == "failed" {
            assert!(
                failure.is_some_and(|f| f.starts_with("Latchkey stopped during this change")),
                "the change says what happened and what to do: {change:#}"
            );
        } else {
            // Released by recovery; with no secondary connector nothing can be missing.
            assert_eq!(change["state"], "applied", "{change:#}");
            assert_eq!(failure, None, "{change:#}");
        }
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
        assert_eq!(
            audit["records"].as_array().map(Vec::len),
            Some(1),
            "one recovery record: {audit:#}"
        );
    }
}

/// Waits for the server's death at `point`: its log names the point and its process id, and
/// the process (a zombie until `Server::kill` reaps it) exited on SIGKILL.
async fn died_at(server: &Server, point: &str) {
    let marker = format!("failpoint {point}: killing process ");
    for _ in 0..200 {
        let log = server.log();
        if let Some(at) = log.find(&marker) {
            let pid: u32 = log[at + marker.len()..]
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a process id after the marker");
            for _ in 0..100 {
                if let Some(signal) = killed_by(pid) {
                    assert_eq!(
                        signal, 9,
                        "process {pid} exited by signal {signal}, not SIGKILL"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("process {pid} did not die after {marker}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never reached {point}:\n{}", server.log());
}

/// The signal a dead, unreaped child `pid` was killed by (from /proc/PID/stat: state Z, and
/// field 52, exit_code, in waitpid's encoding); None while it still runs.
fn killed_by(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state).
    if fields.first() != Some(&"Z") {
        return None;
    }
    let status: i32 = fields.get(52 - 3)?.parse().ok()?;
    assert_eq!(status & 0x7f00, 0, "exited normally with {}", status >> 8);
    Some(status & 0x7f)
}

/// The restarted server listens on a new port: the workstation is pointed at it (as a stable
/// DNS name would).
fn point_agent_at(key_file: &Path, url: &str) {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".agent.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&name).unwrap()).unwrap();
    state["server"] = json!(url);
    std::fs::write(&name, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

/// The tenant's one password change.
async fn only_change(server: &Server, tenant: &str, token: &str) -> String {
    let list = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{tenant}/password-changes"),
            token,
            None,
        )
        .await;
    let changes = list["changes"].as_array().expect("a list");
    assert_eq!(changes.len(), 1, "{list:#}");
    changes[0]["id"].as_str().unwrap().to_string()
}

/// The change once recovery has resolved it.
async fn resolved(server: &Server, tenant: &str, token: &str, change: &str) -> Value {
    until(server, tenant, token, change, |c| {
        !matches!(c["state"].as_str(), Some("held" | "applying"))
    })
    .await
}

/// Polls the change until `done` (30 s at most).
async fn until(
    server: &Server,
    tenant: &str,
    token: &str,
    change: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = server
            .expect(
                200,
                "GET",
                &format!("/api/v1/tenants/{tenant}/password-changes/{change}"),
                token,
                None,
            )
            .await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the change did not get there within 30 s: {last:#}");
}

/// The sweeper must leave a change its own process is still applying: here the primary
/// directory is slow (the request waits 4 s before its `set-password`, the delay point
/// `change::before-set-password`), while the sweeper runs every second with a grace of one.
/// Before `InFlight`, the sweeper asked the directory meanwhile, found the old password, failed
/// the change and destroyed its envelope; the request then set the new password in the
/// directory and answered 500: a password nobody was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_leaves_a_change_in_flight_to_its_request() {
    let dc = dc();
    let user = dc.create_user("inflight", UserSpec::default()).await;
    let server = Server::start_with_delayed_writes(Db::Sqlite, 4000).await;
    let t = tenant_with_ad(&server, "acme-in-flight", "owner").await;
    let employee = add_employee(&server, &t, &user).await;
    let keys = tempfile::tempdir().unwrap();
    register_key(&server, &t, keys.path(), &employee, "active").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let candidate = format!("Flight-{:08x}-Pw!", latchkey_tests::samba::rand_u32());
    let answer = server
        .expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{}/employees/{employee}/password", t.id),
            &t.token,
            Some(json!({"mode": "manual", "password": candidate, "confirm": candidate})),
        )
        .await;
    assert_eq!(answer["state"], "applied", "{answer:#}");
    let change = server
        .expect(
            200,
            "GET",
            &format!(
                "/api/v1/tenants/{}/password-changes/{}",
                t.id,
                answer["change_id"].as_str().unwrap()
            ),
            &t.token,
            None,
        )
        .await;
    assert_eq!(change["delivery"]["state"], "pending", "{change:#}");
    assert!(change["failure"].is_null(), "{change:#}");
    assert!(
        !server
            .log()
            .contains("recovered interrupted password changes"),
        "{}",
        server.log()
    );
    dc.bind(&user.dn, &candidate)
        .await
        .expect("the new password binds");
}
