//! `store`: everything Latchkey keeps in its database — tenants, operators and admins with their
//! tokens, connectors with their sealed secrets, employees, keys, workstations, password
//! changes, the argon2id hashes of passwords set through Latchkey, the key delivery queue and
//! the hash-chained audit log — on SQLite (the embedded default, WAL) or PostgreSQL, chosen by
//! the URL, with the same migrations and behaviour.
//!
//! It owns all SQL: nothing outside this module touches sqlx, and no sqlx type appears in its
//! public API; callers get domain types and a [`StoreError`]. It enforces the rules a database
//! can (tenant isolation in every lookup, one primary connector per tenant, key status rules,
//! one held and one queued delivery per key and account slot, ciphertext gone once a delivery
//! is final, an append-only audit chain). It must never store a plaintext password or a
//! plaintext connector secret, never print a token or secret, and never decide workflow: the
//! order of seal, set and release belongs to `workflow` and `delivery`.

mod audit;
mod changes;
mod connectors;
mod crypto;
mod db;
mod deliveries;
mod direct;
mod employees;
mod enrollment;
mod error;
mod history;
mod keys;
mod principals;
mod sessions;
mod signing;
mod sync;
mod tenants;
#[cfg(feature = "test-support")]
pub mod testing;
mod tokens;
mod workstations;

pub use audit::{AuditProblem, AuditRecord, AuditReport, NewAuditRecord};
pub use changes::{
    ChangeMode, ChangeStart, ChangeState, NewChange, PasswordChange, UnfinishedChange,
};
pub use connectors::{Connector, ConnectorRole, ConnectorUpdate, NewConnector};
pub use crypto::MasterKey;
pub use db::{Backend, ClusterLock, ReleaseListener, Store};
pub(crate) use db::{Scope, WriteTx};
pub use deliveries::{AckOutcome, Delivery, DeliveryState, Release};
pub use employees::{Employee, NewEmployee};
pub use enrollment::EnrollmentCode;
pub use error::{DatabaseError, KeyRefusal, StoreError};
pub use history::MAX_PASSWORD_HISTORY_LENGTH;
pub use keys::{Key, KeyStatus, NewKey};
pub use principals::{Principal, PrincipalKind, Role};
pub use sessions::{ConsoleSession, SESSION_SECONDS, random_token_text};
pub use sync::{NewSyncCheck, SyncCheck, SyncState};
pub use tenants::Tenant;
pub use tokens::Issued;
pub use workstations::{Workstation, WorkstationStatus};

/// Seconds since the Unix epoch: every time the store keeps.
pub type UnixTime = i64;

/// The current time in seconds since the Unix epoch.
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh row id (a UUID v4 string).
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
