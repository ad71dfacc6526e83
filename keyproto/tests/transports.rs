//! Envelopes and acks over both transports, end to end: the server seals, the workstation frames
//! the envelope, the key reassembles, answers and frames its ack, the workstation reassembles
//! and the server verifies. BLE for every MTU from 20 to 512; HID for envelopes of every size
//! class. The key side is the crate's pure key functions (open, then sign the ack), so these run
//! without the `sim` feature; the refusal path needs the software key.

#[path = "support/world.rs"]
mod world;

use keyproto::ack::{self, AckStatus};
use keyproto::envelope;
use keyproto::framing::{Command, DEFAULT_MAX_MESSAGE_LEN, Message, ble, hid};
use world::{T0, World};

/// The key: opens the envelope it was handed and answers with its signed ack.
fn key_answer(w: &World, msg: &Message, counter: u64) -> Message {
    assert_eq!(msg.command, Command::Envelope);
    let opened = envelope::open(&w.keys, &w.trust(), &msg.payload, T0).unwrap();
    Message {
        command: Command::Ack,
        payload: ack::sign(&w.keys, &opened, AckStatus::Stored, counter),
    }
}

fn over_ble(mtu: usize, msg: &Message) -> Message {
    let fragments = ble::encode(mtu, msg.command, &msg.payload).unwrap();
    assert!(fragments.iter().all(|f| !f.is_empty() && f.len() <= mtu));
    let mut r = ble::BleReassembler::new(mtu, DEFAULT_MAX_MESSAGE_LEN).unwrap();
    let (last, init) = fragments.split_last().unwrap();
    for f in init {
        assert_eq!(f.len(), mtu, "every fragment but the last is full");
        assert_eq!(r.push(f).unwrap(), None);
    }
    r.push(last)
        .unwrap()
        .expect("last fragment completes the message")
}

fn over_hid(cid: u32, msg: &Message) -> Message {
    let reports = hid::encode(cid, msg.command, &msg.payload).unwrap();
    let mut r = hid::HidReassembler::new(cid, DEFAULT_MAX_MESSAGE_LEN);
    let (last, init) = reports.split_last().unwrap();
    for rep in init {
        assert_eq!(r.push(rep).unwrap(), None);
    }
    r.push(last)
        .unwrap()
        .expect("last report completes the message")
}

#[test]
fn ble_round_trip_for_every_mtu_20_to_512() {
    let mut w = World::new(300);
    for mtu in ble::MIN_MTU..=ble::MAX_MTU {
        let sealed = w.seal("alice", mtu as u64, &format!("password-for-mtu-{mtu}"));
        let to_key = Message {
            command: Command::Envelope,
            payload: sealed.envelope.clone(),
        };
        let received = over_ble(mtu, &to_key);
        assert_eq!(received, to_key, "mtu {mtu}");
        let answer = key_answer(&w, &received, mtu as u64);
        let back = over_ble(mtu, &answer);
        assert_eq!(back, answer);
        let v = ack::verify(&sealed.receipt, &w.identity(), &back.payload).unwrap();
        assert_eq!((v.sequence, v.key_counter), (mtu as u64, mtu as u64));
    }
}

#[test]
fn hid_round_trip_for_every_envelope_size_class() {
    let mut w = World::new(301);
    let cid = 0xCAFE_0001;
    // Password lengths that move the ciphertext across padding blocks, and slot lengths that
    // move the boundaries between reports.
    let mut seq = 0;
    for slot_len in [1usize, 20, 57, 128] {
        for pw_len in [1usize, 40, 100, 300, 512] {
            seq += 1;
            let slot = "s".repeat(slot_len);
            let sealed = w.seal(&slot, seq, &"p".repeat(pw_len));
            let to_key = Message {
                command: Command::Envelope,
                payload: sealed.envelope.clone(),
            };
            let received = over_hid(cid, &to_key);
            assert_eq!(received, to_key);
            let answer = key_answer(&w, &received, seq);
            let back = over_hid(cid, &answer);
            ack::verify(&sealed.receipt, &w.identity(), &back.payload).unwrap();
        }
    }
}

#[cfg(feature = "sim")]
#[test]
fn a_refusal_travels_back_as_a_one_byte_code() {
    let mut w = World::new(302);
    let mut key = w.software_key();
    let sealed = w.seal("alice", 1, "pw");
    let late = Message {
        command: Command::Envelope,
        payload: sealed.envelope,
    };
    let answer = key.respond(&over_hid(7, &late), T0 + 30 * world::DAY);
    let back = over_ble(20, &answer);
    assert_eq!(back.command, Command::Refusal);
    assert_eq!(back.payload, vec![0x08], "expired");

    // The software key answers an acceptable envelope with its ack, over the same path.
    let fresh = w.seal("alice", 2, "pw2");
    let msg = Message {
        command: Command::Envelope,
        payload: fresh.envelope,
    };
    let answer = over_ble(20, &key.respond(&over_hid(7, &msg), T0));
    assert_eq!(answer.command, Command::Ack);
    ack::verify(&fresh.receipt, &w.identity(), &answer.payload).unwrap();
}
