//! The domain controller goes away in the middle of a test: frozen (it accepts connections and
//! never answers), then stopped, then started again. Calls fail with a retryable `unavailable`
//! within the connector's timeout, nothing hangs, and once the DC is back the same connector
//! works again without a restart.
//!
//! A test binary of its own because it stops the DC every other test uses: `cargo test` runs
//! test binaries one after another, so nothing else is talking to the DC meanwhile.

use std::process::Command;
use std::time::{Duration, Instant};

use latchkey::runtime::wit::types::{AccountQuery, ConnectorError, MatchMode, SetOptions};
use latchkey::runtime::{CallError, ConnectorInstance};
use latchkey_tests::samba::{ServiceAccount, UserSpec, dc, random_password};
use latchkey_tests::{ad_connector, find_account, workspace_root};
use secrecy::SecretString;
use serde_json::json;

const TIMEOUT_MS: u64 = 1500;

/// The samba root process and all its descendants (the LDAP server is a forked worker).
fn samba_processes(root: u32) -> Vec<u32> {
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        i += 1;
    }
    tree
}

fn signal(signal: &str, pids: &[u32]) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pids:?}");
}

/// Frozen samba processes, thawed when dropped (also when the test fails).
struct Frozen(Vec<u32>);

impl Frozen {
    fn freeze(root: u32) -> Frozen {
        let pids = samba_processes(root);
        signal("STOP", &pids);
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.0);
    }
}

fn samba_dc(command: &str) {
    let script = workspace_root().join("tests/services/samba-dc");
    let output = Command::new(&script)
        .arg(command)
        .arg(&dc().dir)
        .output()
        .expect("running samba-dc");
    assert!(
        output.status.success(),
        "samba-dc {command}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The DC stopped, then started again when dropped (also when the test fails).
struct Stopped;

impl Stopped {
    fn stop() -> Stopped {
        samba_dc("stop");
        Stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        samba_dc("start");
    }
}

fn query(text: &str) -> AccountQuery {
    AccountQuery {
        text: text.to_string(),
        mode: MatchMode::Exact,
    }
}

fn assert_unavailable(result: Result<impl std::fmt::Debug, CallError>, what: &str) {
    match result {
        Err(CallError::Connector(ConnectorError::Unavailable(info))) => {
            assert!(!info.message.is_empty(), "{what}: an empty message");
        }
        other => panic!("{what}: expected a retryable `unavailable`, got {other:?}"),
    }
}

async fn timed<T>(what: &str, limit: Duration, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = tokio::time::timeout(limit * 3, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {:?}", limit * 3));
    let took = started.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took <= limit, "{what} took {took:?}, more than {limit:?}");
    result
}

async fn find(connector: &ConnectorInstance, username: &str) -> usize {
    connector
        .find_accounts(&query(username), None, 5)
        .await
        .unwrap_or_else(|e| panic!("finding {username}: {e}"))
        .accounts
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dc_frozen_stopped_and_restarted() {
    let dc = dc();
    let user = dc.create_user("toutage", UserSpec::default()).await;
    let ad = ad_connector(
        "t-outage",
        ServiceAccount::Delegated,
        json!({"timeout_ms": TIMEOUT_MS}),
    )
    .await;
    // A pooled connection exists before the outage.
    assert_eq!(find(&ad, &user.username).await, 1);
    let account = find_account(&ad, &user.username).await;
    // The configured timeout, plus slack for a loaded machine: never a retry on top of it.
    let budget = Duration::from_millis(TIMEOUT_MS + 750);
    let options = SetOptions {
        must_change_at_next_logon: false,
        unlock: false,
        enforce_history: false,
    };

    // Frozen: TCP still connects, nothing answers. Each call is `unavailable` within the
    // connector's timeout (a search and the reset's lookup each get one).
    {
        let _frozen = Frozen::freeze(dc.samba_pid().expect("samba's pid"));
        assert_unavailable(
            timed("a search on a frozen DC", budget, async {
                ad.find_accounts(&query(&user.username), None, 5).await
            })
            .await,
            "search while frozen",
        );
        let password = SecretString::from(random_password());
        assert_unavailable(
            timed("a reset on a frozen DC", budget, async {
                ad.set_password(&account, &password, options).await
            })
            .await,
            "reset while frozen",
        );
    }
    // Thawed: the same connector answers again.
    assert_eq!(find(&ad, &user.username).await, 1);

    // Stopped: connections are refused.
    {
        let _stopped = Stopped::stop();
        assert_unavailable(
            timed("a search on a stopped DC", budget, async {
                ad.find_accounts(&query(&user.username), None, 5).await
            })
            .await,
            "search while stopped",
        );
        let report = timed(
            "test-connection on a stopped DC",
            budget,
            ad.test_connection(),
        )
        .await
        .expect("test-connection reports, it does not fail");
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.advice.is_some() && c.detail.contains("127.0.0.1")),
            "{report:#?}"
        );
    }
    // Started again: the pooled connections from before are dead; the connector reconnects.
    assert_eq!(find(&ad, &user.username).await, 1);
    let new = random_password();
    ad.set_password(&account, &SecretString::from(new.clone()), options)
        .await
        .expect("a reset after the DC came back");
    dc.bind(&user.dn, &new)
        .await
        .expect("the new password binds");
}
