//! `Store` and its pool: SQLite or PostgreSQL chosen by the URL (`sqlite://path` or
//! `postgres://…`), the migrations of that backend run at open with sqlx's migrator, and the
//! one place where the backends differ in how a writing transaction begins.
//!
//! It owns connecting, the SQLite settings (create if missing, WAL, busy timeout, foreign
//! keys) and the migration source. It must never hold a query of a domain table: those live
//! in the files named after what they keep.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{
    Any, AnyConnection, AnyPool, ConnectOptions as _, Connection as _, Executor as _, Transaction,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::PgListener;

use super::crypto::MasterKey;
use super::error::{DbResult as _, StoreError};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: every read and write of Latchkey's state goes through here.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// SQLite only: connections that commit with `synchronous = FULL` (the WAL fsynced before
    /// COMMIT returns), for the transaction that must survive a power cut: a change's begin,
    /// which holds its envelope and history entry and is written before any directory is
    /// asked. The pool commits with NORMAL (the WAL synced at checkpoints): a power cut may
    /// take its last commits, and recovery derives those again from a durable begin.
    /// PostgreSQL commits every transaction durably (group commit), so it has none.
    pub(crate) durable: Option<AnyPool>,
    /// SQLite only: one writer at a time in this process, in arrival order. SQLite has one
    /// write lock per file; connections that contend for it wait in its busy handler, which
    /// sleeps 1, 2, 5, 10 … 100 ms between tries, so a burst of writers used to spend most of
    /// its time asleep (strace: a few thousand sleeps of ~5 ms in a second of load) while the
    /// lock stood free. Every write takes this gate first, then its connection.
    pub(crate) write_gate: Option<Arc<Mutex<()>>>,
    pub(crate) backend: Backend,
    pub(crate) master_key: Arc<MasterKey>,
    /// PostgreSQL's URL, for the release listener's own connection (it may hold a password).
    pub(crate) listen_url: Option<Arc<SecretString>>,
    /// Tokens whose argon2 verify succeeded recently (see `tokens`).
    pub(crate) verified_tokens: Arc<super::tokens::VerifiedTokens>,
    /// Tenant signing keys already opened (they never change; see `signing`).
    pub(crate) signing_keys:
        Arc<std::sync::Mutex<std::collections::HashMap<String, ed25519_dalek::SigningKey>>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("master_key", &self.master_key.id())
            .finish()
    }
}

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for a PostgreSQL connection (reconnecting meanwhile) before it is
/// answered 503: long enough to ride out a fast restart of the server, short enough that a
/// client learns of an outage instead of hanging (sqlx's default is 30 s).
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating a SQLite file if missing) the database at `url`, runs its migrations,
    /// and seals connector secrets under `master_key`.
    pub async fn open(url: &str, master_key: MasterKey) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(
                "the database URL must start with sqlite: or postgres://".into(),
            ));
        };
        let mut durable = None;
        let pool = match backend {
            Backend::Sqlite => {
                // Create the file and switch it to WAL once, on a connection of its own: the
                // journal mode is a property of the file, kept by every later connection.
                let options = SqliteConnectOptions::from_str(url)
                    .db()?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                options.connect().await.db()?.close().await.db()?;
                durable = Some(sqlite_pool(url, 2, "FULL").await?);
                sqlite_pool(url, 8, "NORMAL").await?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                .connect(url)
                .await
                .db()?,
        };
        let migrator = Migrator::new(Migrations(backend))
            .await
            .map_err(|e| StoreError::Database(super::error::DatabaseError::from_migrate(e)))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(super::error::DatabaseError::from_migrate(e)))?;
        super::tokens::warm_up().await;
        Ok(Store {
            pool,
            write_gate: durable.is_some().then(|| Arc::new(Mutex::new(()))),
            durable,
            backend,
            master_key: Arc::new(master_key),
            listen_url: (backend == Backend::Postgres)
                .then(|| Arc::new(SecretString::from(url.to_string()))),
            verified_tokens: Arc::new(super::tokens::VerifiedTokens::new()),
            signing_keys: Default::default(),
        })
    }

    /// The backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The id of the master key connector secrets are sealed under.
    pub fn master_key_id(&self) -> &str {
        self.master_key.id()
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        if let Some(durable) = &self.durable {
            durable.close().await;
        }
        self.pool.close().await;
    }

    /// The write gate's turn (SQLite), held until the write ends. Waiting longer than the
    /// busy timeout is what a busy SQLite answers too: unavailable now, worth a retry.
    async fn gate(&self) -> Result<Option<OwnedMutexGuard<()>>, StoreError> {
        let Some(gate) = &self.write_gate else {
            return Ok(None);
        };
        tokio::time::timeout(SQLITE_BUSY_TIMEOUT, gate.clone().lock_owned())
            .await
            .map(Some)
            .map_err(|_| StoreError::db(sqlx::Error::PoolTimedOut))
    }

    /// A transaction that will write. SQLite takes the write lock at `BEGIN IMMEDIATE`, so a
    /// transaction that reads before it writes cannot fail to upgrade its lock halfway (which
    /// the busy timeout does not cover), and only after its turn at the write gate;
    /// PostgreSQL locks rows as it goes.
    pub(crate) async fn write(&self) -> Result<WriteTx, StoreError> {
        let gate = self.gate().await?;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await.db()?,
            Backend::Postgres => self.pool.begin().await.db()?,
        };
        Ok(WriteTx { tx, _gate: gate })
    }

    /// A transaction that will write and whose commit must survive a power cut (see
    /// `durable`).
    pub(crate) async fn write_durable(&self) -> Result<WriteTx, StoreError> {
        match &self.durable {
            Some(durable) => {
                let gate = self.gate().await?;
                let tx = durable.begin_with("BEGIN IMMEDIATE").await.db()?;
                Ok(WriteTx { tx, _gate: gate })
            }
            None => self.write().await,
        }
    }

    /// A connection for one write statement outside a transaction (SQLite: after its turn at
    /// the write gate).
    pub(crate) async fn writer(&self) -> Result<Writer, StoreError> {
        let gate = self.gate().await?;
        let connection = self.pool.acquire().await.db()?;
        Ok(Writer {
            connection,
            _gate: gate,
        })
    }
}

/// A writing transaction with its turn at the write gate (see `Store::write`); it derefs to
/// the connection, as a `Transaction` does. Dropped without `commit`, it rolls back.
pub(crate) struct WriteTx {
    // Dropped first: the rollback is queued before the gate opens.
    tx: Transaction<'static, Any>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, holding the gate until the commit is done.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        let WriteTx { tx, _gate } = self;
        tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// A pooled connection with its turn at the write gate (see `Store::writer`).
pub(crate) struct Writer {
    connection: PoolConnection<Any>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Writer {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.connection
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.connection
    }
}

/// A pool of `max_connections` SQLite connections to `url` (a file already in WAL mode) that
/// commit with `PRAGMA synchronous = {synchronous}`.
async fn sqlite_pool(
    url: &str,
    max_connections: u32,
    synchronous: &'static str,
) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        // sqlx pings a connection before lending it (and again when it comes back): a round
        // trip to its worker thread that can find nothing wrong with a local file.
        .test_before_acquire(false)
        // On a full disk SQLite rolls a transaction back by itself and then refuses
        // sqlx's ROLLBACK, so sqlx still counts it open and every later BEGIN on
        // that connection fails (found by the full-disk test): such a connection
        // is closed instead of reused.
        .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    format!(
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                     PRAGMA synchronous = {synchronous};"
                    )
                    .as_str(),
                )
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .db()
}

/// The channel a release is announced on (PostgreSQL), with the key id as payload.
pub(crate) const RELEASE_CHANNEL: &str = "latchkey_delivery_released";

/// Release announcements from every replica (PostgreSQL's LISTEN).
pub struct ReleaseListener(PgListener);

impl fmt::Debug for ReleaseListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReleaseListener")
    }
}

impl ReleaseListener {
    /// The key id of the next release; an error when the connection is lost.
    pub async fn recv(&mut self) -> Result<String, StoreError> {
        let notification = self.0.recv().await.db()?;
        Ok(notification.payload().to_string())
    }
}

impl Store {
    /// A listener for releases on every replica; `None` on SQLite (one process, nothing to
    /// hear).
    pub async fn release_listener(&self) -> Result<Option<ReleaseListener>, StoreError> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url.expose_secret()).await.db()?;
        listener.listen(RELEASE_CHANNEL).await.db()?;
        Ok(Some(ReleaseListener(listener)))
    }
}

/// A cluster-wide lock for background work that must run once per cluster, not once per
/// replica: a PostgreSQL session advisory lock held by a connection of its own (closed when the
/// lock is dropped, which releases it even if the holder dies); on SQLite, where there is one
/// process, always granted.
pub struct ClusterLock(Option<sqlx::AnyConnection>);

impl fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterLock")
    }
}

impl ClusterLock {
    /// Releases the lock.
    pub async fn release(self) {
        if let Some(connection) = self.0 {
            // Closing the session releases every advisory lock it holds.
            let _ = connection.close().await;
        }
    }
}

/// The advisory lock key of `name`: the first 8 bytes of its SHA-256.
fn lock_key(name: &str) -> i64 {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest([b"latchkey cluster lock\0".as_slice(), name.as_bytes()].concat());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Store {
    /// The cluster-wide lock `name`, or `None` when another replica holds it now.
    pub async fn try_cluster_lock(&self, name: &str) -> Result<Option<ClusterLock>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(ClusterLock(None)));
        }
        let mut connection = self.pool.acquire().await.db()?.detach();
        let granted: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut connection)
            .await
            .db()?;
        if granted {
            Ok(Some(ClusterLock(Some(connection))))
        } else {
            let _ = connection.close().await;
            Ok(None)
        }
    }
}

/// The migrations of one backend, compiled into the binary.
#[derive(Debug)]
struct Migrations(Backend);

/// (version, description, SQLite, PostgreSQL)
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "password history",
        include_str!("../../migrations/sqlite/0002_password_history.sql"),
        include_str!("../../migrations/postgres/0002_password_history.sql"),
    ),
    (
        3,
        "server core",
        include_str!("../../migrations/sqlite/0003_server_core.sql"),
        include_str!("../../migrations/postgres/0003_server_core.sql"),
    ),
    (
        4,
        "sync checks",
        include_str!("../../migrations/sqlite/0004_sync_checks.sql"),
        include_str!("../../migrations/postgres/0004_sync_checks.sql"),
    ),
    (
        5,
        "console sessions",
        include_str!("../../migrations/sqlite/0005_console_sessions.sql"),
        include_str!("../../migrations/postgres/0005_console_sessions.sql"),
    ),
    (
        6,
        "history write-ahead",
        include_str!("../../migrations/sqlite/0006_history_write_ahead.sql"),
        include_str!("../../migrations/postgres/0006_history_write_ahead.sql"),
    ),
];

type BoxDynError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl<'s> MigrationSource<'s> for Migrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sqlite, postgres)| {
                    let sql = match self.0 {
                        Backend::Sqlite => sqlite,
                        Backend::Postgres => postgres,
                    };
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
