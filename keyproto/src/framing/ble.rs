//! ble: CTAP-over-BLE-style fragments sized to the negotiated MTU (the key's control point
//! length).
//!
//! First fragment: `CMD(1, high bit set) | HLEN | LLEN | data`; then `SEQ(1) | data`, SEQ
//! counting 0..=0x7F and wrapping to 0. Every fragment but the last is exactly MTU bytes; the
//! last carries exactly what is left. It owns encoding and strict reassembly; it must never
//! accept a fragment longer than the MTU, a short fragment before the end, or a declared length
//! above its cap.

use super::{Command, FrameError, Message, Partial, command_of};

/// Smallest MTU (fragment size) supported: BLE's default ATT MTU of 23 less its 3-byte header.
pub const MIN_MTU: usize = 20;
/// Largest MTU (fragment size) supported.
pub const MAX_MTU: usize = 512;
/// The most the 16-bit length field can declare.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

fn check_mtu(mtu: usize) -> Result<(), FrameError> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(FrameError::InvalidMtu(mtu))
    }
}

/// Splits `payload` into fragments of at most `mtu` bytes.
pub fn encode(mtu: usize, command: Command, payload: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    check_mtu(mtu)?;
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(FrameError::Oversize {
            len: payload.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let first = payload.len().min(mtu - 3);
    let mut init = Vec::with_capacity(3 + first);
    init.push(command.wire_byte());
    // Fits: checked against u16::MAX above.
    init.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    init.extend_from_slice(&payload[..first]);
    let mut fragments = vec![init];
    for (i, chunk) in payload[first..].chunks(mtu - 1).enumerate() {
        let mut cont = Vec::with_capacity(1 + chunk.len());
        cont.push((i & 0x7f) as u8);
        cont.extend_from_slice(chunk);
        fragments.push(cont);
    }
    Ok(fragments)
}

/// Reassembles messages from fragments, one at a time.
#[derive(Debug)]
pub struct BleReassembler {
    mtu: usize,
    max_len: usize,
    partial: Option<Partial>,
}

impl BleReassembler {
    /// A reassembler for fragments of at most `mtu` bytes that refuses messages longer than
    /// `max_len`.
    pub fn new(mtu: usize, max_len: usize) -> Result<Self, FrameError> {
        check_mtu(mtu)?;
        Ok(Self {
            mtu,
            max_len: max_len.min(MAX_MESSAGE_LEN),
            partial: None,
        })
    }

    /// Whether a message has begun and not completed.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Feeds one fragment. Returns the message once its last fragment arrives. Any error
    /// discards the partial message.
    pub fn push(&mut self, fragment: &[u8]) -> Result<Option<Message>, FrameError> {
        let result = self.accept(fragment);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    fn accept(&mut self, fragment: &[u8]) -> Result<Option<Message>, FrameError> {
        let mtu = self.mtu;
        let (&b, data) = fragment
            .split_first()
            .ok_or(FrameError::FragmentLength { len: 0, mtu })?;
        if fragment.len() > mtu {
            return Err(FrameError::FragmentLength {
                len: fragment.len(),
                mtu,
            });
        }
        if b & 0x80 != 0 {
            if self.partial.is_some() {
                return Err(FrameError::Torn);
            }
            let command = command_of(b)?;
            let [hlen, llen, data @ ..] = data else {
                return Err(FrameError::ShortFragment {
                    len: fragment.len(),
                    expected: 3,
                });
            };
            let total = usize::from(u16::from_be_bytes([*hlen, *llen]));
            if total > self.max_len {
                return Err(FrameError::Oversize {
                    len: total,
                    max: self.max_len,
                });
            }
            check_fragment_len(data.len(), total.min(mtu - 3), 3)?;
            if total == data.len() {
                return Ok(Some(Message {
                    command,
                    payload: data.to_vec(),
                }));
            }
            self.partial = Some(Partial::new(command, total, data));
            return Ok(None);
        }
        let partial = self
            .partial
            .as_mut()
            .ok_or(FrameError::OrphanContinuation)?;
        partial.check_seq(b)?;
        check_fragment_len(data.len(), partial.remaining().min(mtu - 1), 1)?;
        partial.push_continuation(data);
        if partial.remaining() == 0 {
            return Ok(self.partial.take().map(Partial::into_message));
        }
        Ok(None)
    }
}

/// A fragment must carry exactly what is due: a full MTU's worth, or the rest of the message.
fn check_fragment_len(data_len: usize, due: usize, header: usize) -> Result<(), FrameError> {
    let (len, expected) = (data_len + header, due + header);
    match data_len.cmp(&due) {
        core::cmp::Ordering::Equal => Ok(()),
        core::cmp::Ordering::Less => Err(FrameError::ShortFragment { len, expected }),
        core::cmp::Ordering::Greater => Err(FrameError::Overrun { len, expected }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(mtu: usize, frags: &[Vec<u8>]) -> Result<Option<Message>, FrameError> {
        let mut r = BleReassembler::new(mtu, MAX_MESSAGE_LEN)?;
        let mut out = None;
        for f in frags {
            out = r.push(f)?;
        }
        Ok(out)
    }

    #[test]
    fn sequence_wraps_after_0x7f() {
        // 20-byte MTU: 17 bytes in the first fragment, 19 in each continuation; 200
        // continuations need the sequence to wrap once.
        let payload: Vec<u8> = (0..17 + 19 * 200).map(|i| i as u8).collect();
        let frags = encode(20, Command::Envelope, &payload).unwrap();
        assert_eq!(frags.len(), 201);
        assert_eq!(frags[128][0], 0x7f);
        assert_eq!(frags[129][0], 0x00);
        let msg = reassemble(20, &frags).unwrap().unwrap();
        assert_eq!(msg.payload, payload);
    }

    #[test]
    fn invalid_mtus_are_refused() {
        for mtu in [0, 19, 513] {
            assert_eq!(
                encode(mtu, Command::Ack, b"x"),
                Err(FrameError::InvalidMtu(mtu))
            );
            assert!(BleReassembler::new(mtu, 100).is_err());
        }
    }

    #[test]
    fn strict_reassembly_errors() {
        let payload = vec![0x5A; 100];
        let frags = encode(20, Command::Ack, &payload).unwrap();
        let mk = || BleReassembler::new(20, 2048).unwrap();

        let mut r = mk();
        r.push(&frags[0]).unwrap();
        r.push(&frags[1]).unwrap();
        assert_eq!(r.push(&frags[1]), Err(FrameError::Duplicate(0)));

        let mut r = mk();
        r.push(&frags[0]).unwrap();
        assert_eq!(
            r.push(&frags[2]),
            Err(FrameError::OutOfOrder {
                expected: 0,
                found: 1
            })
        );

        let mut r = mk();
        r.push(&frags[0]).unwrap();
        assert_eq!(r.push(&frags[0]), Err(FrameError::Torn));

        let mut r = mk();
        assert_eq!(r.push(&frags[1]), Err(FrameError::OrphanContinuation));

        // Truncated middle fragment.
        let mut r = mk();
        r.push(&frags[0]).unwrap();
        assert_eq!(
            r.push(&frags[1][..10]),
            Err(FrameError::ShortFragment {
                len: 10,
                expected: 20
            })
        );

        // Last fragment with extra bytes.
        let mut r = mk();
        for f in &frags[..frags.len() - 1] {
            r.push(f).unwrap();
        }
        let mut last = frags.last().unwrap().clone();
        last.push(0);
        assert!(matches!(r.push(&last), Err(FrameError::Overrun { .. })));

        // Fragment longer than the MTU; empty fragment.
        let mut r = mk();
        assert!(matches!(
            r.push(&[0u8; 21]),
            Err(FrameError::FragmentLength { len: 21, mtu: 20 })
        ));
        assert!(matches!(
            r.push(&[]),
            Err(FrameError::FragmentLength { len: 0, .. })
        ));

        // Declared length above the cap, refused before buffering.
        let mut r = BleReassembler::new(20, 50).unwrap();
        assert_eq!(
            r.push(&frags[0]),
            Err(FrameError::Oversize { len: 100, max: 50 })
        );
    }
}
