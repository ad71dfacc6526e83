//! `workflow`: the password-change workflow — the state machine from the admin's request to a
//! released delivery (`change`), resolving changes a crash interrupted (`recovery`), verifying that a directory's own sync
//! carried a change (`sync`), a
//! tenant's connectors as running instances (`connectors`), and its pure parts: what a
//! password must satisfy (the merged policy of every enabled connector, `policy`), the admin's
//! typed input (`manual`), drawing a password that satisfies the policy (`generator`),
//! checking one independently (`check`), the argon2id hashes of the passwords set through
//! Latchkey (`history`), and how directory answers read as JSON (`describe`).
//!
//! It owns the order of the steps and the rules about a candidate password. It must never
//! show, log, persist or put in an error any plaintext password (passwords travel as
//! `SecretString`, buffers as `Zeroizing`), touch sqlx (the `store` does) or wasmtime (the
//! `runtime` does).

pub mod change;
pub mod check;
pub mod connectors;
pub mod describe;
pub mod generator;
pub mod history;
pub mod manual;
pub mod policy;
pub mod recovery;
pub mod sync;

pub use change::{
    Accepted, Candidate, ChangeError, ConnectorViolation, Precondition, ResetRequest, Workflow,
};
pub use connectors::{Connectors, ResolveError, TenantConnector};
pub use recovery::RecoveryReport;
