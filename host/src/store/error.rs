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
    /// The database cannot be reached now (down, restarting, or no connection free in time):
    /// worth retrying once it is back.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DatabaseError),
    /// The disk the database writes to is full: nothing was written.
    #[error("database disk full: {0}")]
    DiskFull(#[source] DatabaseError),
    /// The database failed (SQL, a broken row, anything not worth retrying as is).
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
            other => match Outage::of(&other) {
                Some(Outage::Unreachable) => StoreError::Unavailable(DatabaseError(other)),
                Some(Outage::DiskFull) => StoreError::DiskFull(DatabaseError(other)),
                None => StoreError::Database(DatabaseError(other)),
            },
        }
    }
}

/// A database failure that is the database's circumstances, not the query: what an API client
/// is told to wait out (or an operator to fix) rather than a server error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    Unreachable,
    DiskFull,
}

impl Outage {
    fn of(error: &sqlx::Error) -> Option<Outage> {
        match error {
            // Connecting, or a connection lost mid-query (a restart closes every session).
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Outage::Unreachable),
            sqlx::Error::Database(error) => Outage::of_code(error.code().as_deref()?),
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATEs (class 08 connection exceptions; 57P01-57P03 shutting down or
    /// starting up; 53300 too many connections; 53100 disk full) and SQLite's result codes
    /// (13: SQLITE_FULL, the error a write meets on a full disk).
    fn of_code(code: &str) -> Option<Outage> {
        match code {
            "57P01" | "57P02" | "57P03" | "53300" => Some(Outage::Unreachable),
            code if code.starts_with("08") => Some(Outage::Unreachable),
            "53100" | "13" => Some(Outage::DiskFull),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_from_failures_by_their_codes() {
        assert_eq!(
            Outage::of(&sqlx::Error::PoolTimedOut),
            Some(Outage::Unreachable)
        );
        assert_eq!(
            Outage::of(&sqlx::Error::Io(
                std::io::ErrorKind::ConnectionRefused.into()
            )),
            Some(Outage::Unreachable)
        );
        assert_eq!(Outage::of_code("57P01"), Some(Outage::Unreachable));
        assert_eq!(Outage::of_code("08006"), Some(Outage::Unreachable));
        assert_eq!(Outage::of_code("53100"), Some(Outage::DiskFull));
        assert_eq!(Outage::of_code("13"), Some(Outage::DiskFull));
        // A unique violation (PostgreSQL, SQLite's extended code) is the query's own failure.
        assert_eq!(Outage::of_code("23505"), None);
        assert_eq!(Outage::of_code("2067"), None);
        assert_eq!(Outage::of(&sqlx::Error::RowNotFound), None);
    }
}
