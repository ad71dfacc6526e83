//! suite: the crate's HPKE layer, fixed to one RFC 9180 cipher suite in base mode:
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305.
//!
//! It owns the KEM key pair type and exactly two operations, [`seal`] and [`open`], each of which
//! sets up an HPKE context, encrypts or decrypts one message, exports one value and drops the
//! context. No context ever leaves this module, so there is no sequence counter to misuse and no
//! way to reuse a nonce: every seal draws a fresh ephemeral key. This module must never offer
//! another mode, another suite, or a reusable context, and never let secret bytes escape except
//! in `Zeroizing` buffers.

use hpke::{
    Deserializable, HpkeError, Kem as _, OpModeR, OpModeS, Serializable, aead::ChaCha20Poly1305,
    kdf::HkdfSha256, kem::X25519HkdfSha256,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;
type Kdf = HkdfSha256;
type Aead = ChaCha20Poly1305;

/// RFC 9180 KEM identifier of DHKEM(X25519, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0020;
/// RFC 9180 KDF identifier of HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// RFC 9180 AEAD identifier of ChaCha20-Poly1305.
pub const AEAD_ID: u16 = 0x0003;
/// Length of the encapsulated key (`enc`, the ephemeral X25519 public key).
pub const ENC_LEN: usize = 32;
/// Length of an X25519 public or private key.
pub const KEM_KEY_LEN: usize = 32;
/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of the value exported from the context (the ack proof).
pub const EXPORT_LEN: usize = 32;

/// Why an HPKE operation failed. Deliberately coarse: telling an attacker *why* decryption failed
/// helps nobody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// The recipient public key is not 32 bytes or yields an all-zero shared secret.
    #[error("encapsulation failed (invalid or low-order recipient key)")]
    Encap,
    /// `enc` is malformed or yields an all-zero shared secret with our key.
    #[error("decapsulation failed (invalid or low-order encapsulated key)")]
    Decap,
    /// The AEAD tag did not verify: wrong key, wrong `info`, wrong AAD or altered ciphertext.
    #[error("decryption failed")]
    Decrypt,
}

fn map_err(e: HpkeError, fallback: SuiteError) -> SuiteError {
    match e {
        HpkeError::EncapError => SuiteError::Encap,
        HpkeError::DecapError
        | HpkeError::ValidationError
        | HpkeError::IncorrectInputLength(..) => SuiteError::Decap,
        HpkeError::OpenError => SuiteError::Decrypt,
        _ => fallback,
    }
}

/// An X25519 KEM private key. Zeroized on drop (hpke keeps it in x25519-dalek's `StaticSecret`,
/// and this crate turns on that crate's `zeroize` feature); no `Debug`, no `Display`.
pub struct KemSecretKey(<Kem as hpke::Kem>::PrivateKey);

impl KemSecretKey {
    /// A fresh random key.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self(Kem::gen_keypair(rng).0)
    }

    /// RFC 9180 §7.1.3 `DeriveKeyPair(ikm)`: lets a firmware derive its KEM key from a seed, and
    /// lets tests reproduce the RFC's vectors.
    pub fn derive(ikm: &[u8]) -> Self {
        Self(Kem::derive_keypair(ikm).0)
    }

    /// Rebuilds a key from its 32 bytes (X25519 clamps, so every 32-byte string is a key).
    pub fn from_bytes(bytes: &[u8; KEM_KEY_LEN]) -> Self {
        // Deserialising 32 bytes into an X25519 key cannot fail; the length is the only check.
        match <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes) {
            Ok(sk) => Self(sk),
            Err(_) => unreachable!("a 32-byte X25519 private key always deserialises"),
        }
    }

    /// The secret bytes, for persistence only.
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEM_KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; KEM_KEY_LEN]);
        // write_exact instead of to_bytes: the latter returns a GenericArray nobody zeroizes.
        self.0.write_exact(out.as_mut_slice());
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> [u8; KEM_KEY_LEN] {
        let mut out = [0u8; KEM_KEY_LEN];
        Kem::sk_to_pk(&self.0).write_exact(&mut out);
        out
    }
}

/// What [`seal`] produces.
pub struct SealOutput {
    /// The encapsulated key, sent beside the ciphertext.
    pub enc: [u8; ENC_LEN],
    /// Ciphertext with the 16-byte tag appended.
    pub ciphertext: Vec<u8>,
    /// `Export(export_context, 32)` of this message's context.
    pub exported: Zeroizing<[u8; EXPORT_LEN]>,
}

/// What [`open`] produces.
pub struct OpenOutput {
    /// The decrypted message.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// `Export(export_context, 32)` of this message's context; equal to the sender's.
    pub exported: Zeroizing<[u8; EXPORT_LEN]>,
}

/// Single-shot base-mode seal (RFC 9180 §6.1 `SealBase` followed by one `Export`).
///
/// `rng` supplies the ephemeral key; it is the only source of freshness, so it must be a CSPRNG.
pub fn seal<R: CryptoRng + RngCore>(
    recipient: &[u8; KEM_KEY_LEN],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    export_context: &[u8],
    rng: &mut R,
) -> Result<SealOutput, SuiteError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient).map_err(|_| SuiteError::Encap)?;
    // hpke's DH rejects an all-zero shared secret (RFC 9180 §7.1.4) with EncapError.
    let (encapped, mut ctx) =
        hpke::setup_sender::<Aead, Kdf, Kem, R>(&OpModeS::Base, &pk, info, rng)
            .map_err(|e| map_err(e, SuiteError::Encap))?;
    let ciphertext = ctx
        .seal(plaintext, aad)
        .map_err(|e| map_err(e, SuiteError::Encap))?;
    let mut exported = Zeroizing::new([0u8; EXPORT_LEN]);
    ctx.export(export_context, exported.as_mut_slice())
        .map_err(|e| map_err(e, SuiteError::Encap))?;
    let mut enc = [0u8; ENC_LEN];
    encapped.write_exact(&mut enc);
    Ok(SealOutput {
        enc,
        ciphertext,
        exported,
    })
}

/// Single-shot base-mode open (RFC 9180 §6.1 `OpenBase` followed by one `Export`).
pub fn open(
    secret: &KemSecretKey,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    export_context: &[u8],
) -> Result<OpenOutput, SuiteError> {
    let encapped =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| SuiteError::Decap)?;
    // hpke's DH rejects an all-zero shared secret (a low-order `enc`) with DecapError.
    let mut ctx =
        hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, &secret.0, &encapped, info)
            .map_err(|e| map_err(e, SuiteError::Decap))?;
    let plaintext = Zeroizing::new(
        ctx.open(ciphertext, aad)
            .map_err(|e| map_err(e, SuiteError::Decrypt))?,
    );
    let mut exported = Zeroizing::new([0u8; EXPORT_LEN]);
    ctx.export(export_context, exported.as_mut_slice())
        .map_err(|e| map_err(e, SuiteError::Decrypt))?;
    Ok(OpenOutput {
        plaintext,
        exported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn seal_then_open_round_trips_and_exports_agree() {
        let mut rng = StdRng::seed_from_u64(1);
        let sk = KemSecretKey::generate(&mut rng);
        let out = seal(
            &sk.public_key(),
            b"info",
            b"aad",
            b"secret",
            b"ctx",
            &mut rng,
        )
        .unwrap();
        let back = open(&sk, &out.enc, b"info", b"aad", &out.ciphertext, b"ctx").unwrap();
        assert_eq!(back.plaintext.as_slice(), b"secret");
        assert_eq!(*back.exported, *out.exported);
    }

    #[test]
    fn two_seals_of_the_same_message_differ() {
        // Fresh ephemeral per seal: the property that makes nonce reuse impossible.
        let mut rng = StdRng::seed_from_u64(2);
        let sk = KemSecretKey::generate(&mut rng);
        let a = seal(&sk.public_key(), b"i", b"a", b"p", b"c", &mut rng).unwrap();
        let b = seal(&sk.public_key(), b"i", b"a", b"p", b"c", &mut rng).unwrap();
        assert_ne!(a.enc, b.enc);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_ne!(*a.exported, *b.exported);
    }

    #[test]
    fn wrong_info_or_aad_fails_to_open() {
        let mut rng = StdRng::seed_from_u64(3);
        let sk = KemSecretKey::generate(&mut rng);
        let out = seal(
            &sk.public_key(),
            b"info",
            b"aad",
            b"secret",
            b"ctx",
            &mut rng,
        )
        .unwrap();
        let e = open(&sk, &out.enc, b"other", b"aad", &out.ciphertext, b"ctx").err();
        assert_eq!(e, Some(SuiteError::Decrypt));
        let e = open(&sk, &out.enc, b"info", b"other", &out.ciphertext, b"ctx").err();
        assert_eq!(e, Some(SuiteError::Decrypt));
    }

    #[test]
    fn all_zero_shared_secret_is_rejected_both_ways() {
        let mut rng = StdRng::seed_from_u64(4);
        let sk = KemSecretKey::generate(&mut rng);
        // u = 0 and u = 1 are low-order points: X25519 with them is all zeros.
        for low in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let e = seal(&low, b"i", b"a", b"p", b"c", &mut rng).err();
            assert_eq!(e, Some(SuiteError::Encap));
            let e = open(&sk, &low, b"i", b"a", &[0u8; 32], b"c").err();
            assert_eq!(e, Some(SuiteError::Decap));
        }
    }

    #[test]
    fn secret_key_bytes_round_trip() {
        let mut rng = StdRng::seed_from_u64(5);
        let sk = KemSecretKey::generate(&mut rng);
        let again = KemSecretKey::from_bytes(&sk.to_bytes());
        assert_eq!(sk.public_key(), again.public_key());
    }
}
