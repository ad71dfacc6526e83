//! Verifying a key's ack against the receipt kept at seal time and the key's enrolled public
//! keys (keyproto): signed by the key, for this delivery, sequence and envelope, with the
//! proof only the opened envelope yields. A relaying workstation cannot forge one.

use keyproto::ack::{self, AckStatus};
use keyproto::envelope::SealReceipt;
use keyproto::identity::KeyIdentity;

use crate::store::{Delivery, Key};

/// Why an ack was refused (the delivery stays where it was).
#[derive(Debug, thiserror::Error)]
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
    let receipt = delivery
        .receipt
        .as_deref()
        .ok_or_else(|| AckError::NoReceipt(delivery.id.clone()))?;
    let receipt =
        SealReceipt::from_bytes(receipt).map_err(|_| AckError::NoReceipt(delivery.id.clone()))?;
    let identity = KeyIdentity::from_public_keys(&key.kem_public_key, &key.sig_public_key)
        .map_err(|e| AckError::BadKey {
            key: key.id.clone(),
            reason: e.to_string(),
        })?;
    let verified = ack::verify(&receipt, &identity, ack_bytes)
        .map_err(|e| AckError::Refused(e.to_string()))?;
    match verified.status {
        AckStatus::Stored => Ok(()),
    }
}
