//! Property: flipping any single bit of an envelope (header, enc, ciphertext or signature) or of
//! an ack makes it be refused. Nothing in either format is unauthenticated.

#[path = "support/world.rs"]
mod world;

use std::sync::OnceLock;

use keyproto::ack::{self, AckStatus};
use keyproto::envelope::{self, HEADER_FIXED_LEN, SealedDelivery};
use keyproto::identity::KeyIdentity;
use keyproto::suite::ENC_LEN;
use proptest::prelude::*;
use world::{T0, World};

struct Fixture {
    world: World,
    sealed: SealedDelivery,
    ack: Vec<u8>,
    identity: KeyIdentity,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut world = World::new(100);
        let sealed = world.seal("alice", 3, "Tr0ub4dor&3");
        let opened = envelope::open(&world.keys, &world.trust(), &sealed.envelope, T0).unwrap();
        let ack = ack::sign(&world.keys, &opened, AckStatus::Stored, 9);
        let identity = world.identity();
        Fixture {
            world,
            sealed,
            ack,
            identity,
        }
    })
}

/// Region boundaries of the fixture envelope: header, enc, ciphertext (with its length), sig.
fn regions() -> [std::ops::Range<usize>; 4] {
    let len = fixture().sealed.envelope.len();
    let header = HEADER_FIXED_LEN + "alice".len();
    [
        0..header,
        header..header + ENC_LEN,
        header + ENC_LEN..len - 64,
        len - 64..len,
    ]
}

fn flipped(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    v
}

fn envelope_flip_is_refused(region: usize, pick: prop::sample::Index) {
    let f = fixture();
    let r = regions()[region].clone();
    let bit = r.start * 8 + pick.index(r.len() * 8);
    let bad = flipped(&f.sealed.envelope, bit);
    let result = envelope::open(&f.world.keys, &f.world.trust(), &bad, T0);
    assert!(
        result.is_err(),
        "bit {bit} flipped in region {region} was accepted"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bit_flip_in_header_is_refused(pick: prop::sample::Index) {
        envelope_flip_is_refused(0, pick);
    }

    #[test]
    fn any_bit_flip_in_enc_is_refused(pick: prop::sample::Index) {
        envelope_flip_is_refused(1, pick);
    }

    #[test]
    fn any_bit_flip_in_ciphertext_is_refused(pick: prop::sample::Index) {
        envelope_flip_is_refused(2, pick);
    }

    #[test]
    fn any_bit_flip_in_signature_is_refused(pick: prop::sample::Index) {
        envelope_flip_is_refused(3, pick);
    }

    #[test]
    fn any_bit_flip_in_ack_is_refused(pick: prop::sample::Index) {
        let f = fixture();
        let bit = pick.index(f.ack.len() * 8);
        let bad = flipped(&f.ack, bit);
        prop_assert!(ack::verify(&f.sealed.receipt, &f.identity, &bad).is_err());
    }
}

#[test]
fn unflipped_fixture_is_accepted() {
    // Guards the properties above against passing vacuously.
    let f = fixture();
    envelope::open(&f.world.keys, &f.world.trust(), &f.sealed.envelope, T0).unwrap();
    ack::verify(&f.sealed.receipt, &f.identity, &f.ack).unwrap();
}

#[test]
fn every_single_bit_flip_is_refused_exhaustively() {
    // The envelope and ack are small enough to try every bit, not just a sample.
    let f = fixture();
    for bit in 0..f.sealed.envelope.len() * 8 {
        let bad = flipped(&f.sealed.envelope, bit);
        assert!(
            envelope::open(&f.world.keys, &f.world.trust(), &bad, T0).is_err(),
            "envelope bit {bit}"
        );
    }
    for bit in 0..f.ack.len() * 8 {
        let bad = flipped(&f.ack, bit);
        assert!(
            ack::verify(&f.sealed.receipt, &f.identity, &bad).is_err(),
            "ack bit {bit}"
        );
    }
}
