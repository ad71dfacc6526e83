//! Sync checks: the secondary connectors whose copy of a password arrives through the
//! organisation's own sync (Entra ID's password hash sync from on-prem AD), watched until the
//! directory shows it.
//!
//! It owns the `sync_checks` rows, and settling one together with the change's outcome for that
//! connector and its audit record, in one transaction. It must never hold a password: a check
//! knows the account and when the change began, nothing else. Deciding when a check is synced
//! or overdue belongs to `workflow::sync`.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::audit::NewAuditRecord;
use super::changes::update_outcome_in;
use super::error::{DbResult as _, StoreError};
use super::{Store, UnixTime};

/// Where a watched outcome stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Not in the directory yet; before the deadline.
    Awaiting,
    /// The directory shows a password change at or after the change began.
    Synced,
    /// The deadline passed without it (still watched until `watch_until`).
    Overdue,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Awaiting => "awaiting",
            SyncState::Synced => "synced",
            SyncState::Overdue => "overdue",
        }
    }

    fn parse(text: &str) -> Option<SyncState> {
        match text {
            "awaiting" => Some(SyncState::Awaiting),
            "synced" => Some(SyncState::Synced),
            "overdue" => Some(SyncState::Overdue),
            _ => None,
        }
    }
}

/// A check to start.
#[derive(Clone, Debug)]
pub struct NewSyncCheck {
    pub change_id: String,
    pub connector_id: String,
    pub tenant_id: String,
    /// The connector's account (the WIT `account` record as JSON).
    pub account: serde_json::Value,
    pub since: UnixTime,
    pub deadline: UnixTime,
    pub watch_until: UnixTime,
    pub next_check_at: UnixTime,
}

/// A watched outcome.
#[derive(Clone, Debug)]
pub struct SyncCheck {
    pub change_id: String,
    pub connector_id: String,
    pub tenant_id: String,
    pub account: serde_json::Value,
    pub since: UnixTime,
    pub state: SyncState,
    pub deadline: UnixTime,
    pub watch_until: UnixTime,
    pub next_check_at: UnixTime,
    pub checks: i64,
    pub last_error: Option<String>,
    pub synced_at: Option<UnixTime>,
}

const COLUMNS: &str = "change_id, connector_id, tenant_id, account, since, state, deadline, \
                       watch_until, next_check_at, checks, last_error, synced_at";

fn check(row: &AnyRow) -> Result<SyncCheck, StoreError> {
    let state: String = row.try_get("state").db()?;
    let account: String = row.try_get("account").db()?;
    Ok(SyncCheck {
        change_id: row.try_get("change_id").db()?,
        connector_id: row.try_get("connector_id").db()?,
        tenant_id: row.try_get("tenant_id").db()?,
        account: serde_json::from_str(&account)
            .map_err(|e| StoreError::Corrupt(format!("sync check account: {e}")))?,
        since: row.try_get("since").db()?,
        state: SyncState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("sync check state {state:?}")))?,
        deadline: row.try_get("deadline").db()?,
        watch_until: row.try_get("watch_until").db()?,
        next_check_at: row.try_get("next_check_at").db()?,
        checks: row.try_get("checks").db()?,
        last_error: row.try_get("last_error").db()?,
        synced_at: row.try_get("synced_at").db()?,
    })
}

impl Store {
    /// Starts watching a connector's outcome of a change.
    pub async fn add_sync_check(&self, new: NewSyncCheck) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_checks (change_id, connector_id, tenant_id, account, since, state, \
             deadline, watch_until, next_check_at) \
             VALUES ($1, $2, $3, $4, $5, 'awaiting', $6, $7, $8)",
        )
        .bind(&new.change_id)
        .bind(&new.connector_id)
        .bind(&new.tenant_id)
        .bind(new.account.to_string())
        .bind(new.since)
        .bind(new.deadline)
        .bind(new.watch_until)
        .bind(new.next_check_at)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(())
    }

    /// Checks due at `now` on every tenant (not synced, still watched), the most overdue
    /// first, at most `limit`.
    pub async fn due_sync_checks(
        &self,
        now: UnixTime,
        limit: i64,
    ) -> Result<Vec<SyncCheck>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sync_checks \
             WHERE state <> 'synced' AND next_check_at <= $1 AND watch_until >= $1 \
             ORDER BY next_check_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(check).collect()
    }

    /// The checks of change `change_id` of `tenant_id`.
    pub async fn sync_checks_of_change(
        &self,
        tenant_id: &str,
        change_id: &str,
    ) -> Result<Vec<SyncCheck>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sync_checks WHERE tenant_id = $1 AND change_id = $2 \
             ORDER BY connector_id"
        ))
        .bind(tenant_id)
        .bind(change_id)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(check).collect()
    }

    /// Looks again at `next_check_at`; `error` is why this look could not tell (none when the
    /// directory simply does not show the change yet).
    pub async fn reschedule_sync_check(
        &self,
        check: &SyncCheck,
        next_check_at: UnixTime,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_checks SET next_check_at = $3, checks = checks + 1, last_error = $4 \
             WHERE change_id = $1 AND connector_id = $2",
        )
        .bind(&check.change_id)
        .bind(&check.connector_id)
        .bind(next_check_at)
        .bind(error)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(())
    }

    /// Moves `check` to `state` (synced at `synced_at`, or overdue and looked at again at
    /// `next_check_at`), rewrites the change's outcome for the connector with `outcome`, and
    /// appends `audit`, in one transaction. False when another sweep settled it first.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle_sync_check(
        &self,
        check: &SyncCheck,
        state: SyncState,
        synced_at: Option<UnixTime>,
        next_check_at: UnixTime,
        outcome: impl FnOnce(&mut serde_json::Value),
        audit: NewAuditRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let moved = sqlx::query(
            "UPDATE sync_checks SET state = $3, synced_at = $4, next_check_at = $5, \
             checks = checks + 1, last_error = NULL \
             WHERE change_id = $1 AND connector_id = $2 AND state = $6",
        )
        .bind(&check.change_id)
        .bind(&check.connector_id)
        .bind(state.as_str())
        .bind(synced_at)
        .bind(next_check_at)
        .bind(check.state.as_str())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        update_outcome_in(
            &mut *tx,
            &check.tenant_id,
            &check.change_id,
            &check.connector_id,
            now,
            outcome,
        )
        .await?;
        super::audit::append_in(&mut *tx, audit, now).await?;
        tx.commit().await.db()?;
        Ok(true)
    }
}
