//! Admin console sessions: a signed-in browser holds a random 256-bit session value in an
//! HttpOnly cookie; the store keeps only its SHA-256 (the value is random, so a fast hash is
//! enough), the principal it signs in, a CSRF token and an expiry.
//!
//! It owns creating, finding and ending sessions. A session of a revoked principal is never
//! found. It must never store or print a session value.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use zeroize::Zeroizing;

use super::error::{DbResult as _, StoreError};
use super::principals::{COLUMNS, principal};
use super::{Principal, Store, UnixTime};

/// How long a console sign-in lasts, seconds (a working day).
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub principal: Principal,
    /// Sent back in every form and in the `x-csrf-token` header of the console's scripts.
    pub csrf: String,
    pub expires_at: UnixTime,
}

/// 256 random bits as base64url text (session values, CSRF tokens).
pub fn random_token_text() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn id_hash(value: &SecretString) -> String {
    hex::encode(Sha256::digest(
        [
            b"latchkey console session\0".as_slice(),
            value.expose_secret().as_bytes(),
        ]
        .concat(),
    ))
}

impl Store {
    /// Starts a session for `principal`: returns the value for the cookie (shown this once)
    /// and the session. Expired sessions of anyone are removed on the way.
    pub async fn create_console_session(
        &self,
        principal: &Principal,
        at: UnixTime,
    ) -> Result<(SecretString, ConsoleSession), StoreError> {
        let value = SecretString::from(random_token_text().as_str().to_string());
        let csrf = random_token_text().as_str().to_string();
        let expires_at = at + SESSION_SECONDS;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(at)
            .execute(&mut *self.writer().await?)
            .await
            .db()?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, principal_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash(&value))
        .bind(&principal.id)
        .bind(&csrf)
        .bind(at)
        .bind(expires_at)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        Ok((
            value,
            ConsoleSession {
                principal: principal.clone(),
                csrf,
                expires_at,
            },
        ))
    }

    /// The live session holding `value`: not expired, its principal not revoked.
    pub async fn console_session(
        &self,
        value: &SecretString,
        at: UnixTime,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("p.{c}")).collect();
        let row = sqlx::query(&format!(
            "SELECT {}, s.csrf, s.expires_at FROM console_sessions s \
             JOIN principals p ON p.id = s.principal_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND p.revoked_at IS NULL",
            columns.join(", ")
        ))
        .bind(id_hash(value))
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.map(|row| {
            Ok(ConsoleSession {
                principal: principal(&row)?,
                csrf: row.try_get("csrf").db()?,
                expires_at: row.try_get("expires_at").db()?,
            })
        })
        .transpose()
    }

    /// Ends the session holding `value` (signing out); ending an unknown one is not an error.
    pub async fn end_console_session(&self, value: &SecretString) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash(value))
            .execute(&mut *self.writer().await?)
            .await
            .db()?;
        Ok(())
    }
}
