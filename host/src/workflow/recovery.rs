//! Resolving changes a crash left between seal and release (DESIGN: crash safety). For each
//! change still held or applying, the primary connector's `password-changed-at` decides: if the
//! directory recorded a change at or after the change began, the password is there, so the
//! held delivery is released (the key must get it); if not, nothing was set, so the delivery
//! is destroyed and the change failed. A directory that cannot be asked leaves the change for
//! the next sweep. Either way the admin reads what happened in the change's status and audit.
//!
//! It must never release an envelope the directory did not take, nor destroy one it did.

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
            if change.change.updated_at > older_than {
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
        let directory_has_it = if change.state == ChangeState::Held {
            Some(false)
        } else {
            let connectors = self.connectors.enabled(tenant_id).await?;
            let primary = connectors.into_iter().find(|c| c.is_primary());
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
            let failure = "Latchkey stopped during this change after the primary directory took \
                           the new password; it was released to the key. Secondary directories \
                           may not have it: check them, or reset again.";
            self.store
                .set_change_state(
                    tenant_id,
                    &change.id,
                    ChangeState::PartiallyApplied,
                    Some(failure),
                    at,
                )
                .await?;
        } else {
            let failure = "Latchkey stopped during this change before the directory took the new \
                           password; nothing was set and the envelope was destroyed. Reset again.";
            if let Some(held) = &unfinished.held_delivery_id {
                self.store
                    .discard_held_delivery(tenant_id, held, failure, at)
                    .await?;
            }
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
