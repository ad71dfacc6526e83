//! A tenant's connectors (which plugin, primary or secondary, in what order, its non-secret
//! configuration, enabled or not) and their secret values, sealed under the master key, with
//! the rotation that re-seals them all under a new one.
//!
//! It owns the connector rows and `connector_secrets`. It must never write a secret value in
//! the clear, return a value whose seal does not open under its own tenant, connector and name,
//! or put a secret in an error or a log.

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::crypto::{MasterKey, SecretAad};
use super::error::{DbResult as _, StoreError};
use super::{Store, UnixTime, new_id, now};
use crate::capabilities::secrets::Secrets;

/// Primary (its set-password decides) or secondary (runs after, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorRole {
    Primary,
    Secondary,
}

impl ConnectorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorRole::Primary => "primary",
            ConnectorRole::Secondary => "secondary",
        }
    }

    pub fn parse(text: &str) -> Option<ConnectorRole> {
        match text {
            "primary" => Some(ConnectorRole::Primary),
            "secondary" => Some(ConnectorRole::Secondary),
            _ => None,
        }
    }
}

/// A tenant's connector (its secrets are read apart, by [`Store::connector_secrets`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub id: String,
    pub tenant_id: String,
    pub plugin: String,
    pub role: ConnectorRole,
    /// Order among the tenant's connectors (secondaries run in this order).
    pub position: i64,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub enabled: bool,
    /// The capabilities the tenant granted (names); the plugin gets those it also requests.
    pub granted: Vec<String>,
    /// Grows with every change to the connector or its secrets.
    pub revision: i64,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// A connector to create.
#[derive(Debug, Clone)]
pub struct NewConnector {
    pub plugin: String,
    pub role: ConnectorRole,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub enabled: bool,
    /// The capabilities granted (names).
    pub granted: Vec<String>,
}

/// Changes to a connector; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConnectorUpdate {
    pub role: Option<ConnectorRole>,
    pub position: Option<i64>,
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    pub enabled: Option<bool>,
    pub granted: Option<Vec<String>>,
}

const COLUMNS: &str = "id, tenant_id, plugin, role, position, config, enabled, granted, \
                       revision, created_at, updated_at";

fn connector(row: &AnyRow) -> Result<Connector, StoreError> {
    let role: String = row.try_get("role").db()?;
    let config: String = row.try_get("config").db()?;
    Ok(Connector {
        id: row.try_get("id").db()?,
        tenant_id: row.try_get("tenant_id").db()?,
        plugin: row.try_get("plugin").db()?,
        role: ConnectorRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("connector role {role:?}")))?,
        position: row.try_get("position").db()?,
        revision: row.try_get("revision").db()?,
        config: serde_json::from_str(&config)
            .map_err(|e| StoreError::Corrupt(format!("connector config: {e}")))?,
        enabled: row.try_get::<i64, _>("enabled").db()? != 0,
        granted: {
            let text: String = row.try_get("granted").db()?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("connector grant: {e}")))?
        },
        created_at: row.try_get("created_at").db()?,
        updated_at: row.try_get("updated_at").db()?,
    })
}

const PRIMARY_EXISTS: &str = "this tenant already has a primary connector";

impl Store {
    /// Creates a connector of `tenant_id` (last in order) with its secrets, in one transaction.
    pub async fn create_connector(
        &self,
        tenant_id: &str,
        new: NewConnector,
        secrets: &Secrets,
    ) -> Result<Connector, StoreError> {
        let config = serde_json::to_string(&new.config)
            .map_err(|e| StoreError::Invalid(format!("connector config: {e}")))?;
        let mut tx = self.write().await?;
        let tenant_exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        if tenant_exists.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        let at = now();
        let row = sqlx::query(&format!(
            "INSERT INTO connectors (id, tenant_id, plugin, role, position, config, enabled, \
             granted, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, \
             (SELECT COALESCE(MAX(position), 0) + 1 FROM connectors WHERE tenant_id = $2), \
             $5, $6, $8, $7, $7) RETURNING {COLUMNS}"
        ))
        .bind(new_id())
        .bind(tenant_id)
        .bind(&new.plugin)
        .bind(new.role.as_str())
        .bind(config)
        .bind(i64::from(new.enabled))
        .bind(at)
        .bind(serde_json::to_string(&new.granted).expect("a list of strings serializes"))
        .fetch_one(&mut *tx)
        .await
        .or_conflict(PRIMARY_EXISTS)?;
        let connector = connector(&row)?;
        for name in secrets.names() {
            let value = secrets.get(name).expect("a listed name has a value");
            self.put_secret(&mut tx, tenant_id, &connector.id, name, value)
                .await?;
        }
        tx.commit().await.db()?;
        Ok(connector)
    }

    /// Connector `id` of `tenant_id`.
    pub async fn connector(&self, tenant_id: &str, id: &str) -> Result<Connector, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM connectors WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound("connector"))?;
        connector(&row)
    }

    /// The connectors of `tenant_id`: the primary first, then by position.
    pub async fn connectors(&self, tenant_id: &str) -> Result<Vec<Connector>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM connectors WHERE tenant_id = $1 \
             ORDER BY CASE role WHEN 'primary' THEN 0 ELSE 1 END, position, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(connector)
        .collect()
    }

    /// Applies `update` to connector `id` of `tenant_id`.
    pub async fn update_connector(
        &self,
        tenant_id: &str,
        id: &str,
        update: ConnectorUpdate,
    ) -> Result<Connector, StoreError> {
        let config = update
            .config
            .map(|c| serde_json::to_string(&c))
            .transpose()
            .map_err(|e| StoreError::Invalid(format!("connector config: {e}")))?;
        let row = sqlx::query(&format!(
            "UPDATE connectors SET role = COALESCE($3, role), position = COALESCE($4, position), \
             config = COALESCE($5, config), enabled = COALESCE($6, enabled), updated_at = $7, \
             granted = COALESCE($8, granted), revision = revision + 1 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(update.role.map(ConnectorRole::as_str))
        .bind(update.position)
        .bind(config)
        .bind(update.enabled.map(i64::from))
        .bind(now())
        .bind(
            update
                .granted
                .map(|g| serde_json::to_string(&g).expect("a list of strings serializes")),
        )
        .fetch_optional(&mut *self.writer().await?)
        .await
        .or_conflict(PRIMARY_EXISTS)?
        .ok_or(StoreError::NotFound("connector"))?;
        connector(&row)
    }

    /// Deletes connector `id` of `tenant_id` and its secrets.
    pub async fn delete_connector(&self, tenant_id: &str, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM connectors WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .or_conflict("the connector is in use")?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("connector"));
        }
        Ok(())
    }

    /// Sets (or replaces) the secret `name` of connector `connector_id` of `tenant_id`.
    pub async fn set_connector_secret(
        &self,
        tenant_id: &str,
        connector_id: &str,
        name: &str,
        value: &SecretString,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        self.put_secret(&mut tx, tenant_id, connector_id, name, value)
            .await?;
        tx.commit().await.db()
    }

    async fn put_secret(
        &self,
        tx: &mut super::WriteTx,
        tenant_id: &str,
        connector_id: &str,
        name: &str,
        value: &SecretString,
    ) -> Result<(), StoreError> {
        if name.is_empty() {
            return Err(StoreError::Invalid("a secret needs a name".into()));
        }
        let aad = SecretAad {
            tenant: tenant_id,
            connector: connector_id,
            name,
        };
        let (nonce, ciphertext) = self
            .master_key
            .seal(&aad, value.expose_secret().as_bytes())?;
        sqlx::query(
            "INSERT INTO connector_secrets (tenant_id, connector_id, name, key_id, nonce, \
             ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (connector_id, name) DO UPDATE SET key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(connector_id)
        .bind(name)
        .bind(self.master_key.id())
        .bind(nonce)
        .bind(ciphertext)
        .bind(now())
        .execute(&mut **tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StoreError::NotFound("connector")
            }
            _ => StoreError::db(e),
        })?;
        sqlx::query(
            "UPDATE connectors SET revision = revision + 1 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(connector_id)
        .execute(&mut **tx)
        .await
        .db()?;
        Ok(())
    }

    /// The names of the secrets set on connector `connector_id` (never their values).
    pub async fn connector_secret_names(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT name FROM connector_secrets WHERE tenant_id = $1 AND connector_id = $2 \
             ORDER BY name",
        )
        .bind(tenant_id)
        .bind(connector_id)
        .fetch_all(&self.pool)
        .await
        .db()
    }

    /// Removes the secret `name` of a connector; removing one that is not set is not an error.
    pub async fn delete_connector_secret(
        &self,
        tenant_id: &str,
        connector_id: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "DELETE FROM connector_secrets WHERE tenant_id = $1 AND connector_id = $2 \
             AND name = $3",
        )
        .bind(tenant_id)
        .bind(connector_id)
        .bind(name)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query(
            "UPDATE connectors SET revision = revision + 1 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(connector_id)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    /// The opened secrets of connector `connector_id` of `tenant_id`. Fails if any value was
    /// sealed under another master key, altered, or moved from another row.
    pub async fn connector_secrets(
        &self,
        tenant_id: &str,
        connector_id: &str,
    ) -> Result<Secrets, StoreError> {
        self.connector(tenant_id, connector_id).await?;
        let rows = sqlx::query(
            "SELECT name, key_id, nonce, ciphertext FROM connector_secrets \
             WHERE tenant_id = $1 AND connector_id = $2 ORDER BY name",
        )
        .bind(tenant_id)
        .bind(connector_id)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut secrets = Secrets::new();
        for row in rows {
            let name: String = row.try_get("name").db()?;
            let key_id: String = row.try_get("key_id").db()?;
            if key_id != self.master_key.id() {
                return Err(StoreError::MasterKey(format!(
                    "the secret {name:?} of connector {connector_id} is sealed under key \
                     {key_id}, not the server's key {}",
                    self.master_key.id()
                )));
            }
            let aad = SecretAad {
                tenant: tenant_id,
                connector: connector_id,
                name: &name,
            };
            let plain = self.master_key.open(
                &aad,
                &row.try_get::<Vec<u8>, _>("nonce").db()?,
                &row.try_get::<Vec<u8>, _>("ciphertext").db()?,
            )?;
            let text = String::from_utf8(plain.to_vec())
                .map_err(|_| StoreError::Corrupt(format!("the secret {name:?} is not UTF-8")))?;
            secrets.insert(name, SecretString::from(text));
        }
        Ok(secrets)
    }

    /// Re-seals every connector secret and tenant signing key sealed under `old` under `new`,
    /// in one transaction, and returns how many it re-sealed. A secret under any other key, or one that does not open,
    /// aborts the whole rotation. The server must then be restarted with `new`.
    pub async fn rotate_master_key(
        &self,
        old: &MasterKey,
        new: &MasterKey,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT tenant_id, connector_id, name, key_id, nonce, ciphertext \
             FROM connector_secrets ORDER BY connector_id, name",
        )
        .fetch_all(&mut *tx)
        .await
        .db()?;
        let mut count = 0;
        for row in rows {
            let tenant: String = row.try_get("tenant_id").db()?;
            let connector: String = row.try_get("connector_id").db()?;
            let name: String = row.try_get("name").db()?;
            let key_id: String = row.try_get("key_id").db()?;
            if key_id == new.id() {
                continue;
            }
            if key_id != old.id() {
                return Err(StoreError::MasterKey(format!(
                    "the secret {name:?} of connector {connector} is sealed under key {key_id}, \
                     neither the old key {} nor the new key {}",
                    old.id(),
                    new.id()
                )));
            }
            let aad = SecretAad {
                tenant: &tenant,
                connector: &connector,
                name: &name,
            };
            let plain = old.open(
                &aad,
                &row.try_get::<Vec<u8>, _>("nonce").db()?,
                &row.try_get::<Vec<u8>, _>("ciphertext").db()?,
            )?;
            let (nonce, ciphertext) = new.seal(&aad, &plain)?;
            sqlx::query(
                "UPDATE connector_secrets SET key_id = $3, nonce = $4, ciphertext = $5, \
                 updated_at = $6 WHERE connector_id = $1 AND name = $2",
            )
            .bind(&connector)
            .bind(&name)
            .bind(new.id())
            .bind(nonce)
            .bind(ciphertext)
            .bind(now())
            .execute(&mut *tx)
            .await
            .db()?;
            count += 1;
        }
        count += Store::reseal_signing_keys(&mut tx, old, new).await?;
        tx.commit().await.db()?;
        Ok(count)
    }
}
