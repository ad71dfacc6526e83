//! Operators (run the server, create tenants) and admins (a tenant's people, each with a
//! role), and their bearer tokens.
//!
//! It owns who may act and as what. It must never return a principal for a token that does not
//! verify, a revoked principal, or an admin of a tenant other than the one asked for; and never
//! store or print a token's secret (see `tokens`).

use std::fmt;

use secrecy::SecretString;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::error::{DbResult as _, StoreError};
use super::tokens::{self, Issued};
use super::{Store, UnixTime, new_id, now};

/// What an admin may do in their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including managing admins.
    Owner,
    /// Connectors, employees, keys, workstations, resets, audit.
    Admin,
    /// Read, and reset passwords.
    Helpdesk,
    /// Read only.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "helpdesk" => Role::Helpdesk,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }

    /// Every role reads.
    pub fn can_read(self) -> bool {
        true
    }

    /// Owners, admins and helpdesk reset passwords.
    pub fn can_reset(self) -> bool {
        !matches!(self, Role::Auditor)
    }

    /// Owners and admins configure the tenant (connectors, keys, workstations).
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Operator or admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// Runs the server: every tenant.
    Operator,
    /// One tenant's admin.
    Admin { tenant_id: String, role: Role },
}

/// Someone who holds a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub kind: PrincipalKind,
    pub created_at: UnixTime,
}

pub(super) const COLUMNS: &str = "id, kind, tenant_id, role, name, created_at";

pub(super) fn principal(row: &AnyRow) -> Result<Principal, StoreError> {
    let kind: String = row.try_get("kind").db()?;
    let kind = match kind.as_str() {
        "operator" => PrincipalKind::Operator,
        "admin" => {
            let role: String = row.try_get("role").db()?;
            PrincipalKind::Admin {
                tenant_id: row.try_get("tenant_id").db()?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("principal role {role:?}")))?,
            }
        }
        other => return Err(StoreError::Corrupt(format!("principal kind {other:?}"))),
    };
    Ok(Principal {
        id: row.try_get("id").db()?,
        name: row.try_get("name").db()?,
        kind,
        created_at: row.try_get("created_at").db()?,
    })
}

impl Store {
    /// Creates an operator and its token.
    pub async fn create_operator(&self, name: &str) -> Result<Issued<Principal>, StoreError> {
        self.create_principal(name, None).await
    }

    /// Creates an operator whose token is `token`, chosen by whoever runs the server
    /// (LATCHKEY_BOOTSTRAP_TOKEN): 24 to 512 characters, not starting with `lk_`.
    pub async fn create_operator_with_token(
        &self,
        name: &str,
        token: &SecretString,
    ) -> Result<Principal, StoreError> {
        let (token_id, hash) = tokens::chosen(token)?;
        let row = sqlx::query(&format!(
            "INSERT INTO principals (id, kind, tenant_id, role, name, token_id, token_hash, \
             created_at) VALUES ($1, 'operator', NULL, NULL, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(name)
        .bind(token_id)
        .bind(hash)
        .bind(now())
        .fetch_one(&mut *self.writer().await?)
        .await
        .or_conflict("an operator with this token exists")?;
        principal(&row)
    }

    /// Creates an admin of `tenant_id` with `role`, and its token.
    pub async fn create_admin(
        &self,
        tenant_id: &str,
        name: &str,
        role: Role,
    ) -> Result<Issued<Principal>, StoreError> {
        self.create_principal(name, Some((tenant_id, role))).await
    }

    async fn create_principal(
        &self,
        name: &str,
        admin: Option<(&str, Role)>,
    ) -> Result<Issued<Principal>, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a principal needs a name".into()));
        }
        if let Some((tenant_id, _)) = admin {
            self.tenant(tenant_id).await?;
        }
        let (token_id, token, hash) = tokens::issue()?;
        let row = sqlx::query(&format!(
            "INSERT INTO principals (id, kind, tenant_id, role, name, token_id, token_hash, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(if admin.is_some() { "admin" } else { "operator" })
        .bind(admin.map(|(t, _)| t.to_string()))
        .bind(admin.map(|(_, r)| r.as_str()))
        .bind(name)
        .bind(token_id)
        .bind(hash)
        .bind(now())
        .fetch_one(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(Issued {
            value: principal(&row)?,
            token,
        })
    }

    /// How many operators exist (none: the bootstrap token may create the first).
    pub async fn operator_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM principals WHERE kind = 'operator' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .db()?;
        Ok(n as u64)
    }

    /// The principal holding `token`, or `None` when the token is malformed, unknown, wrong or
    /// revoked. Costs one argon2 verify in every case but a malformed token.
    pub async fn authenticate(
        &self,
        token: &SecretString,
    ) -> Result<Option<Principal>, StoreError> {
        let select = format!(
            "SELECT {COLUMNS}, token_hash FROM principals WHERE token_id = $1 AND revoked_at IS NULL"
        );
        self.row_for_token(&select, token)
            .await?
            .as_ref()
            .map(principal)
            .transpose()
    }

    /// The admins of `tenant_id` that are not revoked, by name.
    pub async fn admins(&self, tenant_id: &str) -> Result<Vec<Principal>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM principals \
             WHERE tenant_id = $1 AND kind = 'admin' AND revoked_at IS NULL ORDER BY name, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(principal)
        .collect()
    }

    /// Revokes admin `id` of `tenant_id`: its token stops working.
    pub async fn revoke_admin(&self, tenant_id: &str, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE principals SET revoked_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND kind = 'admin' AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now())
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("admin"));
        }
        Ok(())
    }
}
