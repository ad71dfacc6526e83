//! The server seals, the key opens and acks, the server verifies: and every way a relay, a
//! wrong configuration or a downgrade can break that is refused with its own error.

#[path = "support/world.rs"]
mod world;

use keyproto::ack::{self, Ack, AckError, AckStatus};
use keyproto::envelope::{
    self, EnvelopeError, EnvelopeHeader, MAX_ACCOUNT_LEN, MAX_ENVELOPE_LEN, MAX_PASSWORD_LEN,
    MAX_SLOT_LEN, SealReceipt, TrustAnchor,
};
use keyproto::identity::TenantId;
use secrecy::{ExposeSecret, SecretString};
use world::{DAY, T0, World};

#[test]
fn sealed_password_reaches_the_key_and_the_ack_verifies() {
    let mut w = World::new(1);
    let sealed = w.seal("alice", 1, "Correct horse 1!");
    let opened = envelope::open(&w.keys, &w.trust(), &sealed.envelope, T0 + 60).unwrap();
    assert_eq!(opened.credential().account(), "alice");
    assert_eq!(
        opened.credential().password().expose_secret(),
        "Correct horse 1!"
    );
    assert_eq!(opened.credential().set_at(), T0);
    assert_eq!(opened.header().sequence(), 1);
    assert_eq!(opened.envelope_hash(), sealed.receipt.envelope_hash);

    let ack_bytes = ack::sign(&w.keys, &opened, AckStatus::Stored, 7);
    // The server stores the receipt as bytes and verifies later, holding nothing secret.
    let receipt = SealReceipt::from_bytes(&sealed.receipt.to_bytes()).unwrap();
    let v = ack::verify(&receipt, &w.identity(), &ack_bytes).unwrap();
    assert_eq!(v.delivery_id, World::delivery_id("alice", 1));
    assert_eq!((v.sequence, v.key_counter), (1, 7));
}

#[test]
fn password_is_not_visible_in_the_envelope() {
    let mut w = World::new(2);
    let sealed = w.seal("alice", 1, "VisiblePassw0rd");
    let needle = b"VisiblePassw0rd";
    assert!(!sealed.envelope.windows(needle.len()).any(|x| x == needle));
}

#[test]
fn largest_envelope_fits_the_declared_maximum() {
    let mut w = World::new(3);
    let slot = "s".repeat(MAX_SLOT_LEN);
    let header = w.header(&slot, 1);
    let cred = World::credential(&"a".repeat(MAX_ACCOUNT_LEN), &"p".repeat(MAX_PASSWORD_LEN));
    let sealed = envelope::seal(&w.server, &w.identity(), &header, &cred, &mut w.rng).unwrap();
    assert_eq!(sealed.envelope.len(), MAX_ENVELOPE_LEN);
    envelope::open(&w.keys, &w.trust(), &sealed.envelope, T0).unwrap();
}

#[test]
fn seal_refuses_a_header_for_another_key() {
    let mut w = World::new(4);
    let other = World::new(5);
    let header = other.header("alice", 1);
    let cred = World::credential("alice", "pw");
    let e = envelope::seal(&w.server, &w.identity(), &header, &cred, &mut w.rng).err();
    assert_eq!(e, Some(EnvelopeError::RecipientMismatch));
}

#[test]
fn suite_downgrade_is_refused_even_when_signed() {
    let mut w = World::new(6);
    let sealed = w.seal("alice", 1, "pw");
    // AEAD id at offset 5..7 -> AES-128-GCM (0x0001); KDF at 3..5 -> HKDF-SHA512 (0x0003);
    // KEM at 1..3 -> P-256 (0x0010).
    for (offset, value) in [(5usize, 0x0001u16), (3, 0x0003), (1, 0x0010)] {
        let mut bytes = sealed.envelope.clone();
        bytes[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
        for candidate in [bytes.clone(), w.resign(bytes)] {
            let e = envelope::open(&w.keys, &w.trust(), &candidate, T0)
                .err()
                .unwrap();
            assert!(
                matches!(e, EnvelopeError::UnsupportedSuite { .. }),
                "offset {offset}: {e:?}"
            );
        }
    }
    let mut bytes = sealed.envelope.clone();
    bytes[0] = 2;
    assert_eq!(
        envelope::open(&w.keys, &w.trust(), &bytes, T0).err(),
        Some(EnvelopeError::UnsupportedVersion(2))
    );
}

#[test]
fn envelope_for_another_key_is_mis_addressed() {
    let mut w = World::new(7);
    let other = World::new(8);
    let sealed = w.seal("alice", 1, "pw");
    let e = envelope::open(&other.keys, &w.trust(), &sealed.envelope, T0).err();
    assert_eq!(
        e,
        Some(EnvelopeError::WrongKey {
            expected: other.identity().key_id(),
            found: w.identity().key_id(),
        })
    );
}

#[test]
fn envelope_for_another_tenant_is_refused() {
    let mut w = World::new(9);
    let sealed = w.seal("alice", 1, "pw");
    let elsewhere = TrustAnchor {
        tenant: TenantId([0x11; 16]),
        ..w.trust()
    };
    assert_eq!(
        envelope::open(&w.keys, &elsewhere, &sealed.envelope, T0).err(),
        Some(EnvelopeError::WrongTenant {
            expected: TenantId([0x11; 16]),
            found: w.tenant,
        })
    );
}

#[test]
fn tenant_is_bound_into_hpke_info_not_only_the_header() {
    // A server (or anyone holding its signing key) relabels an envelope for another tenant and
    // re-signs it: the header check passes, but the HPKE key schedule does not.
    let mut w = World::new(10);
    let sealed = w.seal("alice", 1, "pw");
    let mut bytes = sealed.envelope.clone();
    bytes[7..23].copy_from_slice(&[0x22; 16]);
    let bytes = w.resign(bytes);
    let other_tenant = TrustAnchor {
        tenant: TenantId([0x22; 16]),
        ..w.trust()
    };
    assert_eq!(
        envelope::open(&w.keys, &other_tenant, &bytes, T0).err(),
        Some(EnvelopeError::DecryptFailed)
    );
}

#[test]
fn expired_envelope_is_refused() {
    let mut w = World::new(11);
    let sealed = w.seal("alice", 1, "pw");
    assert_eq!(
        envelope::open(&w.keys, &w.trust(), &sealed.envelope, T0 + DAY + 1).err(),
        Some(EnvelopeError::Expired {
            not_after: T0 + DAY,
            now: T0 + DAY + 1
        })
    );
    // The last second is still good.
    envelope::open(&w.keys, &w.trust(), &sealed.envelope, T0 + DAY).unwrap();
}

#[test]
fn tampering_is_caught_by_signature_then_by_aead() {
    let mut w = World::new(12);
    let sealed = w.seal("alice", 1, "pw");
    let mut bytes = sealed.envelope.clone();
    let ct_byte = bytes.len() - 64 - 5;
    bytes[ct_byte] ^= 0x40;
    assert_eq!(
        envelope::open(&w.keys, &w.trust(), &bytes, T0).err(),
        Some(EnvelopeError::BadServerSignature)
    );
    // Even a validly signed altered ciphertext does not decrypt.
    let bytes = w.resign(bytes);
    assert_eq!(
        envelope::open(&w.keys, &w.trust(), &bytes, T0).err(),
        Some(EnvelopeError::DecryptFailed)
    );
    // A signature from any other key is refused.
    let impostor = World::new(13);
    assert_eq!(
        envelope::open(
            &w.keys,
            &w.trust(),
            &impostor.resign(sealed.envelope.clone()),
            T0
        )
        .err(),
        Some(EnvelopeError::BadServerSignature)
    );
}

#[test]
fn relay_cannot_forge_an_ack() {
    let mut w = World::new(14);
    let sealed = w.seal("alice", 1, "pw");
    let opened = envelope::open(&w.keys, &w.trust(), &sealed.envelope, T0).unwrap();
    let genuine = ack::sign(&w.keys, &opened, AckStatus::Stored, 1);

    // The relay signs an ack with a key of its own, naming the right key id and fields.
    let relay = World::new(15);
    let mut forged = Ack::parse(&genuine).unwrap();
    let forged_sig = {
        use ed25519_dalek::Signer;
        let body = &forged.encode()[..178 - 64];
        relay
            .server
            .sign(&[b"LATCHKEY-ACK-V1".as_slice(), body].concat())
    };
    forged.signature = forged_sig;
    assert_eq!(
        ack::verify(&sealed.receipt, &w.identity(), &forged.encode()),
        Err(AckError::BadSignature)
    );

    // The relay edits a genuine ack (counter, status byte kept valid).
    let mut edited = genuine.clone();
    edited[74 + 7] ^= 1;
    assert_eq!(
        ack::verify(&sealed.receipt, &w.identity(), &edited),
        Err(AckError::BadSignature)
    );

    // An ack from another enrolled key.
    let other = World::new(16);
    assert!(matches!(
        ack::verify(&sealed.receipt, &other.identity(), &genuine),
        Err(AckError::WrongKey { .. })
    ));

    ack::verify(&sealed.receipt, &w.identity(), &genuine).unwrap();
}

#[test]
fn old_ack_replayed_against_a_newer_delivery_is_caught() {
    let mut w = World::new(17);
    let first = w.seal("alice", 1, "first");
    let opened = envelope::open(&w.keys, &w.trust(), &first.envelope, T0).unwrap();
    let old_ack = ack::sign(&w.keys, &opened, AckStatus::Stored, 1);

    // The server seals a newer password; the relay withholds it and posts the old ack.
    let second = w.seal("alice", 2, "second");
    assert_eq!(
        ack::verify(&second.receipt, &w.identity(), &old_ack),
        Err(AckError::WrongDelivery {
            expected: World::delivery_id("alice", 2),
            found: World::delivery_id("alice", 1),
        })
    );

    // Same delivery id re-sealed (a retry): the old ack names another envelope and proof.
    let header = w.header("alice", 1);
    let resealed = w.seal_header(&header, "first");
    assert_eq!(
        ack::verify(&resealed.receipt, &w.identity(), &old_ack),
        Err(AckError::WrongEnvelope)
    );
}

#[test]
fn header_fields_round_trip_through_the_wire() {
    let mut w = World::new(18);
    let header = EnvelopeHeader::new(
        w.tenant,
        w.identity().key_id(),
        World::delivery_id("x", 42),
        42,
        "CORP\\bob",
        T0 - 5,
        T0 + 5,
    )
    .unwrap();
    let cred = keyproto::envelope::Credential::new(
        "bob@corp.example",
        SecretString::from("ünïcødé pässwörd".to_owned()),
        T0 - 6,
    )
    .unwrap();
    let sealed = envelope::seal(&w.server, &w.identity(), &header, &cred, &mut w.rng).unwrap();
    let parsed = envelope::Envelope::parse(&sealed.envelope).unwrap();
    assert_eq!(parsed.header(), &header);
    let opened = envelope::open(&w.keys, &w.trust(), &sealed.envelope, T0).unwrap();
    assert_eq!(opened.credential().account(), "bob@corp.example");
    assert_eq!(
        opened.credential().password().expose_secret(),
        "ünïcødé pässwörd"
    );
    assert_eq!(opened.credential().set_at(), T0 - 6);
}
