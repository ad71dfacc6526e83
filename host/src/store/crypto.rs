//! `MasterKey` and sealing: connector secrets are encrypted at rest with XChaCha20-Poly1305
//! under a 32-byte master key (from a file or an environment variable, base64), a random
//! 24-byte nonce per value, and an AAD binding the value to its tenant, connector and name.
//!
//! It owns the key bytes (zeroized on drop) and the AAD's layout. It must never print the key
//! (its `Debug` shows the key id only), reuse a nonce, or open a value under an AAD other than
//! the one its row names.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore as _};
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::error::StoreError;

/// The key connector secrets are sealed under. Identified by the first 8 bytes of its
/// SHA-256 (hex), stored beside each sealed value so a rotation knows what it re-seals.
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

const AAD_LABEL: &[u8] = b"latchkey connector secret v1\0";

impl MasterKey {
    /// A new random key (write it out with [`MasterKey::to_base64`]).
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        MasterKey::from_bytes(key)
    }

    fn from_bytes(key: Zeroizing<[u8; 32]>) -> MasterKey {
        let id = hex::encode(&Sha256::digest(key.as_ref())[..8]);
        MasterKey { key, id }
    }

    /// A key from its base64 text (standard alphabet, padded; surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, StoreError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| StoreError::MasterKey("the master key is not valid base64".into()))?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::MasterKey(format!(
                "the master key must be 32 bytes, this one has {}",
                bytes.len()
            ))
        })?;
        Ok(MasterKey::from_bytes(Zeroizing::new(key)))
    }

    /// A key from a file holding its base64 text.
    pub fn from_file(path: &Path) -> Result<MasterKey, StoreError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| StoreError::MasterKey(format!("reading {}: {e}", path.display())))?,
        );
        MasterKey::from_base64(&text)
            .map_err(|e| StoreError::MasterKey(format!("{}: {e}", path.display())))
    }

    /// A key from the environment variable `name` holding its base64 text.
    pub fn from_env(name: &str) -> Result<MasterKey, StoreError> {
        let text = Zeroizing::new(
            std::env::var(name).map_err(|_| StoreError::MasterKey(format!("{name} is not set")))?,
        );
        MasterKey::from_base64(&text).map_err(|e| StoreError::MasterKey(format!("{name}: {e}")))
    }

    /// The key as base64 text, to write to a file readable only by the server.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.key.as_ref()))
    }

    /// The key's id: hex of the first 8 bytes of its SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext`; returns (nonce, ciphertext).
    pub(crate) fn seal(
        &self,
        aad: &SecretAad<'_>,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad.bytes(),
                },
            )
            .map_err(|_| StoreError::MasterKey("sealing failed".into()))?;
        Ok((nonce.to_vec(), ciphertext))
    }

    /// Opens a value sealed by [`MasterKey::seal`] under the same AAD.
    pub(crate) fn open(
        &self,
        aad: &SecretAad<'_>,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let refused = || {
            StoreError::MasterKey(format!(
                "the secret {:?} of connector {} does not open under key {} (altered, or moved \
                 from another connector or tenant)",
                aad.name, aad.connector, self.id
            ))
        };
        if nonce.len() != 24 {
            return Err(refused());
        }
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad.bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }
}

/// What a sealed connector secret is bound to.
pub(crate) struct SecretAad<'a> {
    pub tenant: &'a str,
    pub connector: &'a str,
    pub name: &'a str,
}

impl SecretAad<'_> {
    /// label ‖ len ‖ tenant ‖ len ‖ connector ‖ len ‖ name, lengths as u32 big-endian, so no
    /// two different triples give the same bytes.
    fn bytes(&self) -> Vec<u8> {
        let mut out = AAD_LABEL.to_vec();
        for part in [self.tenant, self.connector, self.name] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad<'a>(tenant: &'a str, connector: &'a str, name: &'a str) -> SecretAad<'a> {
        SecretAad {
            tenant,
            connector,
            name,
        }
    }

    #[test]
    fn seals_and_opens_only_under_the_same_aad_and_key() {
        let key = MasterKey::generate();
        let (nonce, ct) = key
            .seal(&aad("t", "c", "bind_password"), b"hunter2")
            .unwrap();
        assert_eq!(
            key.open(&aad("t", "c", "bind_password"), &nonce, &ct)
                .unwrap()
                .as_slice(),
            b"hunter2"
        );
        for other in [
            aad("u", "c", "bind_password"),
            aad("t", "d", "bind_password"),
            aad("t", "c", "x"),
        ] {
            assert!(key.open(&other, &nonce, &ct).is_err());
        }
        assert!(
            MasterKey::generate()
                .open(&aad("t", "c", "bind_password"), &nonce, &ct)
                .is_err()
        );
        let (nonce2, _) = key
            .seal(&aad("t", "c", "bind_password"), b"hunter2")
            .unwrap();
        assert_ne!(nonce, nonce2, "a fresh nonce per value");
    }

    #[test]
    fn aad_lengths_keep_fields_apart() {
        assert_ne!(aad("ab", "c", "n").bytes(), aad("a", "bc", "n").bytes());
    }

    #[test]
    fn base64_round_trip_and_debug_shows_only_the_id() {
        use secrecy::ExposeSecret as _;
        let key = MasterKey::generate();
        let text = key.to_base64();
        let again = MasterKey::from_base64(&format!(" {}\n", text.expose_secret())).unwrap();
        assert_eq!(again.id(), key.id());
        assert_eq!(key.id().len(), 16);
        let debug = format!("{key:?}");
        assert!(!debug.contains(text.expose_secret()), "{debug}");
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
