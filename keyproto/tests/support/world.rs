//! A server, a tenant and a key, with deterministic randomness, shared by the integration tests.

#![allow(dead_code)] // each test crate uses a different part of it

use ed25519_dalek::SigningKey;
use keyproto::envelope::{
    self, Credential, DeliveryId, EnvelopeHeader, SealedDelivery, TrustAnchor,
};
use keyproto::identity::{KeyIdentity, KeySecrets, TenantId};
use rand::{SeedableRng, rngs::StdRng};
use secrecy::SecretString;

pub const T0: u64 = 1_750_000_000;
pub const DAY: u64 = 86_400;

pub struct World {
    pub rng: StdRng,
    pub server: SigningKey,
    pub tenant: TenantId,
    pub keys: KeySecrets,
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let server = SigningKey::generate(&mut rng);
        let keys = KeySecrets::generate(&mut rng);
        Self {
            rng,
            server,
            tenant: TenantId([0x7e; 16]),
            keys,
        }
    }

    pub fn identity(&self) -> KeyIdentity {
        self.keys.identity().clone()
    }

    pub fn trust(&self) -> TrustAnchor {
        TrustAnchor {
            tenant: self.tenant,
            server_key: self.server.verifying_key(),
        }
    }

    /// A delivery id that names its slot and sequence, so tests can tell them apart.
    pub fn delivery_id(slot: &str, sequence: u64) -> DeliveryId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&sequence.to_be_bytes());
        for (i, b) in slot.bytes().take(8).enumerate() {
            id[8 + i] = b;
        }
        DeliveryId(id)
    }

    pub fn header(&self, slot: &str, sequence: u64) -> EnvelopeHeader {
        EnvelopeHeader::new(
            self.tenant,
            self.identity().key_id(),
            Self::delivery_id(slot, sequence),
            sequence,
            slot,
            T0,
            T0 + DAY,
        )
        .unwrap()
    }

    pub fn credential(account: &str, password: &str) -> Credential {
        Credential::new(account, SecretString::from(password.to_owned()), T0).unwrap()
    }

    pub fn seal_header(&mut self, header: &EnvelopeHeader, password: &str) -> SealedDelivery {
        let identity = self.identity();
        let cred = Self::credential(header.slot(), password);
        envelope::seal(&self.server, &identity, header, &cred, &mut self.rng).unwrap()
    }

    pub fn seal(&mut self, slot: &str, sequence: u64, password: &str) -> SealedDelivery {
        let header = self.header(slot, sequence);
        self.seal_header(&header, password)
    }

    /// The server signs an arbitrary envelope body (for tests that model a compromised or
    /// buggy server producing a well-signed but unacceptable envelope).
    pub fn resign(&self, mut envelope: Vec<u8>) -> Vec<u8> {
        use ed25519_dalek::Signer;
        let body = envelope.len() - 64;
        envelope.truncate(body);
        let sig = self
            .server
            .sign(&[b"LATCHKEY-ENVELOPE-V1".as_slice(), &envelope].concat());
        envelope.extend_from_slice(&sig.to_bytes());
        envelope
    }

    #[cfg(feature = "sim")]
    pub fn software_key(&mut self) -> keyproto::softkey::SoftwareKey {
        let secrets = KeySecrets::from_bytes(&self.keys.to_bytes()).unwrap();
        let mut key = keyproto::softkey::SoftwareKey::from_secrets("SIM-0001", secrets).unwrap();
        key.provision(self.trust()).unwrap();
        key
    }
}
