//! hid: CTAPHID-style framing over 64-byte USB HID reports.
//!
//! Initial report: `CID(4) | CMD(1, high bit set) | BCNT(2, big-endian) | data(57)`;
//! continuation: `CID(4) | SEQ(1, 0..=0x7F) | data(59)`; the last report is zero-padded. It owns
//! encoding and strict reassembly for one channel; it must never accept a report of another
//! length, another channel's data, or a declared length above its cap.

use super::{Command, FrameError, Message, Partial, command_of};

/// Size of every HID report.
pub const REPORT_LEN: usize = 64;
/// Payload bytes in the initial report.
pub const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Payload bytes in a continuation report.
pub const CONT_DATA_LEN: usize = REPORT_LEN - 5;
/// The most a CTAPHID message can carry: the initial report plus 128 continuations.
pub const MAX_MESSAGE_LEN: usize = INIT_DATA_LEN + 128 * CONT_DATA_LEN;

/// Splits `payload` into reports for channel `cid`.
pub fn encode(
    cid: u32,
    command: Command,
    payload: &[u8],
) -> Result<Vec<[u8; REPORT_LEN]>, FrameError> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(FrameError::Oversize {
            len: payload.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let mut reports = Vec::new();
    let mut init = [0u8; REPORT_LEN];
    init[..4].copy_from_slice(&cid.to_be_bytes());
    init[4] = command.wire_byte();
    // Fits: checked against MAX_MESSAGE_LEN (7609) above.
    init[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    let first = payload.len().min(INIT_DATA_LEN);
    init[7..7 + first].copy_from_slice(&payload[..first]);
    reports.push(init);
    for (seq, chunk) in payload[first..].chunks(CONT_DATA_LEN).enumerate() {
        let mut cont = [0u8; REPORT_LEN];
        cont[..4].copy_from_slice(&cid.to_be_bytes());
        // At most 128 continuations (MAX_MESSAGE_LEN), so seq stays within 0..=0x7F.
        cont[4] = seq as u8;
        cont[5..5 + chunk.len()].copy_from_slice(chunk);
        reports.push(cont);
    }
    Ok(reports)
}

/// Reassembles the messages of one channel, one report at a time.
#[derive(Debug)]
pub struct HidReassembler {
    cid: u32,
    max_len: usize,
    partial: Option<Partial>,
}

impl HidReassembler {
    /// A reassembler for channel `cid` that refuses messages longer than `max_len` (never more
    /// than [`MAX_MESSAGE_LEN`]).
    pub fn new(cid: u32, max_len: usize) -> Self {
        Self {
            cid,
            max_len: max_len.min(MAX_MESSAGE_LEN),
            partial: None,
        }
    }

    /// Whether a message has begun and not completed.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Feeds one report. Returns the message once its last report arrives.
    pub fn push(&mut self, report: &[u8]) -> Result<Option<Message>, FrameError> {
        if report.len() != REPORT_LEN {
            self.partial = None;
            return Err(FrameError::ReportLength(report.len()));
        }
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        if cid != self.cid {
            // Another channel's traffic is not ours to tear: keep our message.
            return Err(FrameError::WrongChannel {
                expected: self.cid,
                found: cid,
            });
        }
        let result = self.accept(report);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    fn accept(&mut self, report: &[u8]) -> Result<Option<Message>, FrameError> {
        let b = report[4];
        if b & 0x80 != 0 {
            if self.partial.is_some() {
                return Err(FrameError::Torn);
            }
            let command = command_of(b)?;
            let total = usize::from(u16::from_be_bytes([report[5], report[6]]));
            if total > self.max_len {
                return Err(FrameError::Oversize {
                    len: total,
                    max: self.max_len,
                });
            }
            let data = &report[7..];
            if total <= INIT_DATA_LEN {
                check_padding(&data[total..])?;
                return Ok(Some(Message {
                    command,
                    payload: data[..total].to_vec(),
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
        let data = &report[5..];
        let take = partial.remaining().min(CONT_DATA_LEN);
        check_padding(&data[take..])?;
        partial.push_continuation(&data[..take]);
        if partial.remaining() == 0 {
            return Ok(self.partial.take().map(Partial::into_message));
        }
        Ok(None)
    }
}

/// The tail of the last report must be zeros: then every message has exactly one encoding, and
/// a flipped bit anywhere in the reports is noticed.
fn check_padding(tail: &[u8]) -> Result<(), FrameError> {
    if tail.iter().all(|&b| b == 0) {
        Ok(())
    } else {
        Err(FrameError::NonZeroPadding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: u32 = 0x1122_3344;

    fn reassemble(reports: &[[u8; REPORT_LEN]]) -> Result<Option<Message>, FrameError> {
        let mut r = HidReassembler::new(CID, MAX_MESSAGE_LEN);
        let mut out = None;
        for rep in reports {
            out = r.push(rep)?;
        }
        Ok(out)
    }

    #[test]
    fn round_trips_every_boundary() {
        for len in [0, 1, 56, 57, 58, 115, 116, 117, 1026, 2048, MAX_MESSAGE_LEN] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let reports = encode(CID, Command::Envelope, &payload).unwrap();
            let expect = 1 + len.saturating_sub(INIT_DATA_LEN).div_ceil(CONT_DATA_LEN);
            assert_eq!(reports.len(), expect, "len {len}");
            let msg = reassemble(&reports).unwrap().unwrap();
            assert_eq!(msg.command, Command::Envelope);
            assert_eq!(msg.payload, payload);
        }
    }

    #[test]
    fn too_long_to_encode() {
        assert!(matches!(
            encode(CID, Command::Ack, &vec![0; MAX_MESSAGE_LEN + 1]),
            Err(FrameError::Oversize { .. })
        ));
    }

    #[test]
    fn strict_reassembly_errors() {
        let payload = vec![0xAB; 200];
        let reports = encode(CID, Command::Envelope, &payload).unwrap();
        assert_eq!(reports.len(), 4);

        // Duplicate continuation.
        let mut r = HidReassembler::new(CID, 2048);
        r.push(&reports[0]).unwrap();
        r.push(&reports[1]).unwrap();
        assert_eq!(r.push(&reports[1]), Err(FrameError::Duplicate(0)));
        assert!(!r.in_progress(), "errors discard the partial message");

        // Reordered (lost) continuation.
        let mut r = HidReassembler::new(CID, 2048);
        r.push(&reports[0]).unwrap();
        assert_eq!(
            r.push(&reports[2]),
            Err(FrameError::OutOfOrder {
                expected: 0,
                found: 1
            })
        );

        // Torn: a new message starts before the last one finished.
        let mut r = HidReassembler::new(CID, 2048);
        r.push(&reports[0]).unwrap();
        assert_eq!(r.push(&reports[0]), Err(FrameError::Torn));

        // Orphan continuation.
        let mut r = HidReassembler::new(CID, 2048);
        assert_eq!(r.push(&reports[1]), Err(FrameError::OrphanContinuation));

        // Oversize declared length is refused before buffering.
        let mut r = HidReassembler::new(CID, 100);
        assert_eq!(
            r.push(&reports[0]),
            Err(FrameError::Oversize { len: 200, max: 100 })
        );

        // Wrong report size, wrong channel, unknown command, non-zero padding.
        let mut r = HidReassembler::new(CID, 2048);
        assert_eq!(r.push(&[0u8; 63]), Err(FrameError::ReportLength(63)));
        r.push(&reports[0]).unwrap();
        let mut other = reports[1];
        other[0] ^= 1;
        assert!(matches!(
            r.push(&other),
            Err(FrameError::WrongChannel { .. })
        ));
        assert!(r.in_progress(), "another channel does not tear ours");
        r.push(&reports[1]).unwrap();
        r.push(&reports[2]).unwrap();
        let mut last = reports[3];
        last[63] = 1;
        assert_eq!(r.push(&last), Err(FrameError::NonZeroPadding));

        let mut bad_cmd = reports[0];
        bad_cmd[4] = 0x80 | 0x10;
        let mut r = HidReassembler::new(CID, 2048);
        assert_eq!(r.push(&bad_cmd), Err(FrameError::UnknownCommand(0x90)));
    }
}
