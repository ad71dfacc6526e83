//! Bearer tokens for operators, admins and workstations: `lk_<id>_<secret>`, shown once; the
//! store keeps the id and an argon2id PHC hash of the secret.
//!
//! It owns issuing, parsing and verifying. Verification looks the id up, then runs argon2's
//! constant-time verify; an unknown id still costs one verify against a dummy hash, so timing
//! does not tell whether an id exists. A successful verify is remembered for a few minutes
//! (`VerifiedTokens`: a SHA-256 of the id, the secret and the stored hash, never the secret), so
//! a client's every request does not cost argon2's tens of milliseconds; the row is still read
//! on every request, so a revocation takes effect at once on every replica. It must never log,
//! print or store a token's secret.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore as _};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Store;
use super::error::{DbResult as _, StoreError};

/// Something just created together with its token, which is shown this once and never again.
pub struct Issued<T> {
    pub value: T,
    pub token: SecretString,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Issued<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("value", &self.value)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// A new token: (token id, the full token to show once, the PHC hash to store).
pub(crate) fn issue() -> Result<(String, SecretString, String), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut secret = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(secret.as_mut());
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_ref()));
    let hash = hash(secret.as_bytes())?;
    let token = SecretString::from(format!("lk_{id}_{}", secret.as_str()));
    Ok((id, token, hash))
}

fn hash(secret: &[u8]) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|_| StoreError::Invalid("hashing a token failed".into()))
}

/// The shortest token an operator may choose (LATCHKEY_BOOTSTRAP_TOKEN).
pub const MIN_CHOSEN_TOKEN_LEN: usize = 24;
const MAX_CHOSEN_TOKEN_LEN: usize = 512;

/// The id and the secret of a token shaped `lk_<id>_<secret>`; or, for a token an operator
/// chose (any other text of 24 to 512 bytes), an id derived from it and the whole text as the
/// secret.
pub(crate) fn parse(token: &SecretString) -> Option<(String, Zeroizing<String>)> {
    let text = token.expose_secret();
    if let Some(rest) = text.strip_prefix("lk_") {
        let (id, secret) = rest.split_once('_')?;
        let valid_id = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        return (valid_id && !secret.is_empty())
            .then(|| (id.to_string(), Zeroizing::new(secret.to_string())));
    }
    (MIN_CHOSEN_TOKEN_LEN..=MAX_CHOSEN_TOKEN_LEN)
        .contains(&text.len())
        .then(|| (chosen_id(text), Zeroizing::new(text.to_string())))
}

/// The id of a chosen token: a domain-separated SHA-256 of it (32 hex digits, like issued
/// ids, and never equal to one by chance).
fn chosen_id(text: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let digest =
        Sha256::digest([b"latchkey chosen token id\0".as_slice(), text.as_bytes()].concat());
    hex::encode(&digest[..16])
}

/// (token id, PHC hash) for a token an operator chose.
pub(crate) fn chosen(token: &SecretString) -> Result<(String, String), StoreError> {
    let text = token.expose_secret();
    if text.starts_with("lk_")
        || !(MIN_CHOSEN_TOKEN_LEN..=MAX_CHOSEN_TOKEN_LEN).contains(&text.len())
    {
        return Err(StoreError::Invalid(format!(
            "a chosen token must be {MIN_CHOSEN_TOKEN_LEN} to {MAX_CHOSEN_TOKEN_LEN} characters \
             and not start with lk_"
        )));
    }
    Ok((chosen_id(text), hash(text.as_bytes())?))
}

/// A hash no secret matches, verified against when the id is unknown.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    hash(&secret).expect("hashing a random secret")
});

/// Computes the dummy hash now, so the first unknown id costs no more than any later one.
pub(crate) async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| LazyLock::force(&DUMMY_HASH).len()).await;
}

/// Whether `secret` matches `stored` (or, with no stored hash, the same work for nothing).
/// Runs on the blocking pool: argon2 takes tens of milliseconds of CPU.
pub(crate) async fn verify(stored: Option<String>, secret: Zeroizing<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok();
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// Tokens verified recently: digests of (token id, secret, stored hash). A changed hash (a new
/// token for the row) or an unknown id never matches. Bounded: cleared when full.
pub(crate) struct VerifiedTokens {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
}

/// How long a verified token is remembered.
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// The most remembered tokens.
const VERIFIED_CAPACITY: usize = 100_000;

impl VerifiedTokens {
    pub(crate) fn new() -> VerifiedTokens {
        VerifiedTokens {
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn digest(token_id: &str, secret: &str, stored: &str) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        for part in [token_id, secret, stored] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    fn contains(&self, digest: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(digest)
            .is_some_and(|at| at.elapsed() < VERIFIED_TTL)
    }

    fn insert(&self, digest: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= VERIFIED_CAPACITY {
            entries.retain(|_, at| at.elapsed() < VERIFIED_TTL);
            if entries.len() >= VERIFIED_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, std::time::Instant::now());
    }
}

impl Store {
    /// The row `select` finds for `token` when the token's secret matches the row's hash;
    /// `None` for a malformed, unknown or wrong token. `select` takes the token id as `$1` and
    /// returns a `token_hash` column; an unknown id costs the same verify as a known one.
    pub(super) async fn row_for_token(
        &self,
        select: &str,
        token: &SecretString,
    ) -> Result<Option<AnyRow>, StoreError> {
        let Some((token_id, secret)) = parse(token) else {
            return Ok(None);
        };
        let row = sqlx::query(select)
            .bind(&token_id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        let stored = match &row {
            Some(row) => Some(row.try_get::<String, _>("token_hash").db()?),
            None => None,
        };
        let digest = stored
            .as_deref()
            .map(|hash| VerifiedTokens::digest(&token_id, &secret, hash));
        if let Some(digest) = &digest
            && self.verified_tokens.contains(digest)
        {
            return Ok(row);
        }
        // One verify per core at a time (`slots`); a request that waited may find the token
        // verified meanwhile by a concurrent request carrying it.
        let _slot = crate::slots::argon2().await;
        if let Some(digest) = &digest
            && self.verified_tokens.contains(digest)
        {
            return Ok(row);
        }
        Ok(if verify(stored, secret).await {
            if let Some(digest) = digest {
                self.verified_tokens.insert(digest);
            }
            row
        } else {
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issued_tokens_parse_and_verify() {
        let (id, token, hash) = issue().unwrap();
        assert!(token.expose_secret().starts_with(&format!("lk_{id}_")));
        let (parsed_id, secret) = parse(&token).unwrap();
        assert_eq!(parsed_id, id);
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify(Some(hash.clone()), secret).await);
        assert!(!verify(Some(hash), Zeroizing::new("wrong".into())).await);
        let (_, secret) = parse(&token).unwrap();
        assert!(!verify(None, secret).await, "an unknown id never verifies");
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for text in [
            "",
            "lk_",
            "lk_abc_def",
            "short-chosen-token",
            "lk_0123456789abcdef0123456789abcdef_",
            "lk_not-hex-not-hex-not-hex-not-hex-_secret",
        ] {
            assert!(parse(&SecretString::from(text)).is_none(), "{text}");
        }
    }

    #[tokio::test]
    async fn chosen_tokens_parse_to_a_derived_id_and_verify() {
        let token = SecretString::from("operator-chosen-bootstrap-token-1".to_string());
        let (id, hash) = chosen(&token).unwrap();
        let (parsed_id, secret) = parse(&token).unwrap();
        assert_eq!(parsed_id, id);
        assert_eq!(id.len(), 32);
        assert!(verify(Some(hash), secret).await);
        assert!(chosen(&SecretString::from("too-short".to_string())).is_err());
        assert!(chosen(&SecretString::from(format!("lk_{}", "x".repeat(30)))).is_err());
    }
}
