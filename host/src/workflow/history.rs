//! The host's own password history: "must not match a previous password" for the last N
//! passwords set through Latchkey per employee (N per tenant, default 24), which holds even
//! where a directory does not check history on an admin reset.
//!
//! It owns hashing a password for the history and checking a candidate against it. It must
//! never store, log or return a password or anything but an argon2id hash of one with a
//! random salt, and never run argon2 on the async executor (it blocks for milliseconds).
//!
//! Parameters: argon2id, 8 MiB, 2 passes, 1 lane (`m=8192,t=2,p=1`), against the defaults
//! login tokens use (19 MiB, 2, 1). A check verifies the candidate against every remembered
//! hash — 24 by default, up to 100 — so one hash must cost a fraction of a token's to keep an
//! admin's check well under a second on a small server; still memory-hard, with a salt per
//! entry, so a stolen database gives an offline guesser a memory-bound argon2id per guess per
//! entry. Measured on the 2-core development machine: 13 ms a hash against 30 ms for a
//! token's, so 24 entries cost about 0.3 s of one core. The
//! parameters travel in each PHC string, so changing them later keeps old entries verifiable.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::store::{Store, StoreError};

/// Memory in KiB, passes and lanes of the history's argon2id.
pub const MEMORY_KIB: u32 = 8 * 1024;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed, or a stored hash is not a PHC string (never says what was hashed).
    #[error("password history hash: {0}")]
    Hash(&'static str),
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id PHC hash of `password` with a fresh salt.
fn hash(password: &[u8]) -> Result<String, HistoryError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|_| HistoryError::Hash("hashing failed"))
}

/// A copy of the password the blocking pool can own; zeroized when dropped.
fn owned(password: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(password.expose_secret().to_owned())
}

/// Whether `candidate` matches one of the passwords remembered for `employee` of `tenant`.
/// Verifies against every remembered hash, so the time does not say which one matched.
pub async fn in_history(
    store: &Store,
    tenant: &str,
    employee: &str,
    candidate: &SecretString,
) -> Result<bool, HistoryError> {
    let hashes = store.password_hashes(tenant, employee).await?;
    if hashes.is_empty() {
        return Ok(false);
    }
    let candidate = owned(candidate);
    tokio::task::spawn_blocking(move || {
        let mut found = false;
        for stored in &hashes {
            let parsed =
                PasswordHash::new(stored).map_err(|_| HistoryError::Hash("a stored hash"))?;
            // The hash's own parameters are used, whatever `hasher()` says today.
            found |= hasher()
                .verify_password(candidate.as_bytes(), &parsed)
                .is_ok();
        }
        Ok(found)
    })
    .await
    .map_err(|_| HistoryError::Hash("the hashing task failed"))?
}

/// Remembers `password` for `employee` of `tenant` (dropping the oldest beyond the tenant's
/// length), once it has been set through Latchkey.
pub async fn remember(
    store: &Store,
    tenant: &str,
    employee: &str,
    password: &SecretString,
) -> Result<(), HistoryError> {
    let hashed = start_hash(password).await?;
    store
        .append_password_hash(tenant, employee, &hashed)
        .await?;
    Ok(())
}

/// Starts hashing `password` for the history on the blocking pool at once, so the work
/// overlaps whatever the caller awaits meanwhile (a directory's write); the returned future
/// yields the PHC string to pass to `Store::append_password_hash`.
pub fn start_hash(
    password: &SecretString,
) -> impl std::future::Future<Output = Result<String, HistoryError>> + use<> {
    let password = owned(password);
    let task = tokio::task::spawn_blocking(move || hash(password.as_bytes()));
    async move {
        task.await
            .map_err(|_| HistoryError::Hash("the hashing task failed"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_these_parameters_and_verify() {
        let phc = hash(b"Tr0ub4dor&3x").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("Tr0ub4dor"));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(hasher().verify_password(b"Tr0ub4dor&3x", &parsed).is_ok());
        assert!(hasher().verify_password(b"Tr0ub4dor&3y", &parsed).is_err());
        assert_ne!(
            phc,
            hash(b"Tr0ub4dor&3x").unwrap(),
            "a fresh salt each time"
        );
    }
}
