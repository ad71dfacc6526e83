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
//!
//! A password Latchkey generated with at least [`DRAWN_BITS_FOR_LIGHT_HASH`] bits of entropy is
//! hashed with light parameters instead (argon2id, 64 KiB, 1 pass: tens of microseconds).
//! Memory-hard parameters exist to slow an offline guesser down on the passwords people choose;
//! against a uniformly drawn 96-bit secret a guesser needs about 2^95 guesses whatever each one
//! costs, so the heavy hash bought nothing there and was 40 % of a generated change's CPU (the
//! bench's changes/s). Typed passwords, and drawn ones below the threshold (an admin asking for
//! 12 characters), keep the heavy parameters. Verification reads the parameters from each
//! entry, so a candidate checked against light entries costs next to nothing for them.

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

/// Memory in KiB and passes of the light argon2id for high-entropy generated passwords.
pub const LIGHT_MEMORY_KIB: u32 = 64;
pub const LIGHT_PASSES: u32 = 1;

/// The least entropy, in bits, of a generated password hashed with the light parameters.
pub const DRAWN_BITS_FOR_LIGHT_HASH: f64 = 96.0;

/// Where a password came from, which decides how hard its history hash must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    /// Typed by a person (an admin, or the user at a workstation): guessable, heavy hash.
    Typed,
    /// Drawn by Latchkey's generator, with at least this many bits of entropy.
    Drawn { bits: f64 },
}

impl Origin {
    fn params(self) -> Params {
        let (memory, passes) = match self {
            Origin::Drawn { bits } if bits >= DRAWN_BITS_FOR_LIGHT_HASH => {
                (LIGHT_MEMORY_KIB, LIGHT_PASSES)
            }
            _ => (MEMORY_KIB, PASSES),
        };
        Params::new(memory, passes, LANES, None).expect("constant argon2 params")
    }
}

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed, or a stored hash is not a PHC string (never says what was hashed).
    #[error("password history hash: {0}")]
    Hash(&'static str),
}

fn hasher(origin: Origin) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, origin.params())
}

/// An argon2id PHC hash of `password` with a fresh salt, as hard as its origin needs.
fn hash(password: &[u8], origin: Origin) -> Result<String, HistoryError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(origin)
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
    // Whatever each entry's parameters, a check may hold 8 MiB at a time: it takes a slot.
    let _slot = crate::slots::argon2().await;
    tokio::task::spawn_blocking(move || {
        let mut found = false;
        for stored in &hashes {
            let parsed =
                PasswordHash::new(stored).map_err(|_| HistoryError::Hash("a stored hash"))?;
            // The hash's own parameters are used, whatever `hasher()` says today.
            found |= hasher(Origin::Typed)
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
    origin: Origin,
) -> Result<(), HistoryError> {
    let hashed = start_hash(password, origin).await?;
    store
        .append_password_hash(tenant, employee, &hashed)
        .await?;
    Ok(())
}

/// Hashes `password` for the history on the blocking pool (a heavy hash first waits for a
/// slot); the future yields the PHC string to store with the change.
pub fn start_hash(
    password: &SecretString,
    origin: Origin,
) -> impl std::future::Future<Output = Result<String, HistoryError>> + use<> {
    let password = owned(password);
    async move {
        let _slot = match origin.params().m_cost() {
            LIGHT_MEMORY_KIB => None,
            _ => Some(crate::slots::argon2().await),
        };
        tokio::task::spawn_blocking(move || hash(password.as_bytes(), origin))
            .await
            .map_err(|_| HistoryError::Hash("the hashing task failed"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_these_parameters_and_verify() {
        let phc = hash(b"Tr0ub4dor&3x", Origin::Typed).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("Tr0ub4dor"));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            hasher(Origin::Typed)
                .verify_password(b"Tr0ub4dor&3x", &parsed)
                .is_ok()
        );
        assert!(
            hasher(Origin::Typed)
                .verify_password(b"Tr0ub4dor&3y", &parsed)
                .is_err()
        );
        assert_ne!(
            phc,
            hash(b"Tr0ub4dor&3x", Origin::Typed).unwrap(),
            "a fresh salt each time"
        );
    }

    #[test]
    fn only_high_entropy_drawn_passwords_get_the_light_hash_and_both_verify() {
        let strong = Origin::Drawn { bits: 120.0 };
        let weak = Origin::Drawn { bits: 60.0 };
        let light = hash(b"kQ7%vR2.xN9=pL4?mT8_", strong).unwrap();
        assert!(light.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{light}");
        let heavy = hash(b"kQ7%vR2.", weak).unwrap();
        assert!(
            heavy.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"),
            "{heavy}"
        );
        // Whichever hasher verifies, the entry's own parameters decide.
        let parsed = PasswordHash::new(&light).unwrap();
        assert!(
            hasher(Origin::Typed)
                .verify_password(b"kQ7%vR2.xN9=pL4?mT8_", &parsed)
                .is_ok()
        );
        assert!(
            hasher(Origin::Typed)
                .verify_password(b"kQ7%vR2.xN9=pL4?mT8-", &parsed)
                .is_err()
        );
    }
}
