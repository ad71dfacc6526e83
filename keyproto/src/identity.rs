//! identity: who a key is. It owns the key's public identity (an X25519 KEM public key and an
//! Ed25519 verifying key), the key id derived from them, the key's secret half, and the
//! enrolment record the server keeps.
//!
//! It must never accept a public key that would make sealing meaningless (a low-order X25519
//! point, a weak Ed25519 key), and never print or serialise a secret other than through
//! [`KeySecrets::to_bytes`] for the software key's own persistence.

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::suite::{KEM_KEY_LEN, KemSecretKey};
use crate::wire::id16;

/// Length of an Ed25519 verifying key.
pub const SIG_KEY_LEN: usize = 32;
/// Length of [`KeySecrets::to_bytes`]: KEM secret then Ed25519 seed.
pub const KEY_SECRETS_LEN: usize = 64;
/// Longest serial number an enrolment record accepts.
pub const MAX_SERIAL_LEN: usize = 64;

/// Domain label of the key id hash, so the digest can never collide with another SHA-256 use.
const KEY_ID_LABEL: &[u8] = b"LATCHKEY-KEY-ID-V1";

id16!(
    /// A key's identifier: the first 16 bytes of
    /// `SHA-256("LATCHKEY-KEY-ID-V1" ‖ kem_public_key ‖ sig_public_key)`.
    KeyId
);

id16!(
    /// The tenant a key is enrolled in. Opaque 16 bytes (the server uses a UUID).
    TenantId
);

/// Why a public key or enrolment record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A key was not the expected number of bytes.
    #[error("{what} must be {expected} bytes, got {found}")]
    Length {
        /// Which key.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// The X25519 key is a low-order point: every shared secret with it is all zeros.
    #[error("KEM public key is a low-order point")]
    LowOrderKemKey,
    /// The Ed25519 key is not a valid point encoding.
    #[error("signature public key is not a valid Ed25519 point")]
    InvalidSigKey,
    /// The Ed25519 key is of small order: signatures under it prove nothing.
    #[error("signature public key is a weak (small-order) Ed25519 key")]
    WeakSigKey,
    /// The serial is empty, too long or not printable ASCII.
    #[error("serial must be 1..={MAX_SERIAL_LEN} printable ASCII characters")]
    InvalidSerial,
}

/// The public half of a key: what the server seals to and verifies acks against.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    kem_public: [u8; KEM_KEY_LEN],
    sig_public: VerifyingKey,
    key_id: KeyId,
}

impl core::fmt::Debug for KeyIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyIdentity")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KeyIdentity {
    /// Validates both public keys (as received at enrolment) and derives the key id.
    pub fn from_public_keys(kem: &[u8], sig: &[u8]) -> Result<Self, IdentityError> {
        let kem: [u8; KEM_KEY_LEN] = kem.try_into().map_err(|_| IdentityError::Length {
            what: "KEM public key",
            expected: KEM_KEY_LEN,
            found: kem.len(),
        })?;
        let sig: [u8; SIG_KEY_LEN] = sig.try_into().map_err(|_| IdentityError::Length {
            what: "signature public key",
            expected: SIG_KEY_LEN,
            found: sig.len(),
        })?;
        // Clamping multiplies by the cofactor, so X25519 of any clamped scalar with a low-order
        // point is zero: one multiplication detects every low-order encoding, canonical or not.
        let probe = x25519_dalek::x25519([0x55; 32], kem);
        if probe == [0u8; 32] {
            return Err(IdentityError::LowOrderKemKey);
        }
        let sig = VerifyingKey::from_bytes(&sig).map_err(|_| IdentityError::InvalidSigKey)?;
        if sig.is_weak() {
            return Err(IdentityError::WeakSigKey);
        }
        Ok(Self::new_unchecked(kem, sig))
    }

    fn new_unchecked(kem_public: [u8; KEM_KEY_LEN], sig_public: VerifyingKey) -> Self {
        let mut h = Sha256::new();
        h.update(KEY_ID_LABEL);
        h.update(kem_public);
        h.update(sig_public.as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self {
            kem_public,
            sig_public,
            key_id: KeyId(id),
        }
    }

    /// The X25519 public key envelopes are sealed to.
    pub fn kem_public_key(&self) -> &[u8; KEM_KEY_LEN] {
        &self.kem_public
    }

    /// The Ed25519 key acks are verified against.
    pub fn sig_public_key(&self) -> &VerifyingKey {
        &self.sig_public
    }

    /// The key id carried in every envelope and ack.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
}

/// The secret half of a key. Lives only on the key (or in the software key). No `Debug`,
/// `Display` or serde: the only way out is [`KeySecrets::to_bytes`].
pub struct KeySecrets {
    kem: KemSecretKey,
    sig: SigningKey,
    // Derived once: computing it costs a scalar multiplication, and every open needs the key id.
    identity: KeyIdentity,
}

impl KeySecrets {
    /// A new random key.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self::new(KemSecretKey::generate(rng), SigningKey::generate(rng))
    }

    fn new(kem: KemSecretKey, sig: SigningKey) -> Self {
        let identity = KeyIdentity::new_unchecked(kem.public_key(), sig.verifying_key());
        Self { kem, sig, identity }
    }

    /// Rebuilds the secrets from [`KeySecrets::to_bytes`]. Refuses a seed whose public keys would
    /// themselves be refused at enrolment.
    pub fn from_bytes(bytes: &[u8; KEY_SECRETS_LEN]) -> Result<Self, IdentityError> {
        let mut kem = Zeroizing::new([0u8; 32]);
        kem.copy_from_slice(&bytes[..32]);
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[32..]);
        let keys = Self::new(
            KemSecretKey::from_bytes(&kem),
            SigningKey::from_bytes(&seed),
        );
        KeyIdentity::from_public_keys(
            keys.identity.kem_public_key(),
            keys.identity.sig_public_key().as_bytes(),
        )?;
        Ok(keys)
    }

    /// KEM secret (32 bytes) followed by the Ed25519 seed (32 bytes).
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_SECRETS_LEN]> {
        let mut out = Zeroizing::new([0u8; KEY_SECRETS_LEN]);
        out[..32].copy_from_slice(self.kem.to_bytes().as_slice());
        out[32..].copy_from_slice(self.sig.as_bytes());
        out
    }

    /// The public identity of these secrets.
    pub fn identity(&self) -> &KeyIdentity {
        &self.identity
    }

    pub(crate) fn kem(&self) -> &KemSecretKey {
        &self.kem
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.sig
    }
}

/// What the server keeps when a key is enrolled: its serial and validated public identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRecord {
    serial: String,
    identity: KeyIdentity,
}

impl EnrollmentRecord {
    /// Validates a key presented for enrolment (`POST …/keys`): serial plus both public keys.
    pub fn new(
        serial: &str,
        kem_public_key: &[u8],
        sig_public_key: &[u8],
    ) -> Result<Self, IdentityError> {
        let printable = serial.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if serial.is_empty() || serial.len() > MAX_SERIAL_LEN || !printable {
            return Err(IdentityError::InvalidSerial);
        }
        Ok(Self {
            serial: serial.to_owned(),
            identity: KeyIdentity::from_public_keys(kem_public_key, sig_public_key)?,
        })
    }

    /// The serial printed on the key.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The validated public keys.
    pub fn identity(&self) -> &KeyIdentity {
        &self.identity
    }

    /// Shorthand for `identity().key_id()`.
    pub fn key_id(&self) -> KeyId {
        self.identity.key_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn key_id_is_stable_and_binds_both_keys() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = KeySecrets::generate(&mut rng).identity().clone();
        let b = KeySecrets::generate(&mut rng).identity().clone();
        let again =
            KeyIdentity::from_public_keys(a.kem_public_key(), a.sig_public_key().as_bytes())
                .unwrap();
        assert_eq!(a.key_id(), again.key_id());
        let mixed =
            KeyIdentity::from_public_keys(a.kem_public_key(), b.sig_public_key().as_bytes())
                .unwrap();
        assert_ne!(mixed.key_id(), a.key_id());
        assert_ne!(mixed.key_id(), b.key_id());
    }

    #[test]
    fn low_order_kem_keys_are_refused() {
        let mut rng = StdRng::seed_from_u64(8);
        let sig = *KeySecrets::generate(&mut rng).identity().sig_public_key();
        let mut one = [0u8; 32];
        one[0] = 1;
        // 2^255 - 19 - 1 (p - 1) is the order-2 point; p itself is a non-canonical zero.
        let mut p_minus_1 = [0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        for kem in [[0u8; 32], one, p_minus_1] {
            assert_eq!(
                KeyIdentity::from_public_keys(&kem, sig.as_bytes()),
                Err(IdentityError::LowOrderKemKey)
            );
        }
    }

    #[test]
    fn weak_and_malformed_sig_keys_are_refused() {
        let mut rng = StdRng::seed_from_u64(9);
        let kem = *KeySecrets::generate(&mut rng).identity().kem_public_key();
        // The identity point (y = 1) is small-order.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert_eq!(
            KeyIdentity::from_public_keys(&kem, &identity_point),
            Err(IdentityError::WeakSigKey)
        );
        assert!(matches!(
            KeyIdentity::from_public_keys(&kem, &[1u8; 31]),
            Err(IdentityError::Length { found: 31, .. })
        ));
    }

    #[test]
    fn secrets_round_trip_through_bytes() {
        let mut rng = StdRng::seed_from_u64(10);
        let k = KeySecrets::generate(&mut rng);
        let back = KeySecrets::from_bytes(&k.to_bytes()).unwrap();
        assert_eq!(back.identity(), k.identity());
    }

    #[test]
    fn enrollment_record_validates_serial_and_keys() {
        let mut rng = StdRng::seed_from_u64(11);
        let id = KeySecrets::generate(&mut rng).identity().clone();
        let rec = EnrollmentRecord::new(
            "LK-0001",
            id.kem_public_key(),
            id.sig_public_key().as_bytes(),
        )
        .unwrap();
        assert_eq!(rec.key_id(), id.key_id());
        assert_eq!(rec.serial(), "LK-0001");
        for bad in ["", "has space", &"x".repeat(65)] {
            assert_eq!(
                EnrollmentRecord::new(bad, id.kem_public_key(), id.sig_public_key().as_bytes()),
                Err(IdentityError::InvalidSerial)
            );
        }
    }
}
