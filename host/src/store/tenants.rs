//! Tenants: the organisations a Latchkey server serves. Every other row belongs to one.
//!
//! It owns creating and reading tenants. It must never return another tenant's rows from a
//! lookup that names a tenant (the other files keep that rule for theirs).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::error::{DbResult as _, StoreError};
use super::{Store, UnixTime, new_id, now};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: UnixTime,
}

fn tenant(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: row.try_get("id").db()?,
        name: row.try_get("name").db()?,
        created_at: row.try_get("created_at").db()?,
    })
}

impl Store {
    /// Creates a tenant; names are unique.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a tenant needs a name".into()));
        }
        let row = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
             RETURNING id, name, created_at",
        )
        .bind(new_id())
        .bind(name)
        .bind(now())
        .fetch_one(&mut *self.writer().await?)
        .await
        .or_conflict("a tenant with this name exists")?;
        tenant(&row)
    }

    /// The tenant `id`.
    pub async fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db()?
            .ok_or(StoreError::NotFound("tenant"))?;
        tenant(&row)
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .db()?
            .iter()
            .map(tenant)
            .collect()
    }
}
