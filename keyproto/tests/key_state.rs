//! The software key's state machine: sequence numbers per slot, replay memory, the repeat ack,
//! the clock floor, provisioning and the key file.

#![cfg(feature = "sim")]

#[path = "support/world.rs"]
mod world;

use keyproto::ack;
use keyproto::envelope::{EnvelopeError, EnvelopeHeader};
use keyproto::identity::TenantId;
use keyproto::softkey::{KeyError, RECENT_DELIVERIES, SoftwareKey};
use rand::{SeedableRng, rngs::StdRng};
use secrecy::ExposeSecret;
use world::{DAY, T0, World};

#[test]
fn stores_the_newest_password_and_acks_it() {
    let mut w = World::new(200);
    let mut key = w.software_key();
    let first = w.seal("alice", 1, "one");
    let a1 = key.receive(&first.envelope, T0).unwrap();
    ack::verify(&first.receipt, &w.identity(), &a1).unwrap();
    let second = w.seal("alice", 2, "two");
    let a2 = key.receive(&second.envelope, T0).unwrap();
    let v = ack::verify(&second.receipt, &w.identity(), &a2).unwrap();
    assert_eq!(v.key_counter, 2);
    let stored = key.credential("alice").unwrap();
    assert_eq!(stored.password().expose_secret(), "two");
    assert_eq!(
        key.credential_for_account("alice")
            .unwrap()
            .password()
            .expose_secret(),
        "two"
    );
    assert_eq!(key.slots().collect::<Vec<_>>(), vec![("alice", 2)]);
}

#[test]
fn repeat_of_the_last_envelope_gets_the_same_ack() {
    let mut w = World::new(201);
    let mut key = w.software_key();
    let sealed = w.seal("alice", 1, "pw");
    let a = key.receive(&sealed.envelope, T0).unwrap();
    // The ack was lost on the way; the workstation sends the envelope again, even later.
    let b = key.receive(&sealed.envelope, T0 + 5 * DAY).unwrap();
    assert_eq!(a, b);
    assert_eq!(key.counter(), 1, "a repeat signs nothing new");
}

#[test]
fn reordered_older_envelope_is_stale() {
    let mut w = World::new(202);
    let mut key = w.software_key();
    let older = w.seal("alice", 1, "old");
    let newer = w.seal("alice", 2, "new");
    key.receive(&newer.envelope, T0).unwrap();
    let e = key.receive(&older.envelope, T0).unwrap_err();
    assert!(
        matches!(e, KeyError::Stale { sequence: 1, current: 2, ref slot } if slot == "alice"),
        "{e:?}"
    );
    assert_eq!(
        key.credential("alice").unwrap().password().expose_secret(),
        "new"
    );
}

#[test]
fn replay_of_an_applied_envelope_is_replayed() {
    let mut w = World::new(203);
    let mut key = w.software_key();
    let first = w.seal("alice", 1, "old");
    let second = w.seal("alice", 2, "new");
    key.receive(&first.envelope, T0).unwrap();
    key.receive(&second.envelope, T0).unwrap();
    let e = key.receive(&first.envelope, T0).unwrap_err();
    assert!(matches!(e, KeyError::Replayed(id) if id == World::delivery_id("alice", 1)));
    assert_eq!(
        key.credential("alice").unwrap().password().expose_secret(),
        "new"
    );
}

#[test]
fn replay_memory_is_bounded_and_older_replays_are_still_refused() {
    let mut w = World::new(204);
    let mut key = w.software_key();
    let envelopes: Vec<_> = (1..=RECENT_DELIVERIES as u64 + 2)
        .map(|seq| w.seal("alice", seq, "pw"))
        .collect();
    for e in &envelopes {
        key.receive(&e.envelope, T0).unwrap();
    }
    // The oldest fell out of the replay memory: still refused, as stale.
    assert!(matches!(
        key.receive(&envelopes[0].envelope, T0),
        Err(KeyError::Stale { .. })
    ));
    assert!(matches!(
        key.receive(&envelopes[envelopes.len() - 2].envelope, T0),
        Err(KeyError::Replayed(_))
    ));
}

#[test]
fn sequence_reuse_with_a_different_envelope_is_stale() {
    let mut w = World::new(205);
    let mut key = w.software_key();
    let a = w.seal("alice", 1, "a");
    key.receive(&a.envelope, T0).unwrap();
    // A buggy server seals another delivery with the same sequence.
    let header = EnvelopeHeader::new(
        w.tenant,
        w.identity().key_id(),
        World::delivery_id("other", 1),
        1,
        "alice",
        T0,
        T0 + DAY,
    )
    .unwrap();
    let b = w.seal_header(&header, "b");
    assert!(matches!(
        key.receive(&b.envelope, T0),
        Err(KeyError::Stale {
            sequence: 1,
            current: 1,
            ..
        })
    ));
}

#[test]
fn slots_are_independent() {
    let mut w = World::new(206);
    let mut key = w.software_key();
    key.receive(&w.seal("alice", 5, "a").envelope, T0).unwrap();
    key.receive(&w.seal("bob", 1, "b").envelope, T0).unwrap();
    assert_eq!(
        key.credential("bob").unwrap().password().expose_secret(),
        "b"
    );
    assert_eq!(
        key.credential("alice").unwrap().password().expose_secret(),
        "a"
    );
}

#[test]
fn expired_mis_addressed_wrong_tenant_and_tampered_are_distinct() {
    let mut w = World::new(207);
    let mut key = w.software_key();
    let sealed = w.seal("alice", 1, "pw");

    assert!(matches!(
        key.receive(&sealed.envelope, T0 + DAY + 1),
        Err(KeyError::Envelope(EnvelopeError::Expired { .. }))
    ));

    // Another key, trusting the same tenant and server, is handed this key's envelope.
    let mut other = World::new(208);
    other.server = w.server.clone();
    let mut other_key = other.software_key();
    let e = other_key.receive(&sealed.envelope, T0).unwrap_err();
    assert!(matches!(
        e,
        KeyError::Envelope(EnvelopeError::WrongKey { .. })
    ));

    let mut foreign = World::new(209);
    foreign.tenant = TenantId([0x01; 16]);
    foreign.server = w.server.clone();
    foreign.keys = keyproto::identity::KeySecrets::from_bytes(&w.keys.to_bytes()).unwrap();
    let e = key
        .receive(&foreign.seal("alice", 9, "pw").envelope, T0)
        .unwrap_err();
    assert!(matches!(
        e,
        KeyError::Envelope(EnvelopeError::WrongTenant { .. })
    ));

    let mut tampered = sealed.envelope.clone();
    let n = tampered.len();
    tampered[n - 70] ^= 1;
    let e = key.receive(&tampered, T0).unwrap_err();
    assert!(matches!(
        e,
        KeyError::Envelope(EnvelopeError::BadServerSignature)
    ));

    // Codes a firmware would send in a Refusal frame: all different.
    let codes = [
        KeyError::Envelope(EnvelopeError::Expired {
            not_after: 0,
            now: 1,
        })
        .refusal_code(),
        KeyError::Envelope(EnvelopeError::WrongKey {
            expected: w.identity().key_id(),
            found: w.identity().key_id(),
        })
        .refusal_code(),
        KeyError::Envelope(EnvelopeError::WrongTenant {
            expected: w.tenant,
            found: w.tenant,
        })
        .refusal_code(),
        KeyError::Envelope(EnvelopeError::BadServerSignature).refusal_code(),
        KeyError::Stale {
            slot: String::new(),
            sequence: 0,
            current: 0,
        }
        .refusal_code(),
        KeyError::Replayed(World::delivery_id("a", 1)).refusal_code(),
        KeyError::Envelope(EnvelopeError::UnsupportedSuite {
            kem: 0,
            kdf: 0,
            aead: 0,
        })
        .refusal_code(),
        KeyError::NotProvisioned.refusal_code(),
    ];
    let mut unique = codes.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());

    // Nothing refused was stored.
    assert!(key.credential("alice").is_none());
}

#[test]
fn a_relay_turning_its_clock_back_cannot_revive_an_expired_envelope() {
    let mut w = World::new(210);
    let mut key = w.software_key();
    // An envelope for bob that expires at T0 + DAY, withheld by the relay.
    let withheld = w.seal("bob", 1, "pw");
    // Later the key accepts an envelope issued two days on.
    let header = EnvelopeHeader::new(
        w.tenant,
        w.identity().key_id(),
        World::delivery_id("alice", 1),
        1,
        "alice",
        T0 + 2 * DAY,
        T0 + 3 * DAY,
    )
    .unwrap();
    key.receive(&w.seal_header(&header, "pw").envelope, T0 + 2 * DAY)
        .unwrap();
    // The relay now claims it is T0.
    assert!(matches!(
        key.receive(&withheld.envelope, T0),
        Err(KeyError::Envelope(EnvelopeError::Expired { now, .. })) if now == T0 + 2 * DAY
    ));
}

#[test]
fn unprovisioned_key_refuses_and_provisioning_is_pinned() {
    let mut w = World::new(211);
    let mut rng = StdRng::seed_from_u64(1);
    let mut blank = SoftwareKey::generate("SIM-BLANK", &mut rng).unwrap();
    let sealed = w.seal("alice", 1, "pw");
    assert!(matches!(
        blank.receive(&sealed.envelope, T0),
        Err(KeyError::NotProvisioned)
    ));
    blank.provision(w.trust()).unwrap();
    blank.provision(w.trust()).unwrap();
    let other = World::new(212);
    assert!(matches!(
        blank.provision(other.trust()),
        Err(KeyError::AlreadyProvisioned)
    ));
    assert!(SoftwareKey::generate("", &mut rng).is_err());
}

#[test]
fn key_file_round_trips_everything() {
    let mut w = World::new(213);
    let mut key = w.software_key();
    let first = w.seal("alice", 1, "pw-a");
    let ack_first = key.receive(&first.envelope, T0).unwrap();
    key.receive(&w.seal("bob", 4, "pw-b").envelope, T0).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.lk");
    key.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut loaded = SoftwareKey::load(&path).unwrap();
    assert_eq!(loaded.identity(), key.identity());
    assert_eq!(loaded.serial(), "SIM-0001");
    assert_eq!(loaded.trust(), key.trust());
    assert_eq!(loaded.counter(), 2);
    assert_eq!(
        loaded.credential("bob").unwrap().password().expose_secret(),
        "pw-b"
    );
    // State survived: the repeat ack, the sequence, the replay memory.
    assert_eq!(loaded.receive(&first.envelope, T0).unwrap(), ack_first);
    assert!(matches!(
        loaded.receive(&w.seal("bob", 3, "x").envelope, T0),
        Err(KeyError::Stale { .. })
    ));
    assert_eq!(loaded.to_bytes().as_slice(), key.to_bytes().as_slice());
}

#[test]
fn corrupt_key_files_are_refused_not_panicked_on() {
    let mut w = World::new(214);
    let mut key = w.software_key();
    key.receive(&w.seal("alice", 1, "pw").envelope, T0).unwrap();
    let good = key.to_bytes();
    for cut in 0..good.len() {
        assert!(
            SoftwareKey::from_bytes(&good[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut extra = good.to_vec();
    extra.push(0);
    assert!(matches!(
        SoftwareKey::from_bytes(&extra),
        Err(KeyError::Corrupt(_))
    ));
}
