//! framing: how envelopes, acks and refusals cross the wire between workstation and key, over
//! USB HID ([`hid`], CTAPHID-style 64-byte reports) and BLE ([`ble`], CTAP-over-BLE-style
//! fragments sized to the negotiated MTU).
//!
//! It owns the commands, the fragment layouts and strict reassembly: declared lengths are capped
//! before anything is buffered, sequence numbers must be exactly the next one, and a message that
//! is torn, duplicated, reordered, truncated or oversize is an error, never a guess. It must never
//! look inside a payload (that is `envelope` and `ack`), and never allocate more than the cap a
//! caller set, whatever a length field claims.

pub mod ble;
pub mod hid;

use crate::envelope::MAX_ENVELOPE_LEN;

/// Default cap on a reassembled message: room for the largest envelope with margin, far below
/// what the length fields could claim (7609 on HID, 65535 on BLE).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 2048;
const _: () = assert!(DEFAULT_MAX_MESSAGE_LEN >= MAX_ENVELOPE_LEN);

/// What a message is. On the wire the command byte has its high bit set (`0x80 | value`), which
/// is how an initial packet or fragment is told from a continuation. Values sit in CTAPHID's
/// vendor range 0x40..=0x7F so they can share a channel with FIDO traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    /// Workstation → key: a sealed envelope.
    Envelope = 0x40,
    /// Key → workstation: a signed ack.
    Ack = 0x41,
    /// Key → workstation: the key refused the envelope; payload is a one-byte reason code.
    Refusal = 0x42,
}

impl Command {
    /// The command for a wire value (without the high bit).
    pub fn from_value(v: u8) -> Option<Self> {
        match v {
            0x40 => Some(Self::Envelope),
            0x41 => Some(Self::Ack),
            0x42 => Some(Self::Refusal),
            _ => None,
        }
    }

    /// The byte that opens an initial packet or fragment.
    pub fn wire_byte(self) -> u8 {
        0x80 | self as u8
    }
}

/// A reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What it is.
    pub command: Command,
    /// Its payload, exactly as many bytes as the initial packet declared.
    pub payload: Vec<u8>,
}

/// Why a packet or fragment was refused. Unless stated otherwise, the reassembler discards any
/// partial message on error: the sender must start again from the initial packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An HID report that is not exactly 64 bytes.
    #[error("HID report must be 64 bytes, got {0}")]
    ReportLength(usize),
    /// A BLE fragment that is empty or longer than the MTU.
    #[error("BLE fragment of {len} bytes does not fit MTU {mtu}")]
    FragmentLength {
        /// Fragment length.
        len: usize,
        /// The MTU.
        mtu: usize,
    },
    /// An MTU outside 20..=512.
    #[error("MTU {0} is outside 20..=512")]
    InvalidMtu(usize),
    /// An initial packet whose command this protocol does not define.
    #[error("unknown command {0:#04x}")]
    UnknownCommand(u8),
    /// A report for another channel. The message in progress, if any, is kept.
    #[error("report for channel {found:#010x}, this reassembler serves {expected:#010x}")]
    WrongChannel {
        /// This reassembler's channel.
        expected: u32,
        /// The report's channel.
        found: u32,
    },
    /// An initial packet arrived while a message was still incomplete: the earlier message was
    /// cut short. Both are discarded.
    #[error("message torn: a new message began before the previous one completed")]
    Torn,
    /// A continuation with no message in progress.
    #[error("continuation without an initial packet")]
    OrphanContinuation,
    /// The previous sequence number again: a duplicated packet or fragment.
    #[error("duplicate continuation (sequence {0})")]
    Duplicate(u8),
    /// A sequence number other than the next one: lost or reordered packets.
    #[error("continuation out of order: expected sequence {expected}, got {found}")]
    OutOfOrder {
        /// The sequence number wanted.
        expected: u8,
        /// The one received.
        found: u8,
    },
    /// A declared length above the cap (or, when encoding, above what the transport can carry).
    #[error("message of {len} bytes exceeds the limit of {max}")]
    Oversize {
        /// Declared or given length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A BLE fragment shorter than the MTU before the message is complete (truncated).
    #[error("fragment truncated: {len} bytes where {expected} were due")]
    ShortFragment {
        /// Fragment length.
        len: usize,
        /// Length it should have had.
        expected: usize,
    },
    /// A BLE fragment carrying more bytes than the message has left.
    #[error("fragment overruns the message: {len} bytes where {expected} were due")]
    Overrun {
        /// Fragment length.
        len: usize,
        /// Length it should have had.
        expected: usize,
    },
    /// Non-zero bytes after the end of the message in the last HID report.
    #[error("non-zero padding after the message")]
    NonZeroPadding,
}

/// State shared by both reassemblers: a message in progress.
#[derive(Debug)]
struct Partial {
    command: Command,
    total: usize,
    payload: Vec<u8>,
    next_seq: u8,
    continuations: usize,
}

impl Partial {
    fn new(command: Command, total: usize, first: &[u8]) -> Self {
        // `total` was checked against the cap before we get here, so this allocation is bounded.
        let mut payload = Vec::with_capacity(total);
        payload.extend_from_slice(first);
        Self {
            command,
            total,
            payload,
            next_seq: 0,
            continuations: 0,
        }
    }

    fn remaining(&self) -> usize {
        self.total - self.payload.len()
    }

    fn check_seq(&self, found: u8) -> Result<(), FrameError> {
        let expected = self.next_seq;
        if found == expected {
            return Ok(());
        }
        // The sequence number just consumed repeats: a duplicate. Before the first continuation
        // there is no previous one (`next_seq` 0 then means "none yet", not "wrapped").
        let previous = if expected == 0 { 0x7f } else { expected - 1 };
        if self.continuations > 0 && found == previous {
            Err(FrameError::Duplicate(found))
        } else {
            Err(FrameError::OutOfOrder { expected, found })
        }
    }

    fn push_continuation(&mut self, data: &[u8]) {
        self.payload.extend_from_slice(data);
        self.continuations += 1;
        // Sequence numbers are seven bits; BLE wraps 0x7F -> 0x00 (HID never gets that far).
        self.next_seq = (self.next_seq + 1) & 0x7f;
    }

    fn into_message(self) -> Message {
        Message {
            command: self.command,
            payload: self.payload,
        }
    }
}

/// Parses the command byte of an initial packet (high bit set).
fn command_of(b: u8) -> Result<Command, FrameError> {
    Command::from_value(b & 0x7f).ok_or(FrameError::UnknownCommand(b))
}
