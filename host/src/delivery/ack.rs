//! Verifying a key's ack against the receipt kept at seal time and the key's enrolled public
//! keys (keyproto): signed by the key, for this delivery, sequence and envelope, with the
//! proof only the opened envelope yields. A relaying workstation cannot forge one.

use keyproto::ack::{self, AckStatus};
use keyproto::envelope::SealReceipt;
use keyproto::identity::KeyIdentity;

use crate::store::{Delivery, Key};

/// Why an ack was refused (the delivery stays where it was).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AckError {
    #[error("the ack is not valid for this delivery: {0}")]
    Refused(String),
    #[error("delivery {0} has no receipt to verify an ack against")]
    NoReceipt(String),
    #[error("key {key} has unusable public keys: {reason}")]
    BadKey { key: String, reason: String },
}

/// Checks `ack_bytes` for `delivery` of `key`: Ok when the key stored this exact envelope.
pub fn verify_ack(delivery: &Delivery, key: &Key, ack_bytes: &[u8]) -> Result<(), AckError> {
    AckVerifier::for_key(key)?.verify(delivery, ack_bytes)
}

/// Verifies acks of one key: its enrolled public keys are parsed and checked once (an X25519
/// multiplication probes the KEM key for low order, the Ed25519 key is decompressed: about
/// half the cost of verifying one ack), then each ack costs its signature check.
pub struct AckVerifier {
    identity: KeyIdentity,
}

impl AckVerifier {
    /// The verifier of `key`'s acks; an error when its stored public keys are unusable.
    pub fn for_key(key: &Key) -> Result<AckVerifier, AckError> {
        let identity = KeyIdentity::from_public_keys(&key.kem_public_key, &key.sig_public_key)
            .map_err(|e| AckError::BadKey {
                key: key.id.clone(),
                reason: e.to_string(),
            })?;
        Ok(AckVerifier { identity })
    }

    /// Checks `ack_bytes` for `delivery`: Ok when the key stored this exact envelope.
    pub fn verify(&self, delivery: &Delivery, ack_bytes: &[u8]) -> Result<(), AckError> {
        let receipt = delivery
            .receipt
            .as_deref()
            .ok_or_else(|| AckError::NoReceipt(delivery.id.clone()))?;
        let receipt = SealReceipt::from_bytes(receipt)
            .map_err(|_| AckError::NoReceipt(delivery.id.clone()))?;
        let verified = ack::verify(&receipt, &self.identity, ack_bytes)
            .map_err(|e| AckError::Refused(e.to_string()))?;
        match verified.status {
            AckStatus::Stored => Ok(()),
        }
    }
}
