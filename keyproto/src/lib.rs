//! keyproto: how Latchkey gets a password onto a hardware key without anyone in between being
//! able to read it, and how the server learns that the key really has it.
//!
//! The server [`envelope::seal`]s a [`envelope::Credential`] to the key's public identity
//! ([`identity::KeyIdentity`]) with HPKE (RFC 9180, base mode, single shot) and signs the result;
//! it keeps only a [`envelope::SealReceipt`], which cannot decrypt anything. The key opens the
//! envelope ([`envelope::open`]), stores the credential and answers with an [`ack`] signed by its
//! own Ed25519 key and carrying an HPKE-exported proof that it opened exactly that envelope. The
//! server checks that ack with [`ack::verify`]. [`framing`] carries both messages over USB HID
//! reports and BLE fragments. With feature `sim`, `softkey` is a complete key in software.
//!
//! This crate owns the byte formats (documented for firmware authors in `PROTOCOL.md`) and the
//! checks on them. It must never do I/O (the one exception is the software key's file under
//! feature `sim`), never depend on another workspace crate, and never let a secret reach a
//! `Debug`, `Display` or error message.

#![forbid(unsafe_code)]

pub mod ack;
pub mod envelope;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
#[cfg(feature = "sim")]
pub mod softkey;
pub mod suite;
mod wire;

/// Version byte that opens every envelope, ack and the HPKE `info`. A firmware that sees any
/// other value refuses the message rather than guessing at its layout.
pub const PROTOCOL_VERSION: u8 = 1;
