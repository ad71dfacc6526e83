//! Enrolment codes: a tenant's admin creates a one-time code, a workstation trades it for a
//! token of its own (Enrolled, useful only once an admin approves it). Codes are tokens
//! (`lk_<id>_<secret>`, argon2id-hashed), expire, and are used at most once.
//!
//! It owns the `enrollment_codes` rows and redeeming a code together with creating the
//! workstation (one transaction). It must never store or print a code's secret.

use secrecy::SecretString;
use sqlx::Row as _;

use super::error::{DbResult as _, StoreError};
use super::tokens::{self, Issued};
use super::workstations::{self, Workstation};
use super::{Store, UnixTime, new_id};

/// An enrolment code (its secret is shown once, when created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCode {
    pub id: String,
    pub tenant_id: String,
    pub created_by: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    pub workstation_id: Option<String>,
}

const COLUMNS: &str = "id, tenant_id, created_by, created_at, expires_at, used_at, workstation_id";

fn code(row: &sqlx::any::AnyRow) -> Result<EnrollmentCode, StoreError> {
    Ok(EnrollmentCode {
        id: row.try_get("id").db()?,
        tenant_id: row.try_get("tenant_id").db()?,
        created_by: row.try_get("created_by").db()?,
        created_at: row.try_get("created_at").db()?,
        expires_at: row.try_get("expires_at").db()?,
        used_at: row.try_get("used_at").db()?,
        workstation_id: row.try_get("workstation_id").db()?,
    })
}

impl Store {
    /// A new enrolment code of `tenant_id`, valid until `expires_at`.
    pub async fn create_enrollment_code(
        &self,
        tenant_id: &str,
        created_by: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<Issued<EnrollmentCode>, StoreError> {
        self.tenant(tenant_id).await?;
        let (token_id, token, hash) = tokens::issue()?;
        let row = sqlx::query(&format!(
            "INSERT INTO enrollment_codes (id, tenant_id, token_id, token_hash, created_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(tenant_id)
        .bind(token_id)
        .bind(hash)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .fetch_one(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(Issued {
            value: code(&row)?,
            token,
        })
    }

    /// Trades a valid, unused, unexpired `code` for a new workstation named `name` (Enrolled)
    /// and its token. `None` when the code is wrong, used or expired (which, is not said: a
    /// guesser learns nothing).
    pub async fn redeem_enrollment_code(
        &self,
        code_token: &SecretString,
        name: &str,
        now: UnixTime,
    ) -> Result<Option<Issued<Workstation>>, StoreError> {
        let select =
            format!("SELECT {COLUMNS}, token_hash FROM enrollment_codes WHERE token_id = $1");
        let Some(row) = self.row_for_token(&select, code_token).await? else {
            return Ok(None);
        };
        let found = code(&row)?;
        if found.used_at.is_some() || found.expires_at <= now {
            return Ok(None);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::Invalid(
                "a workstation needs a name of 1 to 200 characters".into(),
            ));
        }
        let (token_id, token, hash) = tokens::issue()?;
        let workstation_id = new_id();
        let mut tx = self.write().await?;
        // Used once: the update claims the code, and a second redeemer finds it used.
        let claimed = sqlx::query(
            "UPDATE enrollment_codes SET used_at = $2, workstation_id = $3 \
             WHERE id = $1 AND used_at IS NULL",
        )
        .bind(&found.id)
        .bind(now)
        .bind(&workstation_id)
        .execute(&mut *tx)
        .await
        .db()?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "INSERT INTO workstations (id, tenant_id, name, status, token_id, token_hash, \
             enrolled_at) VALUES ($1, $2, $3, 'enrolled', $4, $5, $6) RETURNING {}",
            workstations::COLUMNS
        ))
        .bind(&workstation_id)
        .bind(&found.tenant_id)
        .bind(name)
        .bind(token_id)
        .bind(hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .db()?;
        let workstation = workstations::workstation(&row)?;
        tx.commit().await.db()?;
        Ok(Some(Issued {
            value: workstation,
            token,
        }))
    }
}
