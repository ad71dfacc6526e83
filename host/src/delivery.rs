//! `delivery`: the key sync queue seen from the workflow and the workstations — sealing a
//! password to a key (`seal`), waking the workstations that wait for a key (`waker`, in
//! process and through PostgreSQL's NOTIFY across replicas), and verifying a key's ack before
//! the store marks a delivery delivered and deletes its ciphertext (`ack`).
//!
//! It owns keyproto's use on the server: envelope headers, sequence numbers, receipts, ack
//! verification. The states and their transitions live in `store` (deliveries). It must never
//! keep a plaintext password beyond the seal call, nor mark a delivery delivered without an ack
//! the key signed for exactly that envelope.

pub mod ack;
pub mod seal;
pub mod waker;

pub use ack::{AckError, AckVerifier, verify_ack};
pub use seal::{SealError, Sealed, seal_for_key};
pub use waker::Waker;
