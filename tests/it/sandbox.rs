//! Misbehaving plugins: each fails its own call with a typed error within its limit, while
//! another tenant's connector keeps answering during and after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use latchkey::capabilities::Capability;
use latchkey::capabilities::ldap::{LdapDirectory, LdapError, LdapSession};
use latchkey::runtime::wit::types::{AccountQuery, ConnectorError, MatchMode, Violation};
use latchkey::runtime::{
    CallError, ConnectorInstance, ConnectorSettings, Limits, PluginError, PluginRegistry, Runtime,
    RuntimeConfig,
};
use latchkey_tests::{instance, instance_with, limited, logs, settings, signed_package, trust};
use secrecy::SecretString;

use crate::account;

/// Calls of a healthy connector made while something else runs, and how they went.
struct Bystander {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Bystander {
    fn start(echo: ConnectorInstance) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (stop, ok) = (stop.clone(), ok.clone());
            async move {
                let mut failures = vec![];
                let candidate = SecretString::from("Corr3ct-Horse!");
                while !stop.load(Ordering::Relaxed) {
                    match echo.check_password(&account("alice"), &candidate).await {
                        Ok(v) if v.is_empty() => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.push(format!("{other:?}")),
                    }
                    tokio::task::yield_now().await;
                }
                failures
            }
        });
        Bystander { stop, ok, task }
    }

    /// How many calls have succeeded so far.
    fn succeeded(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Wait until more than `count` calls have succeeded (at most 10 s).
    async fn wait_beyond(&self, count: usize) {
        let started = Instant::now();
        while self.succeeded() <= count {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the healthy connector stopped answering"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stop, and return how many calls succeeded; panics if any failed.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.expect("bystander task");
        assert!(
            failures.is_empty(),
            "the healthy connector failed meanwhile: {failures:?}"
        );
        self.ok.load(Ordering::Relaxed)
    }
}

/// Run `check-password` on `guest` (with `limits`) while a healthy connector of another tenant
/// is called in a loop; return the guest's error, how long it took, and how many calls the
/// healthy connector answered meanwhile. The healthy connector must answer before, and after.
async fn misbehave(guest: &str, limits: Limits) -> (PluginError, Duration, usize) {
    let tenant = format!("t-{guest}");
    let echo = instance("test-echo", "t-bystander").await;
    let bad = instance_with(guest, limited(&tenant, &[Capability::Log], limits)).await;

    let bystander = Bystander::start(echo.clone());
    bystander.wait_beyond(0).await;
    let before = bystander.succeeded();
    let started = Instant::now();
    let result = bad
        .check_password(&account("bob"), &SecretString::from("S3cret-Candidate!"))
        .await;
    let elapsed = started.elapsed();
    let during = bystander.succeeded() - before;
    bystander.wait_beyond(before + during).await;
    bystander.finish().await;

    // After: still answering, and the misbehaving connector can be called again.
    let after = echo
        .check_password(&account("alice"), &SecretString::from("Corr3ct-Horse!"))
        .await;
    assert_eq!(after.expect("healthy connector after"), vec![]);
    let error = result.expect_err("a misbehaving guest must fail");
    (error, elapsed, during)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_stops_at_its_deadline() {
    let deadline = Duration::from_millis(300);
    let (error, elapsed, during) = misbehave(
        "test-loop",
        Limits {
            deadline,
            ..Limits::default()
        },
    )
    .await;
    assert!(
        matches!(error, PluginError::DeadlineExceeded(d) if d == deadline),
        "{error:?}"
    );
    assert!(
        elapsed < deadline * 2,
        "took {elapsed:?} for a {deadline:?} deadline"
    );
    assert!(
        during > 0,
        "the healthy connector made no call while the loop ran"
    );
    assert!(error.to_string().contains("deadline"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit() {
    let (error, _, _) = misbehave(
        "test-memory-bomb",
        Limits {
            memory_bytes: 32 << 20,
            ..Limits::default()
        },
    )
    .await;
    assert!(
        matches!(error, PluginError::MemoryLimit { limit_mib: 32 }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_bounds_read_is_a_trap() {
    let (error, _, _) = misbehave("test-trap", Limits::default()).await;
    let PluginError::Trapped { trap } = &error else {
        panic!("{error:?}")
    };
    assert!(trap.contains("out of bounds"), "{trap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_without_the_password() {
    logs();
    let (error, _, _) = misbehave("test-panic", Limits::default()).await;
    let PluginError::Panicked { message } = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("deliberate panic in test-panic"),
        "{message}"
    );
    assert!(message.contains("[redacted]"), "{message}");
    assert!(!error.to_string().contains("S3cret-Candidate!"), "{error}");
    let lines = logs().lines_with("tenant=t-test-panic");
    assert!(
        lines.iter().any(|l| l.contains("deliberate panic")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains("S3cret-Candidate!")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_is_a_stack_overflow() {
    let (error, _, _) = misbehave("test-stack-overflow", Limits::default()).await;
    assert!(matches!(error, PluginError::StackOverflow), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_the_shadow_stack_in_linear_memory_is_a_trap() {
    // Rust keeps large locals on a stack inside linear memory; running off its end is an
    // out-of-bounds access, not a wasm stack overflow, and ends the call all the same.
    let guest = instance("test-stack-overflow", "t-shadow-stack").await;
    let error = guest
        .get_policy(&account("bob"))
        .await
        .expect_err("overflow");
    let CallError::Plugin(PluginError::Trapped { trap }) = &error else {
        panic!("{error:?}")
    };
    assert!(trap.contains("out of bounds"), "{trap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_truncated_redacted_and_tagged() {
    logs();
    let flood = instance("test-log-flood", "t-flood").await;
    let candidate = SecretString::from("Fl00d-Secret!");
    // The call itself completes: logging too much is not an error, only cut.
    let violations = flood
        .check_password(&account("carol"), &candidate)
        .await
        .unwrap();
    assert_eq!(violations, vec![Violation::BannedWord]);
    let lines = logs().lines_with("tenant=t-flood");
    let bytes: usize = lines.iter().map(String::len).sum();
    // 64 × 3 × 64 KiB were written; the budget is 64 KiB plus tags and a few notices.
    assert!(bytes < 160 * 1024, "{bytes} bytes reached the log");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("budget") && l.contains("dropped")),
        "no budget notice"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("plugin=test-log-flood") && l.contains("version=0.1.0"))
    );
    assert!(lines.iter().all(|l| !l.contains("Fl00d-Secret!")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_environment_and_sockets_are_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let escape = instance("test-escape", "t-escape").await;
    let query = AccountQuery {
        text: address,
        mode: MatchMode::Exact,
    };
    let error = escape
        .find_accounts(&query, None, 10)
        .await
        .expect_err("the guest reports");
    let CallError::Connector(ConnectorError::Internal(info)) = &error else {
        panic!("{error:?}")
    };
    let attempts: Vec<&str> = info.message.split(';').collect();
    assert_eq!(attempts.len(), 7, "{attempts:?}");
    for attempt in &attempts {
        assert!(
            attempt.contains("=denied("),
            "escaped the sandbox: {attempt}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "the guest reached a socket on the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_answers_are_refused() {
    let oversize = instance("test-oversize", "t-oversize").await;
    let query = AccountQuery {
        text: "x".into(),
        mode: MatchMode::Prefix,
    };
    let error = oversize
        .find_accounts(&query, None, 5)
        .await
        .expect_err("500 accounts for 5");
    assert!(
        error
            .to_string()
            .contains("`accounts` has 500 items; the limit is 5"),
        "{error}"
    );
    let error = oversize
        .get_policy(&account("dave"))
        .await
        .expect_err("8 MiB source");
    assert!(
        error.to_string().contains("`source` is 8388608 bytes"),
        "{error}"
    );
    let error = oversize
        .check_password(&account("dave"), &SecretString::from("x"))
        .await
        .expect_err("100000 violations");
    assert!(
        error.to_string().contains("`violations` has 100000 items"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_misbehaving_guests_at_once_leave_the_healthy_connector_answering() {
    let deadline = Duration::from_millis(400);
    let guests = [
        "test-loop",
        "test-memory-bomb",
        "test-trap",
        "test-panic",
        "test-stack-overflow",
    ];
    let echo = instance("test-echo", "t-crowd-bystander").await;
    let bystander = Bystander::start(echo);
    let mut calls = vec![];
    for guest in guests {
        let bad = instance_with(
            guest,
            limited(
                &format!("t-crowd-{guest}"),
                &[Capability::Log],
                Limits {
                    deadline,
                    memory_bytes: 32 << 20,
                },
            ),
        )
        .await;
        calls.push(tokio::spawn(async move {
            bad.check_password(&crate::account("eve"), &SecretString::from("Crowd-P4ss!"))
                .await
        }));
    }
    for (guest, call) in guests.iter().zip(calls) {
        assert!(call.await.unwrap().is_err(), "{guest} did not fail");
    }
    assert!(bystander.finish().await > 0);
}

/// An LDAP directory that takes far longer than any deadline to answer.
struct StalledDirectory;

#[async_trait::async_trait]
impl LdapDirectory for StalledDirectory {
    async fn open(&self) -> Result<Box<dyn LdapSession>, LdapError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Err(LdapError::Unavailable("too late".into()))
    }

    async fn open_as_user(
        &self,
        _dn: &str,
        _password: &SecretString,
    ) -> Result<Box<dyn LdapSession>, LdapError> {
        self.open().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_waiting_on_a_capability_counts_toward_the_deadline() {
    // The plugin is not running wasm while it waits for the host, so only the wall-clock
    // deadline can stop it.
    let deadline = Duration::from_millis(300);
    let guest = instance_with(
        "test-ungranted",
        ConnectorSettings {
            ldap: Some(Arc::new(StalledDirectory)),
            ..limited(
                "t-stalled-ldap",
                &Capability::ALL,
                Limits {
                    deadline,
                    ..Limits::default()
                },
            )
        },
    )
    .await;
    let started = Instant::now();
    let error = guest
        .test_connection()
        .await
        .expect_err("the directory never answers");
    let elapsed = started.elapsed();
    assert!(
        matches!(error, CallError::Plugin(PluginError::DeadlineExceeded(d)) if d == deadline),
        "{error:?}"
    );
    assert!(elapsed < deadline * 2, "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_instance_pool_fail_fast_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        ..RuntimeConfig::new(dir.path().join("cache"))
    })
    .unwrap();
    let registry = PluginRegistry::new(runtime, trust());
    for name in ["test-loop", "test-echo"] {
        registry
            .install(&signed_package(name, dir.path()))
            .await
            .unwrap();
    }
    let looping = ConnectorInstance::new(
        registry.get("test-loop").unwrap(),
        limited(
            "t-pool-loop",
            &[Capability::Log],
            Limits {
                deadline: Duration::from_millis(800),
                ..Limits::default()
            },
        ),
    )
    .unwrap();
    let echo = ConnectorInstance::new(
        registry.get("test-echo").unwrap(),
        settings("t-pool-echo", &[]),
    )
    .unwrap();

    // Two endless calls take both instance slots.
    let mut loops = vec![];
    for _ in 0..2 {
        let looping = looping.clone();
        loops.push(tokio::spawn(async move {
            looping
                .check_password(&account("x"), &SecretString::from("x"))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let error = echo
        .check_password(&account("alice"), &SecretString::from("Corr3ct-Horse!"))
        .await
        .expect_err("no slot is free");
    assert!(matches!(error, PluginError::Busy), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "busy must not wait"
    );
    assert!(error.to_string().contains("try again"));

    // Once the loops hit their deadline, the slots are free again.
    for call in loops {
        assert!(matches!(
            call.await.unwrap(),
            Err(PluginError::DeadlineExceeded(_))
        ));
    }
    let answer = echo
        .check_password(&account("alice"), &SecretString::from("Corr3ct-Horse!"))
        .await;
    assert_eq!(answer.unwrap(), vec![]);
}
