//! fuzzing: the entry points shared by the cargo-fuzz targets (`keyproto/fuzz`) and the corpus
//! regression test (`tests/fuzz_corpus.rs`), so both exercise exactly the same code. Not part of
//! the API (hidden from the docs).
//!
//! Each function feeds arbitrary bytes to one parser and asserts the properties that must hold
//! for every input: no panic, and whatever parses re-encodes to the very same bytes (one encoding
//! per message, so nothing can be smuggled in an alternative form). It must never do I/O.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;

use crate::ack::{self, Ack};
use crate::envelope::{Credential, Envelope, SealReceipt, TrustAnchor};
use crate::framing::{DEFAULT_MAX_MESSAGE_LEN, FrameError, ble, hid};
use crate::identity::{KeyIdentity, KeySecrets, TenantId};

struct Fixture {
    identity: KeyIdentity,
    trust: TrustAnchor,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Fixed, public test material: the fuzzer must find its way past the addressing checks
        // to the signature check, which no input can pass.
        let mut secrets = [7u8; 64];
        secrets[32..].fill(9);
        let identity = match KeySecrets::from_bytes(&secrets) {
            Ok(k) => k.identity().clone(),
            Err(_) => unreachable!("fixed fuzzing key is valid"),
        };
        let trust = TrustAnchor {
            tenant: TenantId([1; 16]),
            server_key: SigningKey::from_bytes(&[3; 32]).verifying_key(),
        };
        Fixture { identity, trust }
    })
}

/// Envelope parser, then verification (which must fail: nobody has the server key), and the
/// plaintext decoder on the same bytes.
pub fn envelope(data: &[u8]) {
    let f = fixture();
    if let Ok(env) = Envelope::parse(data) {
        assert_eq!(env.as_bytes(), data);
        let header = env.header().encode();
        assert_eq!(&data[..header.len()], header.as_slice());
        assert!(env.verify(&f.identity, &f.trust).is_err());
    }
    if let Ok(c) = Credential::decode(data) {
        assert_eq!(c.encode().as_slice(), data);
    }
}

/// Ack parser, then server-side verification (which must fail: nobody has the key's secret).
pub fn ack(data: &[u8]) {
    let f = fixture();
    if let Ok(a) = Ack::parse(data) {
        assert_eq!(a.encode(), data);
        let receipt = SealReceipt {
            key_id: f.identity.key_id(),
            delivery_id: a.delivery_id,
            sequence: a.sequence,
            envelope_hash: a.envelope_hash,
            proof_digest: [0; 32],
        };
        assert!(ack::verify(&receipt, &f.identity, data).is_err());
    }
}

/// HID reassembly of `data` cut into 64-byte reports (the last one possibly short), on the
/// channel named by the first four bytes. Every completed message must re-encode to exactly the
/// reports that carried it.
pub fn hid_frames(data: &[u8]) {
    let Some(cid) = data.get(..4) else { return };
    let cid = u32::from_be_bytes([cid[0], cid[1], cid[2], cid[3]]);
    let mut r = hid::HidReassembler::new(cid, DEFAULT_MAX_MESSAGE_LEN);
    let mut carried: Vec<u8> = Vec::new();
    for report in data.chunks(hid::REPORT_LEN) {
        match r.push(report) {
            Ok(None) => carried.extend_from_slice(report),
            Ok(Some(msg)) => {
                carried.extend_from_slice(report);
                assert!(msg.payload.len() <= DEFAULT_MAX_MESSAGE_LEN);
                let again = hid::encode(cid, msg.command, &msg.payload).map(|v| v.concat());
                assert_eq!(again.as_deref(), Ok(carried.as_slice()));
                carried.clear();
            }
            Err(FrameError::WrongChannel { .. }) => {}
            Err(_) => carried.clear(),
        }
        assert_eq!(r.in_progress(), !carried.is_empty());
    }
}

/// BLE reassembly: the first two bytes pick the MTU (20..=512), then each fragment is a 16-bit
/// length (reduced modulo MTU + 2, so short, exact and over-long fragments all occur) followed
/// by that many bytes.
pub fn ble_frames(data: &[u8]) {
    let [m0, m1, tail @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = tail;
    let m = usize::from(u16::from_be_bytes([*m0, *m1]));
    let mtu = ble::MIN_MTU + m % (ble::MAX_MTU - ble::MIN_MTU + 1);
    let Ok(mut r) = ble::BleReassembler::new(mtu, DEFAULT_MAX_MESSAGE_LEN) else {
        unreachable!("mtu is in range by construction")
    };
    let mut carried: Vec<Vec<u8>> = Vec::new();
    while let [h, l, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*h, *l])) % (mtu + 2);
        let (fragment, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        match r.push(fragment) {
            Ok(None) => carried.push(fragment.to_vec()),
            Ok(Some(msg)) => {
                carried.push(fragment.to_vec());
                assert!(msg.payload.len() <= DEFAULT_MAX_MESSAGE_LEN);
                let again = ble::encode(mtu, msg.command, &msg.payload);
                assert_eq!(again.as_ref(), Ok(&carried));
                carried.clear();
            }
            Err(_) => carried.clear(),
        }
        assert_eq!(r.in_progress(), !carried.is_empty());
    }
}
