//! Workstations: the machines a key connects to, enrolled with a token, approved (or revoked)
//! by an admin.
//!
//! It owns the workstation rows and their tokens. It must never find another tenant's
//! workstation, or authenticate a revoked one; the client API refuses deliveries to one that is
//! not approved (see [`Workstation::is_approved`]).

use std::fmt;

use secrecy::SecretString;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::error::{DbResult as _, StoreError};
use super::tokens::{self, Issued};
use super::{Store, UnixTime, new_id, now};

/// Where a workstation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkstationStatus {
    /// Holds a token, waits for an admin.
    Enrolled,
    /// May relay deliveries.
    Approved,
    /// Its token no longer works.
    Revoked,
}

impl WorkstationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkstationStatus::Enrolled => "enrolled",
            WorkstationStatus::Approved => "approved",
            WorkstationStatus::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<WorkstationStatus> {
        match text {
            "enrolled" => Some(WorkstationStatus::Enrolled),
            "approved" => Some(WorkstationStatus::Approved),
            "revoked" => Some(WorkstationStatus::Revoked),
            _ => None,
        }
    }
}

impl fmt::Display for WorkstationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's workstation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workstation {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub status: WorkstationStatus,
    pub enrolled_at: UnixTime,
    pub approved_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

impl Workstation {
    pub fn is_approved(&self) -> bool {
        self.status == WorkstationStatus::Approved
    }
}

pub(crate) const COLUMNS: &str =
    "id, tenant_id, name, status, enrolled_at, approved_at, revoked_at";

pub(crate) fn workstation(row: &AnyRow) -> Result<Workstation, StoreError> {
    let status: String = row.try_get("status").db()?;
    Ok(Workstation {
        id: row.try_get("id").db()?,
        tenant_id: row.try_get("tenant_id").db()?,
        name: row.try_get("name").db()?,
        status: WorkstationStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("workstation status {status:?}")))?,
        enrolled_at: row.try_get("enrolled_at").db()?,
        approved_at: row.try_get("approved_at").db()?,
        revoked_at: row.try_get("revoked_at").db()?,
    })
}

impl Store {
    /// Enrolls a workstation of `tenant_id`: Enrolled, with a token shown once.
    pub async fn enroll_workstation(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Issued<Workstation>, StoreError> {
        self.tenant(tenant_id).await?;
        let (token_id, token, hash) = tokens::issue()?;
        let row = sqlx::query(&format!(
            "INSERT INTO workstations (id, tenant_id, name, status, token_id, token_hash, \
             enrolled_at) VALUES ($1, $2, $3, 'enrolled', $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(tenant_id)
        .bind(name)
        .bind(token_id)
        .bind(hash)
        .bind(now())
        .fetch_one(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(Issued {
            value: workstation(&row)?,
            token,
        })
    }

    /// Workstation `id` of `tenant_id`.
    pub async fn workstation(&self, tenant_id: &str, id: &str) -> Result<Workstation, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workstations WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound("workstation"))?;
        workstation(&row)
    }

    /// The workstations of `tenant_id`, newest first.
    pub async fn workstations(&self, tenant_id: &str) -> Result<Vec<Workstation>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM workstations WHERE tenant_id = $1 \
             ORDER BY enrolled_at DESC, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(workstation)
        .collect()
    }

    /// Approves an enrolled workstation (approving an approved one changes nothing; a revoked
    /// one stays revoked).
    pub async fn approve_workstation(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Workstation, StoreError> {
        let current = self.workstation(tenant_id, id).await?;
        match current.status {
            WorkstationStatus::Approved => return Ok(current),
            WorkstationStatus::Revoked => {
                return Err(StoreError::WrongState {
                    what: "workstation",
                    id: id.to_string(),
                    state: current.status.to_string(),
                    expected: "only an enrolled workstation can be approved",
                });
            }
            WorkstationStatus::Enrolled => {}
        }
        self.set_workstation_status(tenant_id, id, WorkstationStatus::Approved, "approved_at")
            .await
    }

    /// Revokes a workstation: its token stops working.
    pub async fn revoke_workstation(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Workstation, StoreError> {
        self.set_workstation_status(tenant_id, id, WorkstationStatus::Revoked, "revoked_at")
            .await
    }

    async fn set_workstation_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: WorkstationStatus,
        stamp: &'static str,
    ) -> Result<Workstation, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE workstations SET status = $3, {stamp} = $4 \
             WHERE tenant_id = $1 AND id = $2 AND status <> 'revoked' RETURNING {COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(status.as_str())
        .bind(now())
        .fetch_optional(&mut *self.writer().await?)
        .await
        .db()?;
        match row {
            Some(row) => workstation(&row),
            None => self.workstation(tenant_id, id).await,
        }
    }

    /// The workstation holding `token` (enrolled or approved), or `None` when the token is
    /// malformed, unknown, wrong or the workstation revoked.
    pub async fn authenticate_workstation(
        &self,
        token: &SecretString,
    ) -> Result<Option<Workstation>, StoreError> {
        let select = format!(
            "SELECT {COLUMNS}, token_hash FROM workstations WHERE token_id = $1 AND status <> 'revoked'"
        );
        self.row_for_token(&select, token)
            .await?
            .as_ref()
            .map(workstation)
            .transpose()
    }
}
