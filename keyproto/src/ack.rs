//! ack: the key's signed receipt for an envelope, and the server's check of it.
//!
//! It owns the ack's byte layout, [`sign`] (key side) and [`verify`] (server side). The ack is
//! signed by the key's own Ed25519 key and carries a value exported from the envelope's HPKE
//! context, which only a holder of the KEM secret can compute: a relaying workstation can drop
//! an ack but cannot forge one, and an ack for one delivery is useless for any other. This module
//! must never need, hold or accept anything that could decrypt an envelope on the server side:
//! the server compares against a digest it kept at seal time.

use ed25519_dalek::{Signature, Signer};
use sha2::{Digest, Sha256};

use crate::PROTOCOL_VERSION;
use crate::envelope::{DeliveryId, OpenedEnvelope, SealReceipt};
use crate::identity::{KeyId, KeyIdentity, KeySecrets};
use crate::suite::EXPORT_LEN;
use crate::wire::Reader;

/// Length of an ack on the wire.
pub const ACK_LEN: usize = 178;
/// Bytes of the ack covered by its signature (everything before it).
const SIGNED_LEN: usize = ACK_LEN - 64;
/// Prefix of the message the key signs (domain separation from any other use of the key).
const ACK_SIG_LABEL: &[u8] = b"LATCHKEY-ACK-V1";

/// What the key did with the envelope. One value today; the byte exists so a later version can
/// add outcomes without a new layout, and a parser refuses values it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AckStatus {
    /// The credential is stored in its slot and replaces what was there.
    Stored = 0x01,
}

impl AckStatus {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(Self::Stored),
            _ => None,
        }
    }
}

/// Why an ack was refused. Each way a relay can cheat ends in its own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Not exactly [`ACK_LEN`] bytes.
    #[error("ack must be {ACK_LEN} bytes, got {0}")]
    Length(usize),
    /// A protocol version this implementation does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// A status byte this version does not define.
    #[error("unknown ack status {0:#04x}")]
    UnknownStatus(u8),
    /// From another key than the one the delivery was sealed to.
    #[error("ack is from key {found}, the delivery was sealed to {expected}")]
    WrongKey {
        /// The receipt's key.
        expected: KeyId,
        /// The ack's key.
        found: KeyId,
    },
    /// The key's signature does not verify: forged or altered on the way.
    #[error("ack signature does not verify")]
    BadSignature,
    /// A genuine ack, but for another delivery (an old ack replayed against a newer one).
    #[error("ack is for delivery {found}, expected {expected}")]
    WrongDelivery {
        /// The receipt's delivery.
        expected: DeliveryId,
        /// The ack's delivery.
        found: DeliveryId,
    },
    /// Right delivery id, wrong sequence number.
    #[error("ack names sequence {found}, the delivery was sealed with {expected}")]
    WrongSequence {
        /// The receipt's sequence.
        expected: u64,
        /// The ack's sequence.
        found: u64,
    },
    /// The ack names an envelope other than the one the server sealed.
    #[error("ack names a different envelope")]
    WrongEnvelope,
    /// The HPKE-exported proof does not match: whoever signed did not open this envelope.
    #[error("proof of opening does not match")]
    BadProof,
}

/// A parsed ack whose signature has not been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// What the key did.
    pub status: AckStatus,
    /// The acknowledging key.
    pub key_id: KeyId,
    /// The delivery acknowledged.
    pub delivery_id: DeliveryId,
    /// Its sequence number.
    pub sequence: u64,
    /// SHA-256 of the envelope the key opened.
    pub envelope_hash: [u8; 32],
    /// The key's ack counter: grows by one with every new ack the key signs.
    pub key_counter: u64,
    /// The HPKE-exported proof of opening.
    pub proof: [u8; EXPORT_LEN],
    /// Ed25519 signature by the key.
    pub signature: Signature,
}

impl Ack {
    /// Parses exactly [`ACK_LEN`] bytes. Never panics (fuzzed).
    pub fn parse(bytes: &[u8]) -> Result<Self, AckError> {
        if bytes.len() != ACK_LEN {
            return Err(AckError::Length(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let short = AckError::Length(bytes.len());
        let version = r.u8().ok_or(short)?;
        if version != PROTOCOL_VERSION {
            return Err(AckError::UnsupportedVersion(version));
        }
        let status = r.u8().ok_or(short)?;
        let status = AckStatus::from_byte(status).ok_or(AckError::UnknownStatus(status))?;
        Ok(Self {
            status,
            key_id: KeyId(r.array().ok_or(short)?),
            delivery_id: DeliveryId(r.array().ok_or(short)?),
            sequence: r.u64().ok_or(short)?,
            envelope_hash: r.array().ok_or(short)?,
            key_counter: r.u64().ok_or(short)?,
            proof: r.array().ok_or(short)?,
            signature: Signature::from_bytes(&r.array().ok_or(short)?),
        })
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ACK_LEN);
        out.push(PROTOCOL_VERSION);
        out.push(self.status as u8);
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(self.delivery_id.as_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.envelope_hash);
        out.extend_from_slice(&self.key_counter.to_be_bytes());
        out.extend_from_slice(&self.proof);
        debug_assert_eq!(out.len(), SIGNED_LEN);
        out
    }
}

/// The key side: signs an ack for an envelope it has opened. `key_counter` is the key's own
/// monotone counter; the caller (the key's state) decides its value.
pub fn sign(
    keys: &KeySecrets,
    opened: &OpenedEnvelope,
    status: AckStatus,
    key_counter: u64,
) -> Vec<u8> {
    let h = opened.header();
    let mut ack = Ack {
        status,
        key_id: keys.identity().key_id(),
        delivery_id: h.delivery_id(),
        sequence: h.sequence(),
        envelope_hash: opened.envelope_hash(),
        key_counter,
        proof: *opened.proof(),
        signature: Signature::from_bytes(&[0u8; 64]),
    };
    sign_fields(keys, &mut ack);
    ack.encode()
}

fn sign_fields(keys: &KeySecrets, ack: &mut Ack) {
    ack.signature = keys
        .signing_key()
        .sign(&[ACK_SIG_LABEL, &ack.signed_bytes()].concat());
}

/// What a verified ack tells the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAck {
    /// The delivery acknowledged (equal to the receipt's).
    pub delivery_id: DeliveryId,
    /// Its sequence number.
    pub sequence: u64,
    /// What the key did.
    pub status: AckStatus,
    /// The key's ack counter. A server that records the highest value per key can flag a
    /// counter going backwards (a cloned or restored key); it is not checked here because a
    /// relay may legitimately post acks for different slots out of order.
    pub key_counter: u64,
}

/// The server side: checks `ack` against the receipt kept at seal time and the enrolled key.
///
/// Order: parse, key id, signature, delivery, sequence, envelope, proof. The signature comes
/// before the field comparisons so an altered ack always reads as [`AckError::BadSignature`],
/// and a genuine ack for another delivery as [`AckError::WrongDelivery`].
pub fn verify(
    receipt: &SealReceipt,
    key: &KeyIdentity,
    ack: &[u8],
) -> Result<VerifiedAck, AckError> {
    let parsed = Ack::parse(ack)?;
    if parsed.key_id != key.key_id() || receipt.key_id != key.key_id() {
        return Err(AckError::WrongKey {
            expected: receipt.key_id,
            found: parsed.key_id,
        });
    }
    let msg = [ACK_SIG_LABEL, &ack[..SIGNED_LEN]].concat();
    key.sig_public_key()
        .verify_strict(&msg, &parsed.signature)
        .map_err(|_| AckError::BadSignature)?;
    if parsed.delivery_id != receipt.delivery_id {
        return Err(AckError::WrongDelivery {
            expected: receipt.delivery_id,
            found: parsed.delivery_id,
        });
    }
    if parsed.sequence != receipt.sequence {
        return Err(AckError::WrongSequence {
            expected: receipt.sequence,
            found: parsed.sequence,
        });
    }
    if parsed.envelope_hash != receipt.envelope_hash {
        return Err(AckError::WrongEnvelope);
    }
    let digest: [u8; 32] = Sha256::digest(parsed.proof).into();
    if !ct_eq(&digest, &receipt.proof_digest) {
        return Err(AckError::BadProof);
    }
    Ok(VerifiedAck {
        delivery_id: parsed.delivery_id,
        sequence: parsed.sequence,
        status: parsed.status,
        key_counter: parsed.key_counter,
    })
}

/// Equality without an early exit, so timing does not reveal how much of a guessed proof was
/// right. (Comparing digests already hides that; this is belt and braces.)
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{self, Credential, EnvelopeHeader, TrustAnchor};
    use crate::identity::TenantId;
    use ed25519_dalek::SigningKey;
    use rand::{SeedableRng, rngs::StdRng};
    use secrecy::SecretString;

    struct World {
        keys: KeySecrets,
        receipt: SealReceipt,
        ack: Ack,
    }

    fn world() -> World {
        let mut rng = StdRng::seed_from_u64(42);
        let server = SigningKey::generate(&mut rng);
        let keys = KeySecrets::generate(&mut rng);
        let tenant = TenantId([9; 16]);
        let header = EnvelopeHeader::new(
            tenant,
            keys.identity().key_id(),
            DeliveryId([1; 16]),
            1,
            "alice",
            100,
            200,
        )
        .unwrap();
        let cred = Credential::new("alice", SecretString::from("pw".to_owned()), 99).unwrap();
        let sealed = envelope::seal(&server, keys.identity(), &header, &cred, &mut rng).unwrap();
        let trust = TrustAnchor {
            tenant,
            server_key: server.verifying_key(),
        };
        let opened = envelope::open(&keys, &trust, &sealed.envelope, 150).unwrap();
        let ack = Ack::parse(&sign(&keys, &opened, AckStatus::Stored, 1)).unwrap();
        World {
            keys,
            receipt: sealed.receipt,
            ack,
        }
    }

    /// Re-signs an ack with the genuine key after changing a field: what a key that signs
    /// without opening (or a buggy one) would produce.
    fn resigned(w: &World, change: impl FnOnce(&mut Ack)) -> Vec<u8> {
        let mut a = w.ack.clone();
        change(&mut a);
        sign_fields(&w.keys, &mut a);
        a.encode()
    }

    #[test]
    fn genuine_ack_verifies() {
        let w = world();
        let v = verify(&w.receipt, w.keys.identity(), &w.ack.encode()).unwrap();
        assert_eq!(v.delivery_id, DeliveryId([1; 16]));
        assert_eq!(
            (v.sequence, v.key_counter, v.status),
            (1, 1, AckStatus::Stored)
        );
    }

    #[test]
    fn signed_but_not_opened_is_bad_proof() {
        let w = world();
        let forged = resigned(&w, |a| a.proof = [0xAA; 32]);
        assert_eq!(
            verify(&w.receipt, w.keys.identity(), &forged),
            Err(AckError::BadProof)
        );
    }

    #[test]
    fn wrong_sequence_and_envelope_are_named() {
        let w = world();
        let id = w.keys.identity();
        let a = resigned(&w, |a| a.sequence = 2);
        assert_eq!(
            verify(&w.receipt, id, &a),
            Err(AckError::WrongSequence {
                expected: 1,
                found: 2
            })
        );
        let a = resigned(&w, |a| a.envelope_hash[0] ^= 1);
        assert_eq!(verify(&w.receipt, id, &a), Err(AckError::WrongEnvelope));
    }

    #[test]
    fn parse_rejects_bad_version_status_and_length() {
        let w = world();
        let good = w.ack.encode();
        let mut v = good.clone();
        v[0] = 2;
        assert_eq!(Ack::parse(&v), Err(AckError::UnsupportedVersion(2)));
        let mut v = good.clone();
        v[1] = 0;
        assert_eq!(Ack::parse(&v), Err(AckError::UnknownStatus(0)));
        assert_eq!(Ack::parse(&good[1..]), Err(AckError::Length(ACK_LEN - 1)));
    }
}
