//! RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base
//! mode, run through keyproto's own HPKE layer (`keyproto::suite`). The values are copied from
//! the RFC (the same file the CFRG publishes as test-vectors.json). Only the first encryption
//! (sequence 0) applies: keyproto is single-shot, so it never uses a later nonce.

use keyproto::suite::{self, KemSecretKey};
use rand::{CryptoRng, RngCore};

const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
const IKM_R: &str = "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df";
const IKM_E: &str = "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b";
const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
const SK_EM: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
const PK_EM: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
/// Encryption 0: sequence number 0.
const AAD_0: &str = "436f756e742d30";
const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
const CT_0: &str =
    "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";
/// Exported values, L = 32, for exporter contexts "", 0x00 and "TestContext".
const EXPORTS: [(&str, &str); 3] = [
    (
        "",
        "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e",
    ),
    (
        "00",
        "8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69",
    ),
    (
        "54657374436f6e74657874",
        "5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53",
    ),
];

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().expect("32-byte test vector")
}

/// Hands out the vector's ephemeral IKM as "randomness". The hpke crate draws exactly 32 bytes
/// of IKM and runs DeriveKeyPair on them, as RFC 9180 does, so this reproduces skEm. Marked
/// CryptoRng only because the API demands one; it exists solely for this known-answer test.
struct VectorRng(Vec<u8>);

impl RngCore for VectorRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!("HPKE draws bytes, not integers")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("HPKE draws bytes, not integers")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert_eq!(dest.len(), self.0.len(), "unexpected draw size");
        dest.copy_from_slice(&self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for VectorRng {}

#[test]
fn derive_key_pair_matches_vectors() {
    let r = KemSecretKey::derive(&h(IKM_R));
    assert_eq!(*r.to_bytes(), h32(SK_RM));
    assert_eq!(r.public_key(), h32(PK_RM));
    let e = KemSecretKey::derive(&h(IKM_E));
    assert_eq!(*e.to_bytes(), h32(SK_EM));
    assert_eq!(e.public_key(), h32(PK_EM));
}

#[test]
fn seal_matches_vector_ciphertext_enc_and_exports() {
    for (ctx, exported) in EXPORTS {
        let mut rng = VectorRng(h(IKM_E));
        let out = suite::seal(&h32(PK_RM), &h(INFO), &h(AAD_0), &h(PT), &h(ctx), &mut rng).unwrap();
        assert_eq!(out.enc, h32(PK_EM), "enc is the ephemeral public key");
        assert_eq!(out.ciphertext, h(CT_0));
        assert_eq!(*out.exported, h32(exported), "export with context {ctx:?}");
    }
}

#[test]
fn open_matches_vector_plaintext_and_exports() {
    let sk = KemSecretKey::derive(&h(IKM_R));
    for (ctx, exported) in EXPORTS {
        let out = suite::open(&sk, &h(PK_EM), &h(INFO), &h(AAD_0), &h(CT_0), &h(ctx)).unwrap();
        assert_eq!(out.plaintext.as_slice(), h(PT).as_slice());
        assert_eq!(*out.exported, h32(exported));
    }
}

#[test]
fn vector_ciphertext_with_any_bit_flipped_does_not_open() {
    let sk = KemSecretKey::derive(&h(IKM_R));
    let ct = h(CT_0);
    for bit in 0..ct.len() * 8 {
        let mut bad = ct.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            suite::open(&sk, &h(PK_EM), &h(INFO), &h(AAD_0), &bad, b"").err(),
            Some(suite::SuiteError::Decrypt)
        );
    }
}
