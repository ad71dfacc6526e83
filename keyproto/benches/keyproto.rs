//! What a delivery costs: the server's seal, the key's open (parse, signature, decrypt), the
//! key's ack, the server's ack verify, and framing one envelope over HID and BLE.
//! Run with `cargo bench -p keyproto`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use keyproto::ack::{self, AckStatus};
use keyproto::envelope::{self, Credential, DeliveryId, EnvelopeHeader, TrustAnchor};
use keyproto::framing::{Command, DEFAULT_MAX_MESSAGE_LEN, ble, hid};
use keyproto::identity::{KeySecrets, TenantId};
use rand::{SeedableRng, rngs::StdRng};
use secrecy::SecretString;

const NOW: u64 = 1_750_000_000;

fn benches(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let server = SigningKey::generate(&mut rng);
    let keys = KeySecrets::generate(&mut rng);
    let identity = keys.identity().clone();
    let tenant = TenantId([1; 16]);
    let trust = TrustAnchor {
        tenant,
        server_key: server.verifying_key(),
    };
    let header = EnvelopeHeader::new(
        tenant,
        identity.key_id(),
        DeliveryId([2; 16]),
        1,
        "CORP\\alice",
        NOW,
        NOW + 86_400,
    )
    .unwrap();
    let cred = Credential::new(
        "alice@corp.example",
        SecretString::from("Tr0ub4dor&3-horse-staple".to_owned()),
        NOW,
    )
    .unwrap();
    let sealed = envelope::seal(&server, &identity, &header, &cred, &mut rng).unwrap();
    let opened = envelope::open(&keys, &trust, &sealed.envelope, NOW).unwrap();
    let ack_bytes = ack::sign(&keys, &opened, AckStatus::Stored, 1);

    c.bench_function("seal (server: HPKE seal + Ed25519 sign)", |b| {
        b.iter(|| envelope::seal(&server, &identity, &header, &cred, &mut rng).unwrap())
    });
    c.bench_function("open (key: parse + verify + HPKE open)", |b| {
        b.iter(|| envelope::open(&keys, &trust, black_box(&sealed.envelope), NOW).unwrap())
    });
    c.bench_function("ack sign (key)", |b| {
        b.iter(|| ack::sign(&keys, black_box(&opened), AckStatus::Stored, 1))
    });
    c.bench_function("ack verify (server)", |b| {
        b.iter(|| ack::verify(&sealed.receipt, &identity, black_box(&ack_bytes)).unwrap())
    });
    c.bench_function("HID frame + reassemble envelope", |b| {
        b.iter(|| {
            let reports = hid::encode(1, Command::Envelope, black_box(&sealed.envelope)).unwrap();
            let mut r = hid::HidReassembler::new(1, DEFAULT_MAX_MESSAGE_LEN);
            reports.iter().filter_map(|x| r.push(x).unwrap()).count()
        })
    });
    c.bench_function("BLE (MTU 20) frame + reassemble envelope", |b| {
        b.iter(|| {
            let frags = ble::encode(20, Command::Envelope, black_box(&sealed.envelope)).unwrap();
            let mut r = ble::BleReassembler::new(20, DEFAULT_MAX_MESSAGE_LEN).unwrap();
            frags.iter().filter_map(|x| r.push(x).unwrap()).count()
        })
    });
}

criterion_group!(keyproto_benches, benches);
criterion_main!(keyproto_benches);
