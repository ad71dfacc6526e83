//! softkey (feature `sim`): a complete key in software, for tests, demos and the workstation
//! agent's `--key-file` mode.
//!
//! It owns the key-side state machine: provisioning (tenant and server key), per-slot sequence
//! numbers, a short memory of applied deliveries, the ack counter, a clock floor for a key
//! without a clock, the stored credentials, and the key file. It is the only place in this crate
//! that does I/O ([`SoftwareKey::save`], [`SoftwareKey::load`]); everything else here is pure, so
//! the state machine can be tested without a file. It must never hand out its secrets other than
//! into its own file, and never answer a refused envelope with an ack.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::ack::{self, ACK_LEN, AckStatus};
use crate::envelope::{Credential, DeliveryId, Envelope, EnvelopeError, TrustAnchor};
use crate::framing::{Command, Message};
use crate::identity::{
    IdentityError, KEY_SECRETS_LEN, KeyIdentity, KeySecrets, MAX_SERIAL_LEN, TenantId,
};

/// How many applied delivery ids a slot remembers, to tell a replay from a merely stale
/// envelope. Small on purpose: a firmware has little memory, and anything older is refused as
/// stale anyway.
pub const RECENT_DELIVERIES: usize = 8;

const FILE_MAGIC: &[u8; 4] = b"LKSK";
const FILE_VERSION: u8 = 1;

/// Why the key refused an envelope or could not load. Each refusal has its own variant (or
/// its own [`EnvelopeError`] variant), and [`KeyError::refusal_code`] gives its wire code.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No tenant and server key yet: the key trusts nobody.
    #[error("key is not provisioned (no tenant or server key)")]
    NotProvisioned,
    /// Provisioning again with a different tenant or server key.
    #[error("key is already provisioned for another tenant or server key")]
    AlreadyProvisioned,
    /// Refused by the envelope checks: malformed, downgraded suite, mis-addressed (wrong key or
    /// tenant), tampered (signature or decryption), expired.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Not newer than what the slot holds: an older delivery arriving late (reordered) or a
    /// sequence number reused.
    #[error("stale envelope for slot {slot:?}: sequence {sequence}, slot holds {current}")]
    Stale {
        /// The slot.
        slot: String,
        /// The envelope's sequence.
        sequence: u64,
        /// The slot's sequence.
        current: u64,
    },
    /// A delivery this key already applied, delivered again (and not the latest one, which is
    /// answered with its original ack instead).
    #[error("delivery {0} was already applied")]
    Replayed(DeliveryId),
    /// The ack counter cannot grow any more.
    #[error("ack counter exhausted")]
    CounterExhausted,
    /// Invalid serial or secrets.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The key file does not parse.
    #[error("key file is corrupt: {0}")]
    Corrupt(&'static str),
    /// The key file could not be read or written.
    #[error("key file: {0}")]
    Io(#[from] std::io::Error),
}

impl KeyError {
    /// The one-byte reason a key sends in a [`Command::Refusal`] message (see PROTOCOL.md).
    pub fn refusal_code(&self) -> u8 {
        use EnvelopeError as E;
        match self {
            Self::NotProvisioned => 0x01,
            Self::Envelope(E::UnsupportedVersion(_)) => 0x03,
            Self::Envelope(E::UnsupportedSuite { .. }) => 0x04,
            Self::Envelope(E::WrongKey { .. }) => 0x05,
            Self::Envelope(E::WrongTenant { .. }) => 0x06,
            Self::Envelope(E::BadServerSignature | E::DecryptFailed | E::InvalidPlaintext) => 0x07,
            Self::Envelope(E::Expired { .. }) => 0x08,
            Self::Stale { .. } => 0x09,
            Self::Replayed(_) => 0x0a,
            Self::Envelope(_) => 0x02,
            Self::AlreadyProvisioned
            | Self::CounterExhausted
            | Self::Identity(_)
            | Self::Corrupt(_)
            | Self::Io(_) => 0x0f,
        }
    }
}

/// What a slot remembers.
struct Slot {
    sequence: u64,
    last_hash: [u8; 32],
    last_ack: Vec<u8>,
    recent: VecDeque<DeliveryId>,
    credential: Credential,
}

/// A key in software. No `Debug`: it holds secrets and passwords.
pub struct SoftwareKey {
    serial: String,
    secrets: KeySecrets,
    trust: Option<TrustAnchor>,
    counter: u64,
    time_floor: u64,
    slots: BTreeMap<String, Slot>,
}

impl SoftwareKey {
    /// A new blank key: fresh secrets, not provisioned, no slots.
    pub fn generate<R: CryptoRng + RngCore>(serial: &str, rng: &mut R) -> Result<Self, KeyError> {
        Self::from_secrets(serial, KeySecrets::generate(rng))
    }

    /// A blank key around existing secrets (a key whose secrets were derived or imported).
    pub fn from_secrets(serial: &str, secrets: KeySecrets) -> Result<Self, KeyError> {
        let printable = serial.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if serial.is_empty() || serial.len() > MAX_SERIAL_LEN || !printable {
            return Err(IdentityError::InvalidSerial.into());
        }
        Ok(Self {
            serial: serial.to_owned(),
            secrets,
            trust: None,
            counter: 0,
            time_floor: 0,
            slots: BTreeMap::new(),
        })
    }

    /// The serial.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The public identity to enrol.
    pub fn identity(&self) -> &KeyIdentity {
        self.secrets.identity()
    }

    /// The tenant and server key this key trusts, once provisioned.
    pub fn trust(&self) -> Option<&TrustAnchor> {
        self.trust.as_ref()
    }

    /// How many distinct acks this key has signed.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Pins the tenant and the server's envelope-signing key. Repeating the same values is a
    /// no-op; different values are refused (a real key would need a reset, which wipes it).
    pub fn provision(&mut self, trust: TrustAnchor) -> Result<(), KeyError> {
        match &self.trust {
            Some(existing) if *existing != trust => Err(KeyError::AlreadyProvisioned),
            _ => {
                self.trust = Some(trust);
                Ok(())
            }
        }
    }

    /// The credential stored in `slot`.
    pub fn credential(&self, slot: &str) -> Option<&Credential> {
        self.slots.get(slot).map(|s| &s.credential)
    }

    /// The credential whose account name is `account` (what the key would type for it).
    pub fn credential_for_account(&self, account: &str) -> Option<&Credential> {
        self.slots
            .values()
            .map(|s| &s.credential)
            .find(|c| c.account() == account)
    }

    /// Slot names and their sequence numbers.
    pub fn slots(&self) -> impl Iterator<Item = (&str, u64)> {
        self.slots.iter().map(|(k, s)| (k.as_str(), s.sequence))
    }

    /// Receives an envelope and returns the ack bytes, or refuses it.
    ///
    /// `now` is the workstation's clock (Unix seconds), which the key cannot trust: it uses the
    /// later of `now` and the newest `issued_at` of any envelope it accepted, so a relay that
    /// turns its clock back cannot revive an envelope that expired before one the key has seen.
    ///
    /// Order of checks: provisioned; parse (version, suite, lengths); key id; tenant; server
    /// signature; then, against the slot, the exact previous envelope (answered with the same
    /// ack), a replayed delivery id, a sequence not newer; expiry; decryption. Only then does
    /// the state change. A caller persisting the key must save before releasing the ack.
    pub fn receive(&mut self, envelope: &[u8], now: u64) -> Result<Vec<u8>, KeyError> {
        let trust = self.trust.as_ref().ok_or(KeyError::NotProvisioned)?;
        let verified = Envelope::parse(envelope)?.verify(self.secrets.identity(), trust)?;
        let header = verified.header().clone();
        if let Some(slot) = self.slots.get(header.slot()) {
            if slot.last_hash == verified.hash() {
                return Ok(slot.last_ack.clone());
            }
            if slot.recent.contains(&header.delivery_id()) {
                return Err(KeyError::Replayed(header.delivery_id()));
            }
            if header.sequence() <= slot.sequence {
                return Err(KeyError::Stale {
                    slot: header.slot().to_owned(),
                    sequence: header.sequence(),
                    current: slot.sequence,
                });
            }
        }
        verified.check_not_expired(now.max(self.time_floor))?;
        let opened = verified.decrypt(&self.secrets)?;
        let counter = self
            .counter
            .checked_add(1)
            .ok_or(KeyError::CounterExhausted)?;
        let ack = ack::sign(&self.secrets, &opened, AckStatus::Stored, counter);
        // Commit: nothing below can fail.
        self.counter = counter;
        self.time_floor = self.time_floor.max(header.issued_at());
        let mut recent = self
            .slots
            .remove(header.slot())
            .map(|s| s.recent)
            .unwrap_or_default();
        if recent.len() == RECENT_DELIVERIES {
            recent.pop_front();
        }
        recent.push_back(header.delivery_id());
        self.slots.insert(
            header.slot().to_owned(),
            Slot {
                sequence: header.sequence(),
                last_hash: opened.envelope_hash(),
                last_ack: ack.clone(),
                recent,
                credential: opened.credential().duplicate(),
            },
        );
        Ok(ack)
    }

    /// Answers one reassembled message as a key would: an envelope gets an ack or a refusal
    /// (one byte, [`KeyError::refusal_code`]); anything else is refused as malformed.
    pub fn respond(&mut self, message: &Message, now: u64) -> Message {
        let result = match message.command {
            Command::Envelope => self.receive(&message.payload, now),
            _ => Err(KeyError::Envelope(EnvelopeError::Truncated)),
        };
        match result {
            Ok(ack) => Message {
                command: Command::Ack,
                payload: ack,
            },
            Err(e) => Message {
                command: Command::Refusal,
                payload: vec![e.refusal_code()],
            },
        }
    }

    /// The key file's contents. Holds the secrets and passwords: zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        // One allocation of the final size, so no unwiped copy is left by a reallocation.
        let per_slot = 1 + 128 + 8 + 32 + ACK_LEN + 1 + 16 * RECENT_DELIVERIES + 2 + 704;
        let cap = 64 + MAX_SERIAL_LEN + KEY_SECRETS_LEN + 49 + 16 + self.slots.len() * per_slot;
        let mut out = Zeroizing::new(Vec::with_capacity(cap));
        out.extend_from_slice(FILE_MAGIC);
        out.push(FILE_VERSION);
        // Serial, slot and account lengths are capped at 64/128 bytes by construction.
        out.push(self.serial.len() as u8);
        out.extend_from_slice(self.serial.as_bytes());
        out.extend_from_slice(self.secrets.to_bytes().as_slice());
        match &self.trust {
            None => out.push(0),
            Some(t) => {
                out.push(1);
                out.extend_from_slice(t.tenant.as_bytes());
                out.extend_from_slice(t.server_key.as_bytes());
            }
        }
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.time_floor.to_be_bytes());
        out.extend_from_slice(&(self.slots.len() as u16).to_be_bytes());
        for (name, slot) in &self.slots {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&slot.sequence.to_be_bytes());
            out.extend_from_slice(&slot.last_hash);
            out.extend_from_slice(&slot.last_ack);
            out.push(slot.recent.len() as u8);
            for id in &slot.recent {
                out.extend_from_slice(id.as_bytes());
            }
            let pt = slot.credential.encode();
            out.extend_from_slice(&(pt.len() as u16).to_be_bytes());
            out.extend_from_slice(&pt);
        }
        debug_assert!(out.len() <= cap);
        out
    }

    /// Rebuilds a key from [`SoftwareKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        use KeyError::Corrupt as C;
        let mut r = crate::wire::Reader::new(bytes);
        let t = || C("truncated");
        if r.take(4) != Some(FILE_MAGIC.as_slice()) {
            return Err(C("not a Latchkey software key file"));
        }
        if r.u8() != Some(FILE_VERSION) {
            return Err(C("unsupported key file version"));
        }
        let serial_len = usize::from(r.u8().ok_or_else(t)?);
        let serial = std::str::from_utf8(r.take(serial_len).ok_or_else(t)?)
            .map_err(|_| C("serial is not UTF-8"))?
            .to_owned();
        let mut secret = Zeroizing::new([0u8; KEY_SECRETS_LEN]);
        secret.copy_from_slice(r.take(KEY_SECRETS_LEN).ok_or_else(t)?);
        let secrets = KeySecrets::from_bytes(&secret)?;
        let trust = match r.u8().ok_or_else(t)? {
            0 => None,
            1 => {
                let tenant = TenantId(r.array().ok_or_else(t)?);
                let key: [u8; 32] = r.array().ok_or_else(t)?;
                let server_key = ed25519_dalek::VerifyingKey::from_bytes(&key)
                    .map_err(|_| C("server key is not a valid point"))?;
                Some(TrustAnchor { tenant, server_key })
            }
            _ => return Err(C("bad provisioning flag")),
        };
        let counter = r.u64().ok_or_else(t)?;
        let time_floor = r.u64().ok_or_else(t)?;
        let slot_count = r.u16().ok_or_else(t)?;
        let mut slots = BTreeMap::new();
        for _ in 0..slot_count {
            let name_len = usize::from(r.u8().ok_or_else(t)?);
            let name = std::str::from_utf8(r.take(name_len).ok_or_else(t)?)
                .map_err(|_| C("slot name is not UTF-8"))?
                .to_owned();
            let sequence = r.u64().ok_or_else(t)?;
            let last_hash = r.array().ok_or_else(t)?;
            let last_ack = r.take(ACK_LEN).ok_or_else(t)?.to_vec();
            let n = usize::from(r.u8().ok_or_else(t)?);
            if n > RECENT_DELIVERIES {
                return Err(C("too many recent deliveries"));
            }
            let mut recent = VecDeque::with_capacity(RECENT_DELIVERIES);
            for _ in 0..n {
                recent.push_back(DeliveryId(r.array().ok_or_else(t)?));
            }
            let pt_len = usize::from(r.u16().ok_or_else(t)?);
            let credential = Credential::decode(r.take(pt_len).ok_or_else(t)?)
                .map_err(|_| C("stored credential does not parse"))?;
            slots.insert(
                name,
                Slot {
                    sequence,
                    last_hash,
                    last_ack,
                    recent,
                    credential,
                },
            );
        }
        if !r.is_empty() {
            return Err(C("trailing bytes"));
        }
        Ok(Self {
            serial,
            secrets,
            trust,
            counter,
            time_floor,
            slots,
        })
    }

    /// Writes the key file atomically (temporary file, then rename), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(&self.to_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Reads a key file written by [`SoftwareKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        Self::from_bytes(&bytes)
    }
}
