//! Employees: a tenant's directory users Latchkey manages, each tied to the connector that
//! found them and the account id in that directory.
//!
//! It owns the employee rows. It must never find an employee of another tenant.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::error::{DbResult as _, StoreError};
use super::{Store, UnixTime, new_id, now};

/// A directory user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub id: String,
    pub tenant_id: String,
    /// The connector that resolved the account.
    pub connector_id: String,
    /// The account's stable id in that directory (AD: objectGUID).
    pub account_id: String,
    pub username: String,
    pub display_name: Option<String>,
    /// The account as the connector described it (the WIT `account` record as JSON), passed
    /// back to the connector on every call.
    pub account: serde_json::Value,
    pub created_at: UnixTime,
}

/// An employee to add.
#[derive(Debug, Clone)]
pub struct NewEmployee {
    pub connector_id: String,
    pub account_id: String,
    pub username: String,
    pub display_name: Option<String>,
    /// The account as the connector described it (JSON); `null` when unknown.
    pub account: serde_json::Value,
}

const COLUMNS: &str =
    "id, tenant_id, connector_id, account_id, username, display_name, account, created_at";

fn employee(row: &AnyRow) -> Result<Employee, StoreError> {
    Ok(Employee {
        id: row.try_get("id").db()?,
        tenant_id: row.try_get("tenant_id").db()?,
        connector_id: row.try_get("connector_id").db()?,
        account_id: row.try_get("account_id").db()?,
        username: row.try_get("username").db()?,
        display_name: row.try_get("display_name").db()?,
        account: {
            let text: String = row.try_get("account").db()?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("employee account: {e}")))?
        },
        created_at: row.try_get("created_at").db()?,
    })
}

impl Store {
    /// Adds an employee to `tenant_id`; the connector must be the tenant's.
    pub async fn create_employee(
        &self,
        tenant_id: &str,
        new: NewEmployee,
    ) -> Result<Employee, StoreError> {
        self.connector(tenant_id, &new.connector_id).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO employees (id, tenant_id, connector_id, account_id, username, \
             display_name, account, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(tenant_id)
        .bind(&new.connector_id)
        .bind(&new.account_id)
        .bind(&new.username)
        .bind(&new.display_name)
        .bind(new.account.to_string())
        .bind(now())
        .fetch_one(&mut *self.writer().await?)
        .await
        .or_conflict("this account is already an employee")?;
        employee(&row)
    }

    /// Employee `id` of `tenant_id`.
    pub async fn employee(&self, tenant_id: &str, id: &str) -> Result<Employee, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM employees WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound("employee"))?;
        employee(&row)
    }

    /// The employees of `tenant_id` whose username or display name contains `query` (any case;
    /// all of them when `query` is empty), by username.
    pub async fn employees(
        &self,
        tenant_id: &str,
        query: &str,
    ) -> Result<Vec<Employee>, StoreError> {
        let pattern = format!(
            "%{}%",
            query
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM employees WHERE tenant_id = $1 \
             AND (LOWER(username) LIKE $2 ESCAPE '\\' \
             OR LOWER(COALESCE(display_name, '')) LIKE $2 ESCAPE '\\') \
             ORDER BY username, id"
        ))
        .bind(tenant_id)
        .bind(pattern)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(employee)
        .collect()
    }
}
