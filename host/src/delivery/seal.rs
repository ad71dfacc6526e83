//! Sealing a password to a key: the envelope header (tenant, key, delivery id, sequence, slot,
//! issued-at, not-after), keyproto's HPKE seal signed with the tenant's key, and the receipt
//! the server keeps to verify the ack.
//!
//! It must never return or keep the plaintext; the caller's `SecretString` zeroizes on drop.

use ed25519_dalek::SigningKey;
use keyproto::envelope::{self, Credential, DeliveryId, EnvelopeHeader};
use keyproto::identity::{KeyIdentity, TenantId};
use rand_core::OsRng;
use secrecy::SecretString;

use crate::store::{Key, UnixTime};

/// How long a sealed envelope stays deliverable by default: a key that does not connect within
/// this time gets nothing (the admin resets again).
pub const DEFAULT_VALIDITY_SECONDS: i64 = 30 * 24 * 3600;

/// A sealed envelope ready for `Store::begin_change`.
pub struct Sealed {
    pub delivery_id: String,
    pub sequence: i64,
    pub envelope: Vec<u8>,
    pub receipt: Vec<u8>,
    pub not_after: UnixTime,
}

/// Why a password could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key {key} has unusable public keys: {reason}")]
    BadKey { key: String, reason: String },
    #[error("the password cannot be sealed: {0}")]
    Envelope(String),
    #[error("an id is not a UUID: {0}")]
    Id(String),
}

/// 16 bytes of a UUID string (tenant ids and delivery ids are UUIDs).
pub fn uuid_bytes(id: &str) -> Result<[u8; 16], SealError> {
    uuid::Uuid::parse_str(id)
        .map(|u| *u.as_bytes())
        .map_err(|_| SealError::Id(id.to_string()))
}

/// Seals `password` for `account` (the name the key types it for) into `slot` of `key`, with
/// `sequence` (above every earlier one for the slot), signed with the tenant's `server_key`.
#[allow(clippy::too_many_arguments)]
pub fn seal_for_key(
    server_key: &SigningKey,
    key: &Key,
    slot: &str,
    account: &str,
    password: &SecretString,
    sequence: i64,
    now: UnixTime,
    validity_seconds: i64,
) -> Result<Sealed, SealError> {
    let identity = KeyIdentity::from_public_keys(&key.kem_public_key, &key.sig_public_key)
        .map_err(|e| SealError::BadKey {
            key: key.id.clone(),
            reason: e.to_string(),
        })?;
    let delivery_id = uuid::Uuid::new_v4();
    let not_after = now + validity_seconds;
    let header = EnvelopeHeader::new(
        TenantId(uuid_bytes(&key.tenant_id)?),
        identity.key_id(),
        DeliveryId(*delivery_id.as_bytes()),
        u64::try_from(sequence).map_err(|_| SealError::Envelope("negative sequence".into()))?,
        slot,
        u64::try_from(now).unwrap_or(0),
        u64::try_from(not_after).unwrap_or(0),
    )
    .map_err(|e| SealError::Envelope(e.to_string()))?;
    let credential = Credential::new(account, password.clone(), u64::try_from(now).unwrap_or(0))
        .map_err(|e| SealError::Envelope(e.to_string()))?;
    let sealed = envelope::seal(server_key, &identity, &header, &credential, &mut OsRng)
        .map_err(|e| SealError::Envelope(e.to_string()))?;
    Ok(Sealed {
        delivery_id: delivery_id.to_string(),
        sequence,
        envelope: sealed.envelope,
        receipt: sealed.receipt.to_bytes().to_vec(),
        not_after,
    })
}
