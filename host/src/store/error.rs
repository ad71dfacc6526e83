//! `StoreError`: what can go wrong in the store, typed where a caller branches on it (not
//! found, conflict, a key status refusal, a wrong state, a master-key problem) and opaque where
//! it cannot (the database failed).
//!
//! It owns turning sqlx errors into these kinds. It must never carry a secret, a token or a
//! password: messages name rows and rules, never values.

use std::fmt;

use super::keys::KeyStatus;

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist in this tenant (or at all).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule refused the write (a duplicate name, a second primary connector, a
    /// second delivery in flight for one key and account slot, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another envelope for the same key and account slot was sealed with this sequence number
    /// or a higher one meanwhile: seal again with the next one.
    #[error("another password change for this key and account was sealed meanwhile; retry")]
    SequenceTaken,
    /// The key's status does not allow what was asked.
    #[error("key {key} is {status}: {refusal}")]
    KeyRefused {
        key: String,
        status: KeyStatus,
        refusal: KeyRefusal,
    },
    /// The row is not in a state this operation applies to.
    #[error("{what} {id} is {state}; {expected}")]
    WrongState {
        what: &'static str,
        id: String,
        state: String,
        expected: &'static str,
    },
    /// A master key could not be read, or a sealed value was not sealed under it, or did not
    /// open (tampered with, or moved to another tenant, connector or name).
    #[error("master key: {0}")]
    MasterKey(String),
    /// Input the store refuses (an empty name, a malformed URL, ...).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A stored value the store cannot read back (a broken invariant or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed (connection, I/O, SQL).
    #[error("database: {0}")]
    Database(#[source] DatabaseError),
}

/// Why a key's status refuses an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// A new password is sealed only to a Ready, Reserved or Active key.
    NoNewPassword,
    /// Deliveries go only to an Active key.
    NoDelivery,
    /// A compromised key never changes status again.
    Terminal,
    /// The key does not belong to the employee whose password changes.
    NotTheEmployees,
}

impl fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyRefusal::NoNewPassword => {
                "a new password needs a key that is ready, reserved or active"
            }
            KeyRefusal::NoDelivery => "deliveries go only to an active key",
            KeyRefusal::Terminal => "a compromised key cannot change status",
            KeyRefusal::NotTheEmployees => "the key does not belong to this employee",
        })
    }
}

/// A database failure, opaque: its text is the driver's (which never includes bound values).
#[derive(Debug)]
pub struct DatabaseError(sqlx::Error);

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StoreError {
    pub(crate) fn db(error: sqlx::Error) -> StoreError {
        match error {
            sqlx::Error::RowNotFound => StoreError::NotFound("row"),
            other => StoreError::Database(DatabaseError(other)),
        }
    }
}

/// `.db()?` and `.or_conflict(..)?` on sqlx results, so no sqlx error leaves the store.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
    /// A unique violation becomes [`StoreError::Conflict`] with `message`.
    fn or_conflict(self, message: &str) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(StoreError::db)
    }

    fn or_conflict(self, message: &str) -> Result<T, StoreError> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(message.to_string())
            }
            _ => StoreError::db(e),
        })
    }
}

impl DatabaseError {
    pub(crate) fn from_migrate(error: sqlx::migrate::MigrateError) -> DatabaseError {
        DatabaseError(sqlx::Error::Migrate(Box::new(error)))
    }
}
