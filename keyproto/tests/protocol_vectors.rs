//! The test vectors printed in PROTOCOL.md, recomputed: a firmware author checks their key
//! against these bytes, so they must be exactly what this crate produces, and the document must
//! quote them exactly.

use ed25519_dalek::SigningKey;
use keyproto::ack::{self, AckStatus};
use keyproto::envelope::{self, Credential, DeliveryId, EnvelopeHeader, TrustAnchor};
use keyproto::framing::{Command, ble, hid};
use keyproto::identity::{KeySecrets, TenantId};
use keyproto::suite;
use rand::{CryptoRng, RngCore};
use secrecy::SecretString;

/// Hands out a fixed ephemeral IKM, so the envelope is reproducible. Test-only.
struct FixedIkm([u8; 32]);
impl RngCore for FixedIkm {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for FixedIkm {}

fn seq(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

struct Vectors {
    values: Vec<(&'static str, String)>,
}

fn compute() -> Vectors {
    let mut secrets = [0u8; 64];
    secrets.copy_from_slice(&seq(0x01, 64));
    let keys = KeySecrets::from_bytes(&secrets).unwrap();
    let id = keys.identity().clone();
    let server = SigningKey::from_bytes(&seq(0x41, 32).try_into().unwrap());
    let tenant = TenantId(seq(0x70, 16).try_into().unwrap());
    let delivery = DeliveryId(seq(0x80, 16).try_into().unwrap());
    let header = EnvelopeHeader::new(
        tenant,
        id.key_id(),
        delivery,
        1,
        "alice",
        1_750_000_000,
        1_750_086_400,
    )
    .unwrap();
    let cred = Credential::new(
        "CORP\\alice",
        SecretString::from("correct horse battery staple".to_owned()),
        1_749_999_990,
    )
    .unwrap();
    let mut rng = FixedIkm(seq(0xa0, 32).try_into().unwrap());
    let sealed = envelope::seal(&server, &id, &header, &cred, &mut rng).unwrap();
    let trust = TrustAnchor {
        tenant,
        server_key: server.verifying_key(),
    };
    let opened = envelope::open(&keys, &trust, &sealed.envelope, 1_750_000_000).unwrap();
    let ack = ack::sign(&keys, &opened, AckStatus::Stored, 1);
    ack::verify(&sealed.receipt, &id, &ack).unwrap();
    // Independently rebuild `info` from its documented layout and open the envelope with the
    // bare HPKE layer: proves the document's info/AAD/offsets, not just the crate's round trip.
    let mut info = b"LATCHKEY-HPKE-V1".to_vec();
    info.push(1);
    info.extend_from_slice(tenant.as_bytes());
    info.extend_from_slice(id.key_id().as_bytes());
    let header_len = header.encode().len();
    let enc = &sealed.envelope[header_len..header_len + 32];
    let ct_len = usize::from(u16::from_be_bytes([
        sealed.envelope[header_len + 32],
        sealed.envelope[header_len + 33],
    ]));
    let ct = &sealed.envelope[header_len + 34..header_len + 34 + ct_len];
    let kem = suite::KemSecretKey::from_bytes(&secrets[..32].try_into().unwrap());
    let bare = suite::open(
        &kem,
        enc,
        &info,
        &header.encode(),
        ct,
        b"LATCHKEY-ACK-PROOF-V1",
    )
    .unwrap();
    assert_eq!(
        &ack[82..114],
        bare.exported.as_slice(),
        "ack carries the export"
    );
    let refusal_hid = hid::encode(0x0102_0304, Command::Refusal, &[0x08]).unwrap();
    let refusal_ble = ble::encode(20, Command::Refusal, &[0x08]).unwrap();
    Vectors {
        values: vec![
            ("key_kem_secret", h(&secrets[..32])),
            ("key_sig_seed", h(&secrets[32..])),
            ("key_kem_public", h(id.kem_public_key())),
            ("key_sig_public", h(id.sig_public_key().as_bytes())),
            ("key_id", h(id.key_id().as_bytes())),
            ("server_seed", h(seq(0x41, 32))),
            ("server_public", h(server.verifying_key().as_bytes())),
            ("tenant", h(tenant.as_bytes())),
            ("delivery_id", h(delivery.as_bytes())),
            ("ikm_e", h(seq(0xa0, 32))),
            ("info", h(&info)),
            ("header", h(header.encode())),
            ("plaintext", h(bare.plaintext.as_slice())),
            ("proof", h(bare.exported.as_slice())),
            ("envelope", h(&sealed.envelope)),
            ("envelope_hash", h(sealed.receipt.envelope_hash)),
            ("proof_digest", h(sealed.receipt.proof_digest)),
            ("ack", h(&ack)),
            ("refusal_hid_report", h(refusal_hid[0])),
            ("refusal_ble_fragment", h(&refusal_ble[0])),
        ],
    }
}

#[test]
fn protocol_md_quotes_the_vectors_this_crate_produces() {
    let doc = include_str!("../PROTOCOL.md");
    // The document wraps long hex over lines; compare with whitespace removed.
    let flat: String = doc.chars().filter(|c| !c.is_whitespace()).collect();
    let v = compute();
    let mut missing = Vec::new();
    for (name, value) in &v.values {
        if !flat.contains(value.as_str()) {
            missing.push(format!("{name} = {value}"));
        }
    }
    assert!(
        missing.is_empty(),
        "PROTOCOL.md is missing or misquotes:\n{}",
        missing.join("\n")
    );
}
