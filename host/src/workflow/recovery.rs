//! Resolving changes a crash left between seal and release (DESIGN: crash safety). For each
//! change still held or applying, the primary connector's `password-changed-at` decides: if the
//! directory recorded a change at or after the change began, the password is there, so the
//! held delivery is released (the key must get it); if not, nothing was set, so the delivery
//! is destroyed and the change failed. A directory that cannot be asked leaves the change for
//! the next sweep. Either way the admin reads what happened in the change's status and audit.
//! The same decision ends a change whose request could not learn whether the primary took the
//! password (its answer lost, the directory unreachable): the request leaves it applying.
//!
//! It must never release an envelope the directory did not take, nor destroy one it did; so it
//! never touches a change this process is still applying (`InFlight`): the grace period alone
//! would let the sweeper ask the directory while the primary's `set-password` is on its way,
//! find nothing yet, fail the change and destroy the envelope of a password the directory then
//! takes (found by the crash matrix). Across PostgreSQL replicas only the grace protects a
//! change another replica is applying.
//!
//! It also holds the crash points (`crash_point`) the crash-matrix tests kill the server at:
//! compiled only with the `failpoints` feature, and a no-op otherwise.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::json;

use super::change::Workflow;
use super::describe;
use crate::store::{ChangeState, NewAuditRecord, UnfinishedChange, UnixTime, now};

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Changes whose directory had the password: delivery released.
    pub released: u64,
    /// Changes the directory never took: delivery destroyed, change failed.
    pub failed: u64,
    /// Changes that could not be decided now (directory unreachable): left for the next sweep.
    pub left: u64,
}

impl Workflow {
    /// Resolves every unfinished change last touched at or before `older_than`.
    pub async fn recover(&self, older_than: UnixTime) -> RecoveryReport {
        let mut report = RecoveryReport::default();
        let unfinished = match self.store.unfinished_changes().await {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, "recovery: reading unfinished changes failed");
                return report;
            }
        };
        for change in unfinished {
            if change.change.updated_at > older_than || InFlight::contains(&change.change.id) {
                continue;
            }
            match self.recover_one(&change).await {
                Ok(Some(true)) => report.released += 1,
                Ok(Some(false)) => report.failed += 1,
                Ok(None) => report.left += 1,
                Err(error) => {
                    report.left += 1;
                    tracing::error!(change = %change.change.id, %error, "recovery failed");
                }
            }
        }
        if report != RecoveryReport::default() {
            tracing::info!(?report, "recovered interrupted password changes");
        }
        report
    }

    /// Some(true): released; Some(false): failed; None: undecided.
    async fn recover_one(&self, unfinished: &UnfinishedChange) -> anyhow::Result<Option<bool>> {
        let change = &unfinished.change;
        let tenant_id = change.tenant_id.as_str();
        let employee = self.store.employee(tenant_id, &change.employee_id).await?;
        // A change still held never reached a directory.
        let connectors = self.connectors.enabled(tenant_id).await?;
        let directory_has_it = if change.state == ChangeState::Held {
            Some(false)
        } else {
            let primary = connectors.iter().find(|c| c.is_primary());
            let account = describe::account_from_json(&employee.account);
            match (primary, account) {
                (Some(primary), Some(account)) => {
                    match primary.instance.password_changed_at(&account).await {
                        Ok(Some(at)) => Some(at >= change.started_at),
                        Ok(None) => Some(false),
                        Err(error) => {
                            tracing::warn!(change = %change.id, %error,
                                "recovery: cannot ask the primary directory yet");
                            None
                        }
                    }
                }
                _ => None,
            }
        };
        let Some(directory_has_it) = directory_has_it else {
            return Ok(None);
        };
        let at = now();
        if directory_has_it {
            if let Some(held) = &unfinished.held_delivery_id {
                self.store.release_delivery(tenant_id, held, at).await?;
                self.waker.wake(&change.key_id);
            }
            // The secondaries whose outcome was not recorded as set before the crash may not
            // have the password; with none, the change is whole.
            let missing: Vec<&str> = connectors
                .iter()
                .filter(|c| !c.is_primary())
                .map(|c| c.record.id.as_str())
                .filter(|name| {
                    change
                        .outcomes
                        .get(*name)
                        .and_then(|outcome| outcome.get("ok"))
                        .and_then(serde_json::Value::as_bool)
                        != Some(true)
                })
                .collect();
            let (state, failure) = if missing.is_empty() {
                (ChangeState::Applied, None)
            } else {
                let (connectors, was) = match missing.as_slice() {
                    [one] => (format!("secondary connector {one}"), "was"),
                    many => (format!("secondary connectors {}", many.join(", ")), "were"),
                };
                // A change its request left unconfirmed carries the request's note, and its
                // request never reached the secondaries; one a crash interrupted carries none.
                let failure = if change.failure.is_some() {
                    format!(
                        "The primary directory did not confirm the new password at first; asked \
                         again, it had taken it, so it was released to the key. The {connectors} \
                         {was} not asked: reset again to set a password everywhere."
                    )
                } else {
                    format!(
                        "Latchkey stopped during this change after the primary directory took \
                         the new password; it was released to the key. The {connectors} may \
                         not have it: check, or reset again."
                    )
                };
                (ChangeState::PartiallyApplied, Some(failure))
            };
            self.store
                .set_change_state(tenant_id, &change.id, state, failure.as_deref(), at)
                .await?;
        } else {
            // A change its request left unconfirmed carries the request's note; one a crash
            // interrupted carries none.
            let failure = if change.failure.is_some() {
                "The primary directory did not confirm the new password at first; asked again, \
                 it had not taken it, so nothing was set and the envelope was destroyed. Reset \
                 again."
            } else {
                "Latchkey stopped during this change before the directory took the new password; \
                 nothing was set and the envelope was destroyed. Reset again."
            };
            if let Some(held) = &unfinished.held_delivery_id {
                self.store
                    .discard_held_delivery(tenant_id, held, failure, at)
                    .await?;
            }
            self.store
                .forget_change_password(tenant_id, &employee.id, &change.id)
                .await?;
            self.store
                .set_change_state(
                    tenant_id,
                    &change.id,
                    ChangeState::Failed,
                    Some(failure),
                    at,
                )
                .await?;
        }
        self.store
            .append_audit(
                NewAuditRecord::new(
                    Some(tenant_id),
                    "system",
                    "password.change.recovered",
                    Some(&employee.id),
                    json!({"change": change.id, "directory_changed": directory_has_it,
                           "was": change.state.as_str()}),
                ),
                at,
            )
            .await?;
        Ok(Some(directory_has_it))
    }
}

/// The changes this process is applying now (between seal and release): recovery leaves them
/// to the request applying them. Per process, like the request; a crash empties it with
/// everything else.
static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A change marked in flight for as long as this lives: dropped when `apply` returns, fails or
/// is cancelled (the client went away), after which recovery may resolve what it left.
pub(super) struct InFlight(String);

impl InFlight {
    pub(super) fn begin(change_id: &str) -> InFlight {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(change_id.to_string());
        InFlight(change_id.to_string())
    }

    fn contains(change_id: &str) -> bool {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(change_id)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// A crash point: with the `failpoints` feature and the point armed through the `FAILPOINTS`
/// environment variable (tikv's fail-rs, set up in `serve`), the process SIGKILLs itself here;
/// otherwise nothing (the body is compiled out and the call inlined away).
///
/// The action is `return` (kill every time the point is reached) or `return(FILE)` (kill only
/// while FILE exists): a test's server restarts with the environment it started with, as under
/// a supervisor, so a test disarms the point for the restart by removing the file.
///
/// Why SIGKILL and not fail-rs's `panic`: a panic in a request's tokio task kills the task,
/// not the process (and the profile's `panic = unwind` stays). Why not `process::abort()`:
/// SIGABRT may dump core, and a core file of this process is plaintext on disk. SIGKILL is the
/// crash the matrix promises to survive: no unwinding, no destructors, nothing flushed.
#[inline(always)]
pub fn crash_point(name: &'static str) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |arm: Option<String>| crash(name, arm.as_deref()));
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// A delay point (`failpoints` builds only): armed as `NAME=return(MS)`, the task waits MS
/// milliseconds here without blocking the runtime (fail-rs's own `sleep` blocks a worker
/// thread, and with it whatever else would run meanwhile, like the sweeper); a slow directory
/// for the tests. Otherwise nothing.
#[inline(always)]
pub async fn delay_point(name: &'static str) {
    #[cfg(feature = "failpoints")]
    {
        let mut delay = None;
        // fail_point! returns from the function it is in: this closure.
        (|| {
            fail::fail_point!(name, |ms: Option<String>| {
                delay = ms.and_then(|ms| ms.parse::<u64>().ok());
            });
        })();
        if let Some(ms) = delay {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(feature = "failpoints")]
fn crash(name: &str, arm: Option<&str>) {
    if arm.is_some_and(|file| !std::path::Path::new(file).exists()) {
        return;
    }
    // Written straight to stderr (unbuffered): the tests read it to know the crash was this one.
    eprintln!(
        "failpoint {name}: killing process {} with SIGKILL",
        std::process::id()
    );
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // A SIGKILL to oneself is delivered before kill() returns; should it somehow not be, the
    // process must still not go on past the crash point.
    std::process::abort();
}
