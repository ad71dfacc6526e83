//! The host's own password history: argon2id hashes of the last N passwords set through
//! Latchkey for each employee, N per tenant (`tenants.password_history_length`, default 24).
//!
//! It owns the `password_history` rows and the tenant's history length: adding a hash and
//! pruning beyond N in one transaction, listing the last N. It must never see a password (it
//! takes and returns PHC strings hashed by `workflow::history`), and never return another
//! tenant's or another employee's hashes.

use sqlx::Row as _;

use super::direct::{Statements, args};
use super::error::{DbResult as _, StoreError};
use super::{Backend, Store, now};

/// The most passwords a tenant may remember (the schema's check): each one costs an argon2
/// verification every time a candidate is checked.
pub const MAX_PASSWORD_HISTORY_LENGTH: u32 = 100;

impl Store {
    /// How many passwords `tenant_id` remembers per employee.
    pub async fn password_history_length(&self, tenant_id: &str) -> Result<u32, StoreError> {
        let row = sqlx::query("SELECT password_history_length FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await
            .db()?
            .ok_or(StoreError::NotFound("tenant"))?;
        history_length(row.try_get("password_history_length").db()?)
    }

    /// Sets how many passwords `tenant_id` remembers per employee (0 to
    /// [`MAX_PASSWORD_HISTORY_LENGTH`]). Entries beyond a smaller length are no longer listed,
    /// and are pruned at the employee's next change.
    pub async fn set_password_history_length(
        &self,
        tenant_id: &str,
        length: u32,
    ) -> Result<(), StoreError> {
        if length > MAX_PASSWORD_HISTORY_LENGTH {
            return Err(StoreError::Invalid(format!(
                "a password history remembers at most {MAX_PASSWORD_HISTORY_LENGTH} passwords"
            )));
        }
        let done = sqlx::query("UPDATE tenants SET password_history_length = $1 WHERE id = $2")
            .bind(i64::from(length))
            .bind(tenant_id)
            .execute(&mut *self.writer().await?)
            .await
            .db()?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    /// Adds `hash` (an argon2id PHC string) to the history of employee `employee_id` of
    /// `tenant_id`, and deletes what lies beyond the tenant's length, in one transaction. With
    /// a length of 0 nothing is kept.
    pub async fn append_password_hash(
        &self,
        tenant_id: &str,
        employee_id: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        if !hash.starts_with("$argon2id$") {
            return Err(StoreError::Invalid(
                "the password history keeps argon2id hashes only".into(),
            ));
        }
        let mut tx = self.write().await?;
        // Locks the employee row on PostgreSQL, so two changes of one employee number their
        // entries one after the other (SQLite's BEGIN IMMEDIATE already serialises writers);
        // also refuses an employee of another tenant.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF e",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT t.password_history_length AS length FROM employees e \
             JOIN tenants t ON t.id = e.tenant_id WHERE e.tenant_id = $1 AND e.id = $2{lock}"
        ))
        .bind(tenant_id)
        .bind(employee_id)
        .fetch_optional(&mut *tx)
        .await
        .db()?
        .ok_or(StoreError::NotFound("employee"))?;
        let length: i64 = row.try_get("length").db()?;
        let last: i64 = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) AS last FROM password_history \
             WHERE tenant_id = $1 AND employee_id = $2",
        )
        .bind(tenant_id)
        .bind(employee_id)
        .fetch_one(&mut *tx)
        .await
        .db()?
        .try_get("last")
        .db()?;
        let seq = last + 1;
        if length > 0 {
            sqlx::query(
                "INSERT INTO password_history (tenant_id, employee_id, seq, hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant_id)
            .bind(employee_id)
            .bind(seq)
            .bind(hash)
            .bind(now())
            .execute(&mut *tx)
            .await
            .or_conflict("a concurrent change to this employee's password history")?;
        }
        sqlx::query(
            "DELETE FROM password_history WHERE tenant_id = $1 AND employee_id = $2 AND seq <= $3",
        )
        .bind(tenant_id)
        .bind(employee_id)
        .bind(seq - length)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    /// The argon2id hashes of the last N passwords of employee `employee_id` of `tenant_id`,
    /// newest first, N being the tenant's current length.
    pub async fn password_hashes(
        &self,
        tenant_id: &str,
        employee_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let length = self.password_history_length(tenant_id).await?;
        sqlx::query(
            "SELECT hash FROM password_history WHERE tenant_id = $1 AND employee_id = $2 \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(tenant_id)
        .bind(employee_id)
        .bind(i64::from(length))
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(|row| row.try_get("hash").db())
        .collect()
    }

    /// Takes back the history entry change `change_id` wrote ahead for employee `employee_id`
    /// of `tenant_id`: the change failed before any directory took its password.
    pub async fn forget_change_password(
        &self,
        tenant_id: &str,
        employee_id: &str,
        change_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM password_history WHERE tenant_id = $1 AND employee_id = $2 \
             AND change_id = $3",
        )
        .bind(tenant_id)
        .bind(employee_id)
        .bind(change_id)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(())
    }
}

/// Adds `hash` (argon2id PHC) as the newest entry of the employee's history inside `tx`, on
/// behalf of change `change_id`, without pruning: the change may still fail and take it back,
/// and the oldest entry must not have been lost for nothing. [`prune_in`] trims once the
/// change is applied; listing reads only the newest N meanwhile.
pub(crate) async fn append_ahead_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    employee_id: &str,
    change_id: &str,
    hash: &str,
) -> Result<(), StoreError> {
    if !hash.starts_with("$argon2id$") {
        return Err(StoreError::Invalid(
            "the password history keeps argon2id hashes only".into(),
        ));
    }
    statements
        .execute(
            "INSERT INTO password_history (tenant_id, employee_id, seq, hash, created_at, \
             change_id) SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5 \
             FROM password_history WHERE tenant_id = $1 AND employee_id = $2",
            args![tenant_id, employee_id, hash, now(), change_id],
        )
        .await
        .or_conflict("a concurrent change to this employee's password history")?;
    Ok(())
}

/// Deletes the employee's entries beyond the tenant's history length inside `tx`.
pub(crate) async fn prune_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    employee_id: &str,
) -> Result<(), StoreError> {
    statements
        .execute(
            "DELETE FROM password_history WHERE tenant_id = $1 AND employee_id = $2 AND seq <= \
             (SELECT COALESCE(MAX(seq), 0) FROM password_history \
              WHERE tenant_id = $1 AND employee_id = $2) \
             - (SELECT password_history_length FROM tenants WHERE id = $1)",
            args![tenant_id, employee_id],
        )
        .await
        .db()?;
    Ok(())
}

/// A tenant's stored history length, checked (the schema keeps it in 0..=100).
pub(crate) fn history_length(length: i64) -> Result<u32, StoreError> {
    u32::try_from(length)
        .map_err(|_| StoreError::Corrupt(format!("password history length {length}")))
}
