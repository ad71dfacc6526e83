//! Each tenant's envelope-signing key: the Ed25519 key whose public half every key of the
//! tenant pins as its trust anchor (keyproto), so a relay cannot forge an envelope. Created on
//! first use, sealed under the master key like connector secrets (the AAD names the tenant and
//! no connector), shared by every replica through the database.
//!
//! It owns the rows of `tenant_signing_keys`, and keeps opened keys in memory (they never
//! change). It must never print the private key or store it unsealed; callers get it as a type
//! that zeroizes on drop.

use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use sqlx::Row as _;
use zeroize::Zeroizing;

use super::crypto::SecretAad;
use super::error::{DbResult as _, StoreError};
use super::{Store, now};

/// The AAD's connector and name for a tenant signing key: no connector id is empty.
fn aad(tenant: &str) -> SecretAad<'_> {
    SecretAad {
        tenant,
        connector: "",
        name: "tenant envelope signing key",
    }
}

impl Store {
    /// The signing key of `tenant_id`, created (and sealed) the first time it is asked for.
    pub async fn tenant_signing_key(&self, tenant_id: &str) -> Result<SigningKey, StoreError> {
        if let Some(key) = self
            .signing_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant_id)
        {
            return Ok(key.clone());
        }
        if let Some(key) = self.read_signing_key(tenant_id).await? {
            self.remember_signing_key(tenant_id, &key);
            return Ok(key);
        }
        self.tenant(tenant_id).await?;
        let key = SigningKey::generate(&mut OsRng);
        let secret = Zeroizing::new(key.to_bytes());
        let (nonce, ciphertext) = self.master_key.seal(&aad(tenant_id), secret.as_ref())?;
        // Two replicas creating at once: the first insert wins, both read it back.
        sqlx::query(
            "INSERT INTO tenant_signing_keys (tenant_id, public_key, key_id, nonce, ciphertext, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(key.verifying_key().to_bytes().to_vec())
        .bind(self.master_key.id())
        .bind(nonce)
        .bind(ciphertext)
        .bind(now())
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        let key = self
            .read_signing_key(tenant_id)
            .await?
            .ok_or(StoreError::NotFound("tenant signing key"))?;
        self.remember_signing_key(tenant_id, &key);
        Ok(key)
    }

    /// Keeps an opened signing key for the process's lifetime: a tenant's key never changes
    /// (a master-key rotation re-seals the same key).
    fn remember_signing_key(&self, tenant_id: &str, key: &SigningKey) {
        self.signing_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id.to_string(), key.clone());
    }

    async fn read_signing_key(&self, tenant_id: &str) -> Result<Option<SigningKey>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT key_id, nonce, ciphertext FROM tenant_signing_keys WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        else {
            return Ok(None);
        };
        let key_id: String = row.try_get("key_id").db()?;
        if key_id != self.master_key.id() {
            return Err(StoreError::MasterKey(format!(
                "the signing key of tenant {tenant_id} is sealed under key {key_id}, not the \
                 server's key {}",
                self.master_key.id()
            )));
        }
        let plain = self.master_key.open(
            &aad(tenant_id),
            &row.try_get::<Vec<u8>, _>("nonce").db()?,
            &row.try_get::<Vec<u8>, _>("ciphertext").db()?,
        )?;
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            plain
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("a tenant signing key is not 32 bytes".into()))?,
        );
        Ok(Some(SigningKey::from_bytes(&bytes)))
    }

    /// Re-seals the tenant signing keys sealed under `old` under `new` (part of a rotation).
    pub(crate) async fn reseal_signing_keys(
        tx: &mut super::WriteTx,
        old: &super::MasterKey,
        new: &super::MasterKey,
    ) -> Result<u64, StoreError> {
        let rows =
            sqlx::query("SELECT tenant_id, key_id, nonce, ciphertext FROM tenant_signing_keys")
                .fetch_all(&mut **tx)
                .await
                .db()?;
        let mut count = 0;
        for row in rows {
            let tenant: String = row.try_get("tenant_id").db()?;
            let key_id: String = row.try_get("key_id").db()?;
            if key_id == new.id() {
                continue;
            }
            if key_id != old.id() {
                return Err(StoreError::MasterKey(format!(
                    "the signing key of tenant {tenant} is sealed under key {key_id}, neither \
                     the old key {} nor the new key {}",
                    old.id(),
                    new.id()
                )));
            }
            let plain = old.open(
                &aad(&tenant),
                &row.try_get::<Vec<u8>, _>("nonce").db()?,
                &row.try_get::<Vec<u8>, _>("ciphertext").db()?,
            )?;
            let (nonce, ciphertext) = new.seal(&aad(&tenant), &plain)?;
            sqlx::query(
                "UPDATE tenant_signing_keys SET key_id = $2, nonce = $3, ciphertext = $4 \
                 WHERE tenant_id = $1",
            )
            .bind(&tenant)
            .bind(new.id())
            .bind(nonce)
            .bind(ciphertext)
            .execute(&mut **tx)
            .await
            .db()?;
            count += 1;
        }
        Ok(count)
    }
}
