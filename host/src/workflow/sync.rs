//! Verifying that the organisation's own sync carried a change (DESIGN step 6). A secondary
//! connector that must not write a synced account — Entra ID for a user mastered in on-prem AD
//! — answers `awaiting-sync`; the change is then watched, in the background and without the
//! password, through that connector's `password-changed-at`:
//!
//! - a password change recorded after the second the change began: `synced`;
//! - still nothing when the connector's `sync_timeout_seconds` (default 30 minutes) has
//!   passed: `sync-overdue`, with what to check; watched for a day more, and `synced` if sync
//!   catches up.
//!
//! Each move rewrites that connector's outcome in the change (what the console and the API
//! show) and is audited, in one transaction. The checks run in the sweeper, on one replica of
//! the cluster at a time.
//!
//! It must never set a password: it only reads when the directory last saw one.

use serde_json::{Map, Value, json};

use super::change::Workflow;
use super::connectors::TenantConnector;
use super::describe;
use crate::store::{NewAuditRecord, NewSyncCheck, SyncCheck, SyncState, UnixTime};

/// How long sync may take when a connector does not set `sync_timeout_seconds`. Entra Connect
/// syncs password hashes every two minutes; half an hour means something is wrong.
pub const DEFAULT_SYNC_TIMEOUT_SECONDS: i64 = 1800;
/// The values `sync_timeout_seconds` may take.
pub const SYNC_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1..=7 * 86_400;
/// How long an overdue change is still watched.
const WATCH_AFTER_DEADLINE: i64 = 86_400;
/// The most checks one sweep makes.
const CHECKS_PER_SWEEP: i64 = 200;

/// The sync timeout a connector's configuration sets (`sync_timeout_seconds`), or the default.
pub fn sync_timeout(config: &Map<String, Value>) -> i64 {
    config
        .get("sync_timeout_seconds")
        .and_then(Value::as_i64)
        .filter(|s| SYNC_TIMEOUT_RANGE.contains(s))
        .unwrap_or(DEFAULT_SYNC_TIMEOUT_SECONDS)
}

/// When to look again: often at first (sync usually lands within minutes), then less often.
fn next_check(check: &SyncCheck, now: UnixTime) -> UnixTime {
    let waited = (now - check.since).max(0);
    let step = if check.state == SyncState::Overdue {
        300
    } else {
        (waited / 10).clamp(1, 60)
    };
    // Never past the deadline: the move to overdue is due then.
    if check.state == SyncState::Awaiting {
        (now + step).min(check.deadline.max(now + 1))
    } else {
        now + step
    }
}

/// The change's sync status from its connectors' outcomes: none when no connector waits for
/// sync; otherwise `sync-overdue` if any is overdue, else `awaiting-sync` if any still waits,
/// else `synced`.
pub fn summary(outcomes: &Map<String, Value>) -> Option<&'static str> {
    let statuses: Vec<&str> = outcomes
        .values()
        .filter_map(|o| o["status"].as_str())
        .filter(|s| matches!(*s, "awaiting-sync" | "synced" | "sync-overdue"))
        .collect();
    if statuses.is_empty() {
        None
    } else if statuses.contains(&"sync-overdue") {
        Some("sync-overdue")
    } else if statuses.contains(&"awaiting-sync") {
        Some("awaiting-sync")
    } else {
        Some("synced")
    }
}

impl Workflow {
    /// Starts watching `connector`'s copy of change `change_id`, begun at `since`.
    pub(super) async fn watch_sync(
        &self,
        change_id: &str,
        connector: &TenantConnector,
        account: &crate::runtime::wit::types::Account,
        since: UnixTime,
        now: UnixTime,
    ) {
        let deadline = now + sync_timeout(&connector.record.config);
        let new = NewSyncCheck {
            change_id: change_id.to_string(),
            connector_id: connector.record.id.clone(),
            tenant_id: connector.record.tenant_id.clone(),
            account: describe::account_to_json(account),
            since,
            deadline,
            watch_until: deadline + WATCH_AFTER_DEADLINE,
            next_check_at: now + 1,
        };
        if let Err(error) = self.store.add_sync_check(new).await {
            tracing::error!(%error, change = %change_id, connector = %connector.record.id,
                "sync verification: the check could not be recorded");
        }
    }

    /// Makes every sync check that is due. Returns how many moved (synced or overdue).
    pub async fn verify_syncs(&self, now: UnixTime) -> u64 {
        let due = match self.store.due_sync_checks(now, CHECKS_PER_SWEEP).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "sync verification: reading the due checks failed");
                return 0;
            }
        };
        let mut moved = 0;
        for check in due {
            if self.verify_sync(&check, now).await {
                moved += 1;
            }
        }
        moved
    }

    async fn verify_sync(&self, check: &SyncCheck, now: UnixTime) -> bool {
        let changed_at = match self.changed_at(check).await {
            Ok(at) => at,
            Err(reason) => {
                if check.state == SyncState::Awaiting && now >= check.deadline {
                    return self.overdue(check, now, Some(&reason)).await;
                }
                let next = next_check(check, now);
                if let Err(error) = self
                    .store
                    .reschedule_sync_check(check, next, Some(&reason))
                    .await
                {
                    tracing::warn!(%error, "sync verification: rescheduling a check failed");
                }
                return false;
            }
        };
        match changed_at {
            // Strictly after the second the change began: Graph's times are whole seconds, and
            // an earlier change synced in that same second must not count as this one (sync
            // itself takes minutes, never under a second).
            Some(at) if at > check.since => self.synced(check, at, now).await,
            _ if check.state == SyncState::Awaiting && now >= check.deadline => {
                self.overdue(check, now, None).await
            }
            _ => {
                let next = next_check(check, now);
                if let Err(error) = self.store.reschedule_sync_check(check, next, None).await {
                    tracing::warn!(%error, "sync verification: rescheduling a check failed");
                }
                false
            }
        }
    }

    /// The connector's `password-changed-at` for the check's account, or why it cannot say.
    async fn changed_at(&self, check: &SyncCheck) -> Result<Option<UnixTime>, String> {
        let connector = self
            .connectors
            .get(&check.tenant_id, &check.connector_id)
            .await
            .map_err(|e| e.to_string())?;
        let account = describe::account_from_json(&check.account)
            .ok_or_else(|| "the stored account could not be read".to_string())?;
        connector
            .instance
            .password_changed_at(&account)
            .await
            .map_err(|error| {
                let (detail, _) = describe::call_error(&error);
                detail["message"]
                    .as_str()
                    .unwrap_or("the directory could not be asked")
                    .to_string()
            })
    }

    async fn synced(&self, check: &SyncCheck, at: UnixTime, now: UnixTime) -> bool {
        let waited = (at - check.since).max(0);
        let audit = NewAuditRecord::new(
            Some(&check.tenant_id),
            "latchkey",
            "password.change.synced",
            Some(&check.change_id),
            json!({"change": check.change_id, "connector": check.connector_id,
                   "synced_at": at, "after_seconds": waited}),
        );
        let settled = self
            .store
            .settle_sync_check(
                check,
                SyncState::Synced,
                Some(at),
                now,
                |outcome| {
                    outcome["status"] = json!("synced");
                    outcome["synced_at"] = json!(at);
                    outcome["message"] = json!(format!(
                        "the directory's sync carried the new password ({waited} s after the \
                         change)"
                    ));
                },
                audit,
                now,
            )
            .await;
        self.settled(check, settled, "synced")
    }

    async fn overdue(&self, check: &SyncCheck, now: UnixTime, error: Option<&str>) -> bool {
        let minutes = (check.deadline - check.since).max(0) / 60;
        let message = format!(
            "the directory's sync has not carried the new password after {minutes} minute(s): \
             the account is mastered in the primary directory, where the password is set; check \
             the sync service (Entra Connect: password hash sync enabled and running). Until it \
             syncs, cloud sign-ins still take the old password. Latchkey keeps checking for a day."
        );
        let audit = NewAuditRecord::new(
            Some(&check.tenant_id),
            "latchkey",
            "password.change.sync-overdue",
            Some(&check.change_id),
            json!({"change": check.change_id, "connector": check.connector_id,
                   "deadline": check.deadline, "last_error": error}),
        );
        let settled = self
            .store
            .settle_sync_check(
                check,
                SyncState::Overdue,
                None,
                now + 300,
                |outcome| {
                    outcome["status"] = json!("sync-overdue");
                    outcome["message"] = json!(message);
                },
                audit,
                now,
            )
            .await;
        self.settled(check, settled, "sync-overdue")
    }

    fn settled(
        &self,
        check: &SyncCheck,
        settled: Result<bool, crate::store::StoreError>,
        to: &str,
    ) -> bool {
        match settled {
            Ok(moved) => {
                if moved {
                    tracing::info!(change = %check.change_id, connector = %check.connector_id,
                        status = to, "sync verification");
                }
                moved
            }
            Err(error) => {
                tracing::warn!(%error, change = %check.change_id,
                    "sync verification: recording the result failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(statuses: &[&str]) -> Map<String, Value> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("c{i}"), json!({"ok": true, "status": s})))
            .collect()
    }

    #[test]
    fn the_summary_shows_the_worst_sync_state() {
        assert_eq!(summary(&outcomes(&["applied"])), None);
        assert_eq!(
            summary(&outcomes(&["applied", "awaiting-sync"])),
            Some("awaiting-sync")
        );
        assert_eq!(summary(&outcomes(&["applied", "synced"])), Some("synced"));
        assert_eq!(
            summary(&outcomes(&["synced", "sync-overdue", "awaiting-sync"])),
            Some("sync-overdue")
        );
    }

    #[test]
    fn the_timeout_comes_from_the_configuration_within_bounds() {
        let config = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            sync_timeout(&config(json!({}))),
            DEFAULT_SYNC_TIMEOUT_SECONDS
        );
        assert_eq!(sync_timeout(&config(json!({"sync_timeout_seconds": 5}))), 5);
        assert_eq!(
            sync_timeout(&config(json!({"sync_timeout_seconds": 0}))),
            DEFAULT_SYNC_TIMEOUT_SECONDS
        );
        assert_eq!(
            sync_timeout(&config(json!({"sync_timeout_seconds": "soon"}))),
            DEFAULT_SYNC_TIMEOUT_SECONDS
        );
    }

    #[test]
    fn checks_are_frequent_at_first_and_never_skip_the_deadline() {
        let check = SyncCheck {
            change_id: "c".into(),
            connector_id: "entra".into(),
            tenant_id: "t".into(),
            account: json!({}),
            since: 1000,
            state: SyncState::Awaiting,
            deadline: 1030,
            watch_until: 1030 + WATCH_AFTER_DEADLINE,
            next_check_at: 0,
            checks: 0,
            last_error: None,
            synced_at: None,
        };
        assert_eq!(next_check(&check, 1002), 1003);
        assert_eq!(next_check(&check, 1025), 1027);
        assert_eq!(next_check(&check, 1029), 1030);
        let overdue = SyncCheck {
            state: SyncState::Overdue,
            ..check
        };
        assert_eq!(next_check(&overdue, 2000), 2300);
    }
}
