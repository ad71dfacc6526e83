//! Hardware keys: their public keys (KEM for sealing, signature for acks), their status and
//! the employee they belong to, and the rules a status imposes.
//!
//! It owns the key rows and the status rules: a new password is sealed only to a Ready,
//! Reserved or Active key; deliveries go only to an Active key; a Compromised key stays so.
//! Taking a key out of service (Deactivated, Compromised) fails its queued deliveries and
//! deletes their ciphertext in the same transaction. It must never find another tenant's key.

use std::fmt;

use super::direct::{Columns, Statements, args};
use super::error::{DbResult as _, KeyRefusal, StoreError};
use super::{Store, UnixTime, new_id, now};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Ready,
    Reserved,
    Active,
    Locked,
    Suspended,
    Deactivated,
    Compromised,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 7] = [
        KeyStatus::Ready,
        KeyStatus::Reserved,
        KeyStatus::Active,
        KeyStatus::Locked,
        KeyStatus::Suspended,
        KeyStatus::Deactivated,
        KeyStatus::Compromised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Ready => "ready",
            KeyStatus::Reserved => "reserved",
            KeyStatus::Active => "active",
            KeyStatus::Locked => "locked",
            KeyStatus::Suspended => "suspended",
            KeyStatus::Deactivated => "deactivated",
            KeyStatus::Compromised => "compromised",
        }
    }

    pub fn parse(text: &str) -> Option<KeyStatus> {
        KeyStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether a new password may be sealed to a key in this status.
    pub fn allows_new_password(self) -> bool {
        matches!(
            self,
            KeyStatus::Ready | KeyStatus::Reserved | KeyStatus::Active
        )
    }

    /// Whether deliveries may go to a key in this status.
    pub fn allows_delivery(self) -> bool {
        self == KeyStatus::Active
    }

    /// Whether entering this status ends the key's queued deliveries.
    fn ends_deliveries(self) -> bool {
        matches!(self, KeyStatus::Deactivated | KeyStatus::Compromised)
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's hardware key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub tenant_id: String,
    pub serial: String,
    pub kem_public_key: Vec<u8>,
    pub sig_public_key: Vec<u8>,
    pub status: KeyStatus,
    pub employee_id: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl Key {
    /// Refuses unless a new password may be sealed to this key.
    pub fn require_new_password(&self) -> Result<(), StoreError> {
        self.require(self.status.allows_new_password(), KeyRefusal::NoNewPassword)
    }

    /// Refuses unless deliveries may go to this key.
    pub fn require_delivery(&self) -> Result<(), StoreError> {
        self.require(self.status.allows_delivery(), KeyRefusal::NoDelivery)
    }

    fn require(&self, allowed: bool, refusal: KeyRefusal) -> Result<(), StoreError> {
        if allowed {
            Ok(())
        } else {
            Err(StoreError::KeyRefused {
                key: self.id.clone(),
                status: self.status,
                refusal,
            })
        }
    }
}

/// A key to register (it starts Ready, assigned to nobody).
#[derive(Debug, Clone)]
pub struct NewKey {
    pub serial: String,
    pub kem_public_key: Vec<u8>,
    pub sig_public_key: Vec<u8>,
}

pub(crate) const COLUMNS: &str = "id, tenant_id, serial, kem_public_key, sig_public_key, status, \
                                  employee_id, created_at, updated_at";

pub(crate) fn key(row: &impl Columns) -> Result<Key, StoreError> {
    let status: String = row.column("status")?;
    Ok(Key {
        id: row.column("id")?,
        tenant_id: row.column("tenant_id")?,
        serial: row.column("serial")?,
        kem_public_key: row.column("kem_public_key")?,
        sig_public_key: row.column("sig_public_key")?,
        status: KeyStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("key status {status:?}")))?,
        employee_id: row.column("employee_id")?,
        created_at: row.column("created_at")?,
        updated_at: row.column("updated_at")?,
    })
}

/// Key `id` of `tenant_id`, read by `statements` (a pooled connection, or a transaction).
pub(crate) async fn key_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    id: &str,
) -> Result<Key, StoreError> {
    let row = statements
        .fetch_optional(&BY_ID, args![tenant_id, id])
        .await
        .db()?
        .ok_or(StoreError::NotFound("key"))?;
    key(&row)
}

static BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM keys WHERE tenant_id = $1 AND id = $2")
});

impl Store {
    /// Registers a key of `tenant_id`, Ready and unassigned; serials are unique per tenant.
    pub async fn create_key(&self, tenant_id: &str, new: NewKey) -> Result<Key, StoreError> {
        if new.serial.trim().is_empty() {
            return Err(StoreError::Invalid("a key needs a serial".into()));
        }
        self.tenant(tenant_id).await?;
        let at = now();
        let row = sqlx::query(&format!(
            "INSERT INTO keys (id, tenant_id, serial, kem_public_key, sig_public_key, status, \
             employee_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'ready', NULL, $6, $6) \
             RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(tenant_id)
        .bind(&new.serial)
        .bind(new.kem_public_key)
        .bind(new.sig_public_key)
        .bind(at)
        .fetch_one(&mut *self.writer().await?)
        .await
        .or_conflict("a key with this serial exists")?;
        key(&row)
    }

    /// Key `id` of `tenant_id`.
    pub async fn key(&self, tenant_id: &str, id: &str) -> Result<Key, StoreError> {
        key_in(&mut *self.pool.acquire().await.db()?, tenant_id, id).await
    }

    /// The keys of `tenant_id` (only `employee_id`'s when given), by serial.
    pub async fn keys(
        &self,
        tenant_id: &str,
        employee_id: Option<&str>,
    ) -> Result<Vec<Key>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM keys WHERE tenant_id = $1 \
             AND ($2 IS NULL OR employee_id = $2) ORDER BY serial, id"
        ))
        .bind(tenant_id)
        .bind(employee_id)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(key)
        .collect()
    }

    /// Assigns key `id` of `tenant_id` to `employee_id` (of the same tenant), or to nobody.
    pub async fn assign_key(
        &self,
        tenant_id: &str,
        id: &str,
        employee_id: Option<&str>,
    ) -> Result<Key, StoreError> {
        if let Some(employee_id) = employee_id {
            self.employee(tenant_id, employee_id).await?;
        }
        let row = sqlx::query(&format!(
            "UPDATE keys SET employee_id = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(employee_id)
        .bind(now())
        .fetch_optional(&mut *self.writer().await?)
        .await
        .db()?
        .ok_or(StoreError::NotFound("key"))?;
        key(&row)
    }

    /// Moves key `id` of `tenant_id` to `status`. A Compromised key refuses; Deactivated and
    /// Compromised fail the key's queued and held deliveries (ciphertext deleted) at once.
    pub async fn set_key_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: KeyStatus,
    ) -> Result<Key, StoreError> {
        let mut tx = self.write().await?;
        let current = key_in(&mut *tx, tenant_id, id).await?;
        if current.status == KeyStatus::Compromised && status != KeyStatus::Compromised {
            return Err(StoreError::KeyRefused {
                key: current.id,
                status: current.status,
                refusal: KeyRefusal::Terminal,
            });
        }
        let at = now();
        let row = sqlx::query(&format!(
            "UPDATE keys SET status = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(status.as_str())
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .db()?;
        if status.ends_deliveries() {
            sqlx::query(
                "UPDATE deliveries SET state = 'failed', ciphertext = NULL, \
                 lease_expires_at = NULL, finished_at = $3, failure = $4 \
                 WHERE tenant_id = $1 AND key_id = $2 AND state IN ('held', 'pending', 'leased')",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(at)
            .bind(format!("the key became {status}"))
            .execute(&mut *tx)
            .await
            .db()?;
        }
        tx.commit().await.db()?;
        key(&row)
    }
}
