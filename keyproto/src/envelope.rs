//! envelope: the sealed password in transit, from the server to the key.
//!
//! It owns the envelope's byte layout (header, `enc`, ciphertext, server signature), the
//! plaintext layout, the server-side [`seal`] and the key-side checks that come before a key
//! stores anything: addressing, tenant, signature, expiry, decryption. It must never keep or
//! return the plaintext outside zeroizing types, never put a secret in an error, and never decide
//! about sequence numbers or replays: those are the key's state (see `softkey`).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::PROTOCOL_VERSION;
use crate::identity::{KeyId, KeyIdentity, KeySecrets, TenantId};
use crate::suite::{self, AEAD_ID, ENC_LEN, EXPORT_LEN, KDF_ID, KEM_ID, SuiteError, TAG_LEN};
use crate::wire::{Reader, id16};

id16!(
    /// One delivery of one password to one key. Opaque 16 bytes (the server uses a UUID).
    DeliveryId
);

/// Longest slot name, in bytes of UTF-8.
pub const MAX_SLOT_LEN: usize = 128;
/// Longest account name in the plaintext, in bytes of UTF-8.
pub const MAX_ACCOUNT_LEN: usize = 128;
/// Longest password in the plaintext, in bytes of UTF-8.
pub const MAX_PASSWORD_LEN: usize = 512;
/// The plaintext is zero-padded to a multiple of this, so the ciphertext length says little
/// about the password's length.
pub const PLAINTEXT_BLOCK: usize = 64;
/// Header bytes before the slot name.
pub const HEADER_FIXED_LEN: usize = 80;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Shortest legal ciphertext: one padded block plus the tag.
pub const MIN_CIPHERTEXT_LEN: usize = PLAINTEXT_BLOCK + TAG_LEN;
/// Longest legal ciphertext: the largest plaintext, padded, plus the tag.
pub const MAX_CIPHERTEXT_LEN: usize = padded_len(MAX_PLAINTEXT_LEN) + TAG_LEN;
/// Longest legal envelope on the wire.
pub const MAX_ENVELOPE_LEN: usize =
    HEADER_FIXED_LEN + MAX_SLOT_LEN + ENC_LEN + 2 + MAX_CIPHERTEXT_LEN + SIGNATURE_LEN;
/// Length of [`SealReceipt::to_bytes`].
pub const RECEIPT_LEN: usize = 1 + 16 + 16 + 8 + 32 + 32;

const MAX_PLAINTEXT_LEN: usize = 1 + MAX_ACCOUNT_LEN + 2 + MAX_PASSWORD_LEN + 8;
/// Prefix of the message the server signs: keeps this signature from ever being valid for
/// anything else the same Ed25519 key might sign.
pub(crate) const ENVELOPE_SIG_LABEL: &[u8] = b"LATCHKEY-ENVELOPE-V1";
/// Prefix of the HPKE `info`.
const INFO_LABEL: &[u8] = b"LATCHKEY-HPKE-V1";
/// The HPKE exporter context of the ack proof.
pub(crate) const PROOF_EXPORT_CONTEXT: &[u8] = b"LATCHKEY-ACK-PROOF-V1";

const fn padded_len(n: usize) -> usize {
    n.div_ceil(PLAINTEXT_BLOCK) * PLAINTEXT_BLOCK
}

/// Everything that can go wrong building, parsing, sealing or opening an envelope. Each
/// rejection a key can make has its own variant, so a caller (and a test) can tell a replayed
/// downgrade from a wrong tenant. No variant carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The input ended before a field did.
    #[error("envelope truncated")]
    Truncated,
    /// Bytes follow the signature.
    #[error("trailing bytes after the envelope")]
    TrailingBytes,
    /// The input is longer than any legal envelope.
    #[error("envelope of {0} bytes exceeds the maximum")]
    TooLong(usize),
    /// A protocol version this implementation does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// Any suite but the one this protocol fixes: a downgrade attempt or a future version.
    #[error("unsupported cipher suite kem={kem:#06x} kdf={kdf:#06x} aead={aead:#06x}")]
    UnsupportedSuite {
        /// KEM id found.
        kem: u16,
        /// KDF id found.
        kdf: u16,
        /// AEAD id found.
        aead: u16,
    },
    /// Slot name empty, too long or not UTF-8.
    #[error("slot must be 1..={MAX_SLOT_LEN} bytes of UTF-8")]
    InvalidSlot,
    /// Sequence number 0 (sequences start at 1, so a blank key's 0 is never "newer").
    #[error("sequence number must be at least 1")]
    InvalidSequence,
    /// `issued_at` is after `not_after`.
    #[error("issued-at {issued_at} is after not-after {not_after}")]
    InvalidTimes {
        /// Issued at (Unix seconds).
        issued_at: u64,
        /// Not after (Unix seconds).
        not_after: u64,
    },
    /// A ciphertext length no legal plaintext produces.
    #[error("ciphertext length {0} is not a legal padded length")]
    CiphertextLength(usize),
    /// A credential that cannot be encoded (empty, too long). Says which field, never its value.
    #[error("invalid credential: {0}")]
    InvalidCredential(&'static str),
    /// The header's key id is not the recipient's.
    #[error("header key id does not match the recipient identity")]
    RecipientMismatch,
    /// HPKE refused to seal (an invalid or low-order recipient key).
    #[error("sealing failed: {0}")]
    Seal(SuiteError),
    /// Addressed to another key.
    #[error("envelope is for key {found}, this is key {expected}")]
    WrongKey {
        /// This key.
        expected: KeyId,
        /// The envelope's key id.
        found: KeyId,
    },
    /// Sealed for another tenant.
    #[error("envelope is for tenant {found}, this key belongs to tenant {expected}")]
    WrongTenant {
        /// The key's tenant.
        expected: TenantId,
        /// The envelope's tenant.
        found: TenantId,
    },
    /// The server signature does not verify: the envelope was altered or not made by the server.
    #[error("server signature does not verify")]
    BadServerSignature,
    /// `not_after` has passed.
    #[error("envelope expired at {not_after} (now {now})")]
    Expired {
        /// Not after (Unix seconds).
        not_after: u64,
        /// The time the check used.
        now: u64,
    },
    /// HPKE decryption failed (tampered ciphertext, or `info` bound to another tenant or key).
    #[error("decryption failed")]
    DecryptFailed,
    /// Decrypted, but the plaintext layout is wrong.
    #[error("malformed plaintext")]
    InvalidPlaintext,
    /// A stored seal receipt does not parse.
    #[error("malformed seal receipt")]
    InvalidReceipt,
}

/// The envelope header: the HPKE AAD and the first part of what the server signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader {
    tenant: TenantId,
    key_id: KeyId,
    delivery_id: DeliveryId,
    sequence: u64,
    issued_at: u64,
    not_after: u64,
    slot: String,
}

impl EnvelopeHeader {
    /// A header for one delivery. Version and suite are fixed by this crate and written on
    /// encode. `sequence` is per (key, slot) and must grow with every delivery to that slot.
    pub fn new(
        tenant: TenantId,
        key_id: KeyId,
        delivery_id: DeliveryId,
        sequence: u64,
        slot: &str,
        issued_at: u64,
        not_after: u64,
    ) -> Result<Self, EnvelopeError> {
        if slot.is_empty() || slot.len() > MAX_SLOT_LEN {
            return Err(EnvelopeError::InvalidSlot);
        }
        if sequence == 0 {
            return Err(EnvelopeError::InvalidSequence);
        }
        if issued_at > not_after {
            return Err(EnvelopeError::InvalidTimes {
                issued_at,
                not_after,
            });
        }
        Ok(Self {
            tenant,
            key_id,
            delivery_id,
            sequence,
            issued_at,
            not_after,
            slot: slot.to_owned(),
        })
    }

    /// Tenant the envelope was sealed for.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
    /// Key the envelope is addressed to.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// The delivery this envelope carries.
    pub fn delivery_id(&self) -> DeliveryId {
        self.delivery_id
    }
    /// Per-slot sequence number (≥ 1).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
    /// The key slot (the account's place on the key).
    pub fn slot(&self) -> &str {
        &self.slot
    }
    /// When the server sealed it (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// After this instant (Unix seconds) a key refuses the envelope.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The header bytes (also the AAD).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED_LEN + self.slot.len());
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(PROTOCOL_VERSION);
        out.extend_from_slice(&KEM_ID.to_be_bytes());
        out.extend_from_slice(&KDF_ID.to_be_bytes());
        out.extend_from_slice(&AEAD_ID.to_be_bytes());
        out.extend_from_slice(self.tenant.as_bytes());
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(self.delivery_id.as_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        // Cannot truncate: `new` and `read` both cap the slot at MAX_SLOT_LEN (128).
        out.push(self.slot.len() as u8);
        out.extend_from_slice(self.slot.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, EnvelopeError> {
        use EnvelopeError::Truncated as T;
        let version = r.u8().ok_or(T)?;
        if version != PROTOCOL_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let (kem, kdf, aead) = (r.u16().ok_or(T)?, r.u16().ok_or(T)?, r.u16().ok_or(T)?);
        if (kem, kdf, aead) != (KEM_ID, KDF_ID, AEAD_ID) {
            return Err(EnvelopeError::UnsupportedSuite { kem, kdf, aead });
        }
        let tenant = TenantId(r.array().ok_or(T)?);
        let key_id = KeyId(r.array().ok_or(T)?);
        let delivery_id = DeliveryId(r.array().ok_or(T)?);
        let sequence = r.u64().ok_or(T)?;
        let issued_at = r.u64().ok_or(T)?;
        let not_after = r.u64().ok_or(T)?;
        let slot_len = usize::from(r.u8().ok_or(T)?);
        let slot = r.take(slot_len).ok_or(T)?;
        let slot = core::str::from_utf8(slot).map_err(|_| EnvelopeError::InvalidSlot)?;
        Self::new(
            tenant,
            key_id,
            delivery_id,
            sequence,
            slot,
            issued_at,
            not_after,
        )
    }

    /// HPKE `info`: binds protocol version, tenant and key id into the key schedule, so an
    /// envelope re-labelled for another tenant or key cannot even be decrypted.
    fn info(&self) -> Vec<u8> {
        hpke_info(self.tenant, self.key_id)
    }
}

fn hpke_info(tenant: TenantId, key_id: KeyId) -> Vec<u8> {
    let mut info = Vec::with_capacity(INFO_LABEL.len() + 1 + 32);
    info.extend_from_slice(INFO_LABEL);
    info.push(PROTOCOL_VERSION);
    info.extend_from_slice(tenant.as_bytes());
    info.extend_from_slice(key_id.as_bytes());
    info
}

/// The decrypted content: the account to sign in as, its password and when it was set.
/// Everything in it is wiped on drop; it has no `Debug`, `Display` or serde.
pub struct Credential {
    account: Zeroizing<String>,
    password: SecretString,
    set_at: u64,
}

impl Drop for Credential {
    fn drop(&mut self) {
        // account and password wipe themselves; set_at is a plain integer.
        self.set_at.zeroize();
    }
}

impl Credential {
    /// A credential to seal. Account: 1..=128 bytes; password: 1..=512 bytes.
    pub fn new(account: &str, password: SecretString, set_at: u64) -> Result<Self, EnvelopeError> {
        if account.is_empty() || account.len() > MAX_ACCOUNT_LEN {
            return Err(EnvelopeError::InvalidCredential("account length"));
        }
        let len = password.expose_secret().len();
        if len == 0 || len > MAX_PASSWORD_LEN {
            return Err(EnvelopeError::InvalidCredential("password length"));
        }
        Ok(Self {
            account: Zeroizing::new(account.to_owned()),
            password,
            set_at,
        })
    }

    /// The account name the key types.
    pub fn account(&self) -> &str {
        &self.account
    }
    /// The password.
    pub fn password(&self) -> &SecretString {
        &self.password
    }
    /// When the directory accepted the password (Unix seconds).
    pub fn set_at(&self) -> u64 {
        self.set_at
    }

    /// A copy (the software key keeps one and hands one out).
    pub fn duplicate(&self) -> Self {
        Self {
            account: self.account.clone(),
            password: SecretString::from(self.password.expose_secret().to_owned()),
            set_at: self.set_at,
        }
    }

    /// Plaintext layout: account_len u8 ‖ account ‖ password_len u16 ‖ password ‖ set_at u64 ‖
    /// zero padding to a multiple of 64.
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let pw = self.password.expose_secret().as_bytes();
        let raw = 1 + self.account.len() + 2 + pw.len() + 8;
        // Allocate once at the final size: a reallocation would leave an unwiped copy behind.
        let mut out = Zeroizing::new(Vec::with_capacity(padded_len(raw)));
        // Both lengths are capped by `new`/`decode` (128 and 512), so the casts are exact.
        out.push(self.account.len() as u8);
        out.extend_from_slice(self.account.as_bytes());
        out.extend_from_slice(&(pw.len() as u16).to_be_bytes());
        out.extend_from_slice(pw);
        out.extend_from_slice(&self.set_at.to_be_bytes());
        out.resize(padded_len(raw), 0);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        use EnvelopeError::InvalidPlaintext as P;
        if !bytes.len().is_multiple_of(PLAINTEXT_BLOCK) {
            return Err(P);
        }
        let mut r = Reader::new(bytes);
        let account_len = usize::from(r.u8().ok_or(P)?);
        let account = core::str::from_utf8(r.take(account_len).ok_or(P)?).map_err(|_| P)?;
        let password_len = usize::from(r.u16().ok_or(P)?);
        let password = core::str::from_utf8(r.take(password_len).ok_or(P)?).map_err(|_| P)?;
        let set_at = r.u64().ok_or(P)?;
        // Padding must be zeros and shorter than a block: the encoding is then canonical.
        let used = r.position();
        if bytes.len() != padded_len(used) || bytes[used..].iter().any(|&b| b != 0) {
            return Err(P);
        }
        // `to_owned` of a str allocates exactly its length, so the String's conversion into the
        // secret box does not reallocate and leave a copy behind.
        Self::new(account, SecretString::from(password.to_owned()), set_at).map_err(|_| P)
    }
}

/// A parsed envelope whose signature has not been checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    header: EnvelopeHeader,
    header_len: usize,
    enc: [u8; ENC_LEN],
    ciphertext_range: core::ops::Range<usize>,
    signature: Signature,
    bytes: Vec<u8>,
}

impl Envelope {
    /// Parses the wire form strictly: fixed version and suite, legal lengths, nothing after the
    /// signature. Never panics (fuzzed).
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        use EnvelopeError::Truncated as T;
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLong(bytes.len()));
        }
        let mut r = Reader::new(bytes);
        let header = EnvelopeHeader::read(&mut r)?;
        let header_len = r.position();
        let enc = r.array().ok_or(T)?;
        let ct_len = usize::from(r.u16().ok_or(T)?);
        if !(MIN_CIPHERTEXT_LEN..=MAX_CIPHERTEXT_LEN).contains(&ct_len)
            || !(ct_len - TAG_LEN).is_multiple_of(PLAINTEXT_BLOCK)
        {
            return Err(EnvelopeError::CiphertextLength(ct_len));
        }
        let ct_start = r.position();
        r.take(ct_len).ok_or(T)?;
        let signature = Signature::from_bytes(&r.array().ok_or(T)?);
        if !r.is_empty() {
            return Err(EnvelopeError::TrailingBytes);
        }
        Ok(Self {
            header,
            header_len,
            enc,
            ciphertext_range: ct_start..ct_start + ct_len,
            signature,
            bytes: bytes.to_vec(),
        })
    }

    /// The header (unauthenticated until [`Envelope::verify`]).
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    /// The exact wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the wire bytes: what the ack names.
    pub fn hash(&self) -> [u8; 32] {
        envelope_hash(&self.bytes)
    }

    fn signed_region(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    /// Checks addressing (key id, then tenant) and the server's signature, in that order, so a
    /// mis-addressed envelope says so rather than "bad signature".
    pub fn verify(
        self,
        me: &KeyIdentity,
        trust: &TrustAnchor,
    ) -> Result<VerifiedEnvelope, EnvelopeError> {
        if self.header.key_id != me.key_id() {
            return Err(EnvelopeError::WrongKey {
                expected: me.key_id(),
                found: self.header.key_id,
            });
        }
        if self.header.tenant != trust.tenant {
            return Err(EnvelopeError::WrongTenant {
                expected: trust.tenant,
                found: self.header.tenant,
            });
        }
        let msg = [ENVELOPE_SIG_LABEL, self.signed_region()].concat();
        trust
            .server_key
            .verify_strict(&msg, &self.signature)
            .map_err(|_| EnvelopeError::BadServerSignature)?;
        Ok(VerifiedEnvelope(self))
    }
}

/// SHA-256 of an envelope's wire bytes.
pub fn envelope_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What a key trusts, fixed when it is provisioned: its tenant and the server's envelope
/// signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// The tenant the key belongs to.
    pub tenant: TenantId,
    /// The server's Ed25519 envelope-signing key.
    pub server_key: VerifyingKey,
}

/// An envelope addressed to this key and signed by its server; not yet decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnvelope(Envelope);

impl VerifiedEnvelope {
    /// The authenticated header.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.0.header
    }

    /// SHA-256 of the wire bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash()
    }

    /// Refuses the envelope once `now` is past `not_after`. A key without a clock passes the
    /// best lower bound it has (see `softkey` for how it keeps one).
    pub fn check_not_expired(&self, now: u64) -> Result<(), EnvelopeError> {
        let not_after = self.0.header.not_after;
        if now > not_after {
            return Err(EnvelopeError::Expired { not_after, now });
        }
        Ok(())
    }

    /// Decrypts with the key's KEM secret and exports the ack proof.
    pub fn decrypt(self, keys: &KeySecrets) -> Result<OpenedEnvelope, EnvelopeError> {
        let env = &self.0;
        let out = suite::open(
            keys.kem(),
            &env.enc,
            &env.header.info(),
            &env.bytes[..env.header_len],
            &env.bytes[env.ciphertext_range.clone()],
            PROOF_EXPORT_CONTEXT,
        )
        .map_err(|_| EnvelopeError::DecryptFailed)?;
        let credential = Credential::decode(&out.plaintext)?;
        Ok(OpenedEnvelope {
            envelope_hash: env.hash(),
            header: self.0.header,
            credential,
            proof: out.exported,
        })
    }
}

/// A decrypted envelope: the authenticated header, the credential and the ack proof.
pub struct OpenedEnvelope {
    header: EnvelopeHeader,
    envelope_hash: [u8; 32],
    credential: Credential,
    proof: Zeroizing<[u8; EXPORT_LEN]>,
}

impl OpenedEnvelope {
    /// The authenticated header.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }
    /// SHA-256 of the envelope's wire bytes.
    pub fn envelope_hash(&self) -> [u8; 32] {
        self.envelope_hash
    }
    /// The decrypted credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }
    /// The HPKE-exported proof that this envelope was opened.
    pub(crate) fn proof(&self) -> &[u8; EXPORT_LEN] {
        &self.proof
    }
}

/// The key side in one call: parse, check addressing and signature, expiry, then decrypt.
/// Sequence and replay checks need the key's memory and live in `softkey`.
pub fn open(
    keys: &KeySecrets,
    trust: &TrustAnchor,
    bytes: &[u8],
    now: u64,
) -> Result<OpenedEnvelope, EnvelopeError> {
    let verified = Envelope::parse(bytes)?.verify(keys.identity(), trust)?;
    verified.check_not_expired(now)?;
    verified.decrypt(keys)
}

/// What the server keeps after sealing, in place of anything that could decrypt: enough to
/// verify the key's ack. Not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealReceipt {
    /// Key the envelope was sealed to.
    pub key_id: KeyId,
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its sequence number.
    pub sequence: u64,
    /// SHA-256 of the envelope's wire bytes.
    pub envelope_hash: [u8; 32],
    /// SHA-256 of the exported ack proof. The digest, not the proof, so a copy of the server's
    /// database still cannot complete an ack.
    pub proof_digest: [u8; 32],
}

impl SealReceipt {
    /// Fixed 105-byte form for storage: version ‖ key id ‖ delivery id ‖ sequence ‖ envelope hash
    /// ‖ proof digest.
    pub fn to_bytes(&self) -> [u8; RECEIPT_LEN] {
        let mut out = [0u8; RECEIPT_LEN];
        out[0] = PROTOCOL_VERSION;
        out[1..17].copy_from_slice(self.key_id.as_bytes());
        out[17..33].copy_from_slice(self.delivery_id.as_bytes());
        out[33..41].copy_from_slice(&self.sequence.to_be_bytes());
        out[41..73].copy_from_slice(&self.envelope_hash);
        out[73..].copy_from_slice(&self.proof_digest);
        out
    }

    /// Parses [`SealReceipt::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        use EnvelopeError::InvalidReceipt as R;
        let mut r = Reader::new(bytes);
        if r.u8() != Some(PROTOCOL_VERSION) {
            return Err(R);
        }
        let receipt = Self {
            key_id: KeyId(r.array().ok_or(R)?),
            delivery_id: DeliveryId(r.array().ok_or(R)?),
            sequence: r.u64().ok_or(R)?,
            envelope_hash: r.array().ok_or(R)?,
            proof_digest: r.array().ok_or(R)?,
        };
        if !r.is_empty() {
            return Err(R);
        }
        Ok(receipt)
    }
}

/// A sealed envelope and the receipt the server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDelivery {
    /// The wire bytes to hand to the workstation.
    pub envelope: Vec<u8>,
    /// What to store to verify the ack later.
    pub receipt: SealReceipt,
}

/// The server side: seals `credential` to `recipient` under `header` and signs the result with
/// the server's Ed25519 key. `rng` must be a CSPRNG (it makes the ephemeral key).
pub fn seal<R: CryptoRng + RngCore>(
    server_key: &SigningKey,
    recipient: &KeyIdentity,
    header: &EnvelopeHeader,
    credential: &Credential,
    rng: &mut R,
) -> Result<SealedDelivery, EnvelopeError> {
    if header.key_id != recipient.key_id() {
        return Err(EnvelopeError::RecipientMismatch);
    }
    let aad = header.encode();
    let plaintext = credential.encode();
    let sealed = suite::seal(
        recipient.kem_public_key(),
        &header.info(),
        &aad,
        &plaintext,
        PROOF_EXPORT_CONTEXT,
        rng,
    )
    .map_err(EnvelopeError::Seal)?;
    let mut bytes = Vec::with_capacity(aad.len() + ENC_LEN + 2 + sealed.ciphertext.len() + 64);
    bytes.extend_from_slice(&aad);
    bytes.extend_from_slice(&sealed.enc);
    // The padded plaintext is at most 704 bytes, so the ciphertext length fits a u16.
    bytes.extend_from_slice(&(sealed.ciphertext.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&sealed.ciphertext);
    let signature = server_key.sign(&[ENVELOPE_SIG_LABEL, &bytes].concat());
    bytes.extend_from_slice(&signature.to_bytes());
    let receipt = SealReceipt {
        key_id: header.key_id,
        delivery_id: header.delivery_id,
        sequence: header.sequence,
        envelope_hash: envelope_hash(&bytes),
        proof_digest: Sha256::digest(sealed.exported.as_slice()).into(),
    };
    Ok(SealedDelivery {
        envelope: bytes,
        receipt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(account: &str, pw: &str) -> Credential {
        Credential::new(account, SecretString::from(pw.to_owned()), 1_700_000_000).unwrap()
    }

    #[test]
    fn plaintext_is_padded_to_blocks_and_round_trips() {
        for pw_len in [1, 40, 50, 51, 52, 115, 500, 512] {
            let c = cred("CORP\\alice", &"p".repeat(pw_len));
            let pt = c.encode();
            assert_eq!(pt.len() % PLAINTEXT_BLOCK, 0);
            let back = Credential::decode(&pt).unwrap();
            assert_eq!(back.account(), "CORP\\alice");
            assert_eq!(back.password().expose_secret().len(), pw_len);
            assert_eq!(back.set_at(), 1_700_000_000);
        }
    }

    #[test]
    fn non_zero_padding_or_extra_block_is_refused() {
        let c = cred("bob", "pw");
        let mut pt = c.encode().to_vec();
        *pt.last_mut().unwrap() = 1;
        assert!(matches!(
            Credential::decode(&pt),
            Err(EnvelopeError::InvalidPlaintext)
        ));
        let mut pt = c.encode().to_vec();
        pt.extend_from_slice(&[0u8; PLAINTEXT_BLOCK]);
        assert!(matches!(
            Credential::decode(&pt),
            Err(EnvelopeError::InvalidPlaintext)
        ));
    }

    #[test]
    fn credential_limits() {
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert!(Credential::new("a", SecretString::from(long), 0).is_err());
        assert!(Credential::new("", SecretString::from("p".to_owned()), 0).is_err());
        assert!(Credential::new("a", SecretString::from(String::new()), 0).is_err());
    }

    #[test]
    fn header_validation() {
        let t = TenantId([1; 16]);
        let k = KeyId([2; 16]);
        let d = DeliveryId([3; 16]);
        assert_eq!(
            EnvelopeHeader::new(t, k, d, 1, "", 0, 1),
            Err(EnvelopeError::InvalidSlot)
        );
        assert_eq!(
            EnvelopeHeader::new(t, k, d, 0, "s", 0, 1),
            Err(EnvelopeError::InvalidSequence)
        );
        assert!(matches!(
            EnvelopeHeader::new(t, k, d, 1, "s", 2, 1),
            Err(EnvelopeError::InvalidTimes { .. })
        ));
        let h = EnvelopeHeader::new(t, k, d, 1, "slot", 0, 1).unwrap();
        assert_eq!(h.encode().len(), HEADER_FIXED_LEN + 4);
    }

    #[test]
    fn receipt_round_trips() {
        let r = SealReceipt {
            key_id: KeyId([1; 16]),
            delivery_id: DeliveryId([2; 16]),
            sequence: 9,
            envelope_hash: [3; 32],
            proof_digest: [4; 32],
        };
        assert_eq!(SealReceipt::from_bytes(&r.to_bytes()), Ok(r.clone()));
        assert_eq!(
            SealReceipt::from_bytes(&r.to_bytes()[..RECEIPT_LEN - 1]),
            Err(EnvelopeError::InvalidReceipt)
        );
    }

    #[test]
    fn max_sizes_are_consistent() {
        assert_eq!(MAX_CIPHERTEXT_LEN, 720);
        assert_eq!(MAX_ENVELOPE_LEN, 1026);
    }
}
