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
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{
    Any, AnyConnection, AnyPool, ConnectOptions as _, Connection as _, Executor as _, Transaction,
    TransactionManager as _,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::PgListener;

use super::crypto::MasterKey;
use super::direct::{DirectWriter, Transact};
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
    /// SQLite only: how this process writes (the write gate, its connection, the group
    /// commit); PostgreSQL orders writers by its row locks and commits every transaction
    /// durably (group commit), so it has none.
    pub(crate) sqlite: Option<Arc<SqliteWrites>>,
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

/// A pooled PostgreSQL connection idle for this long is pinged before it is handed out.
const POSTGRES_PING_IDLE: Duration = Duration::from_secs(1);

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
        let mut sqlite = None;
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
                if url.contains(":memory:") || url.contains("mode=memory") {
                    // Every connection would open a database of its own.
                    return Err(StoreError::Invalid(
                        "an in-memory SQLite database is not supported: give a file path, \
                         e.g. sqlite://latchkey.db"
                            .into(),
                    ));
                }
                options.connect().await.db()?.close().await.db()?;
                sqlite = Some(options.get_filename().to_path_buf());
                sqlite_pool(url, 8).await?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                // sqlx pings every connection it hands out (a round trip before each pooled
                // statement: a third of a delivery pull's) and again when it takes it back.
                // The ping on release stays (it discards a connection a failure or a cancelled
                // statement left broken); on acquire only one that sat idle is pinged, as a
                // server restart or a middlebox's timeout happens to idle connections.
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= POSTGRES_PING_IDLE {
                            connection.ping().await?;
                        }
                        Ok(true)
                    })
                })
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
        // The direct writer opens the file once its schema is migrated.
        let sqlite = match sqlite {
            Some(path) => {
                let gate = Arc::new(Mutex::new(None));
                Some(Arc::new(SqliteWrites {
                    direct: DirectWriter::open(&path, gate.clone(), SQLITE_BUSY_TIMEOUT)?,
                    gate,
                    connections: sqlite_pool(url, 1).await?,
                    wal: Arc::new(WalSync::new(&path)),
                }))
            }
            None => None,
        };
        super::tokens::warm_up().await;
        Ok(Store {
            sqlite,
            pool,
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

    /// SQLite: how many fsyncs of the WAL durable commits have run in this process (fewer than
    /// the durable commits when concurrent ones were grouped); `None` on PostgreSQL.
    pub fn wal_syncs(&self) -> Option<u64> {
        self.sqlite
            .as_ref()
            .map(|sqlite| sqlite.wal.syncs.load(Ordering::Relaxed))
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        if let Some(sqlite) = &self.sqlite {
            sqlite.direct.close().await;
            if let Some(connection) = sqlite.gate.lock().await.take() {
                let _ = connection.close().await;
            }
            sqlite.connections.close().await;
        }
        self.pool.close().await;
    }

    /// The write gate's turn and its connection (SQLite), held until the write ends. Waiting
    /// longer than the busy timeout is what a busy SQLite answers too: unavailable now, worth
    /// a retry.
    async fn gate(&self) -> Result<Option<GatedConnection>, StoreError> {
        let Some(sqlite) = &self.sqlite else {
            return Ok(None);
        };
        let mut gated = tokio::time::timeout(SQLITE_BUSY_TIMEOUT, sqlite.gate.clone().lock_owned())
            .await
            .map_err(|_| StoreError::db(sqlx::Error::PoolTimedOut))?;
        if let Some(connection) = gated.as_mut()
            && connection.is_in_transaction()
        {
            // A dropped transaction queued its rollback: it runs before the ping answers.
            let _ = connection.ping().await;
        }
        // None yet, or still in a transaction: on a full disk SQLite rolls a transaction back
        // by itself and then refuses sqlx's ROLLBACK, so sqlx counts it open and every later
        // BEGIN on that connection would fail (found by the full-disk test). A new one.
        if gated.as_ref().is_none_or(|c| c.is_in_transaction()) {
            if let Some(old) = gated.take() {
                let _ = old.close_hard().await;
            }
            *gated = Some(sqlite.connections.acquire().await.db()?.detach());
        }
        Ok(Some(gated))
    }

    /// A transaction that will write. SQLite takes the write lock at `BEGIN IMMEDIATE`, so a
    /// transaction that reads before it writes cannot fail to upgrade its lock halfway (which
    /// the busy timeout does not cover), and only after its turn at the write gate, on the
    /// gate's connection; PostgreSQL locks rows as it goes.
    pub(crate) async fn write(&self) -> Result<WriteTx, StoreError> {
        let inner = match self.gate().await? {
            Some(mut gated) => {
                let connection = gated.as_mut().expect("the gate holds a connection");
                <Any as sqlx::Database>::TransactionManager::begin(
                    connection,
                    Some(Cow::Borrowed("BEGIN IMMEDIATE")),
                )
                .await
                .db()?;
                Tx::Gated(GatedTx { gated, open: true })
            }
            None => Tx::Pooled(self.pool.begin().await.db()?),
        };
        Ok(WriteTx { inner })
    }

    /// Runs `op` as `scope` says: on SQLite as one transaction on the direct writer (a durable
    /// one returns once the WAL holding its commit is fsynced, `WalSync`, after the writer has
    /// gone on to the next); on PostgreSQL, which commits every transaction durably, in a
    /// transaction, or on a connection for an op of one statement.
    pub(crate) async fn transact<T: Transact>(
        &self,
        scope: Scope,
        op: T,
    ) -> Result<T::Output, StoreError> {
        match &self.sqlite {
            Some(sqlite) => {
                let output = sqlite.direct.run(op).await?;
                if scope == Scope::Durable {
                    sqlite
                        .wal
                        .sync()
                        .await
                        .map_err(|e| StoreError::db(sqlx::Error::Io(e)))?;
                }
                Ok(output)
            }
            None if scope == Scope::Statement => op.run(&mut *self.writer().await?).await,
            None => {
                let mut tx = self.write().await?;
                let output = op.run(&mut *tx).await?;
                tx.commit().await.db()?;
                Ok(output)
            }
        }
    }

    /// A connection for one write statement outside a transaction (SQLite: the write gate's,
    /// after its turn).
    pub(crate) async fn writer(&self) -> Result<Writer, StoreError> {
        Ok(match self.gate().await? {
            Some(gated) => Writer::Gated(gated),
            None => Writer::Pooled(self.pool.acquire().await.db()?),
        })
    }
}

/// What a [`Transact`] is run as (see `Store::transact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// One statement (PostgreSQL: no transaction around it).
    Statement,
    /// A transaction.
    Transaction,
    /// A transaction whose commit must survive a power cut (a change's begin, which holds its
    /// envelope and history entry and is written before any directory is asked). PostgreSQL
    /// commits every transaction so.
    Durable,
}

/// How a SQLite store writes.
pub(crate) struct SqliteWrites {
    /// The hot write transactions (a change's, a release, an audit append, a lease, an ack),
    /// each whole on one thread (`direct`).
    direct: DirectWriter,
    /// One writer at a time in this process, in arrival order. SQLite has one write lock per
    /// file; connections that contend for it wait in its busy handler, which sleeps 1, 2, 5,
    /// 10 … 100 ms between tries, so a burst of writers used to spend most of its time asleep
    /// (strace: a few thousand sleeps of ~5 ms in a second of load) while the lock stood free.
    /// The gate owns the one connection every write runs on: a writer never queues for a
    /// connection behind the readers, and no connection goes back to a pool (sqlx pings each
    /// one it takes back) between two writes.
    gate: Arc<Mutex<Option<AnyConnection>>>,
    /// Where the gate's connection comes from (a pool of one, so it is made with the pool's
    /// settings; the connection is then detached and kept by the gate).
    connections: AnyPool,
    /// The group commit of the transactions that must survive a power cut (`Scope::Durable`).
    /// Every connection commits with `synchronous = NORMAL` (the WAL synced at checkpoints):
    /// a power cut may take the last commits, and recovery derives those again from a durable
    /// begin.
    wal: Arc<WalSync>,
}

/// The write gate's turn with its connection (always `Some` once lent).
type GatedConnection = OwnedMutexGuard<Option<AnyConnection>>;

/// A writing transaction (see `Store::write`); it derefs to the connection, as a
/// `Transaction` does. Dropped without `commit`, it rolls back.
pub(crate) struct WriteTx {
    inner: Tx,
}

enum Tx {
    /// PostgreSQL: a transaction on a pooled connection.
    Pooled(Transaction<'static, Any>),
    /// SQLite: a transaction on the write gate's connection.
    Gated(GatedTx),
}

/// A transaction on the write gate's connection; `open` until committed.
struct GatedTx {
    gated: GatedConnection,
    open: bool,
}

impl GatedTx {
    fn connection(&mut self) -> &mut AnyConnection {
        self.gated.as_mut().expect("the gate holds a connection")
    }
}

impl Drop for GatedTx {
    fn drop(&mut self) {
        if self.open {
            // Queued before the gate opens: the next writer's first command runs after it.
            <Any as sqlx::Database>::TransactionManager::start_rollback(self.connection());
        }
    }
}

impl WriteTx {
    /// Commits, holding the gate until the commit is done.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Tx::Pooled(tx) => tx.commit().await,
            Tx::Gated(mut tx) => {
                <Any as sqlx::Database>::TransactionManager::commit(tx.connection()).await?;
                tx.open = false;
                Ok(())
            }
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.inner {
            Tx::Pooled(tx) => tx,
            Tx::Gated(tx) => tx.gated.as_ref().expect("the gate holds a connection"),
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Tx::Pooled(tx) => tx,
            Tx::Gated(tx) => tx.connection(),
        }
    }
}

/// A connection for one write statement (see `Store::writer`).
pub(crate) enum Writer {
    Pooled(PoolConnection<Any>),
    Gated(GatedConnection),
}

impl std::ops::Deref for Writer {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Writer::Pooled(connection) => connection,
            Writer::Gated(gated) => gated.as_ref().expect("the gate holds a connection"),
        }
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Writer::Pooled(connection) => connection,
            Writer::Gated(gated) => gated.as_mut().expect("the gate holds a connection"),
        }
    }
}

/// SQLite's group commit for durable transactions. Every connection commits with
/// `synchronous = NORMAL`, so a COMMIT leaves its WAL frames in the page cache; a durable
/// transaction then asks for one `fdatasync` of the WAL file, which makes every frame written
/// before it began durable — what `synchronous = FULL` does inside COMMIT, but outside the
/// write lock and the write gate, and shared: the commits announced while one sync runs are
/// all covered by the next (FIFO), so N concurrent durable commits cost about two fsyncs, not N.
/// A power cut loses a suffix of the WAL at most (its frames are checksummed in a chain), so
/// what any commit depends on is never lost while it survives.
#[derive(Debug)]
pub(crate) struct WalSync {
    wal: PathBuf,
    /// Durable commits announced so far: each takes the next number after its COMMIT returned.
    announced: AtomicU64,
    /// The highest announcement a finished fsync covers; locked while one runs.
    synced: Mutex<u64>,
    /// fsyncs run so far (for the bench and the tests: how well commits were grouped).
    syncs: AtomicU64,
}

impl WalSync {
    fn new(database: &Path) -> WalSync {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        WalSync {
            wal: PathBuf::from(wal),
            announced: AtomicU64::new(0),
            synced: Mutex::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// Returns once every commit that returned before this call is on disk.
    pub(crate) async fn sync(&self) -> std::io::Result<()> {
        let ticket = self.announced.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            // A sync that began after this commit has finished.
            return Ok(());
        }
        // Every announcement up to here committed before the fsync begins.
        let covers = self.announced.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || sync_file(&wal))
            .await
            .map_err(std::io::Error::other)??;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = covers;
        Ok(())
    }
}

/// `fdatasync` of the file at `path` (Linux flushes a file's dirty pages whichever descriptor
/// wrote them). A WAL that is gone was checkpointed into the database, with an fsync, and
/// deleted when its last connection closed: nothing is left to sync.
fn sync_file(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(file) => file.sync_data(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// A pool of `max_connections` SQLite connections to `url` (a file already in WAL mode) that
/// commit with `PRAGMA synchronous = NORMAL` (see `WalSync` for the durable ones).
async fn sqlite_pool(url: &str, max_connections: u32) -> Result<AnyPool, StoreError> {
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
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA synchronous = NORMAL;",
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
    (
        7,
        "audit head trigger",
        include_str!("../../migrations/sqlite/0007_audit_head_trigger.sql"),
        include_str!("../../migrations/postgres/0007_audit_head_trigger.sql"),
    ),
    (
        8,
        "changes by employee",
        include_str!("../../migrations/sqlite/0008_changes_by_employee.sql"),
        include_str!("../../migrations/postgres/0008_changes_by_employee.sql"),
    ),
    (
        9,
        "audit at commit",
        include_str!("../../migrations/sqlite/0009_audit_at_commit.sql"),
        include_str!("../../migrations/postgres/0009_audit_at_commit.sql"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL file of its own in the temporary directory, with a page written to it.
    fn wal_file(name: &str) -> WalSync {
        let database =
            std::env::temp_dir().join(format!("latchkey-walsync-{name}-{}.db", std::process::id()));
        let sync = WalSync::new(&database);
        std::fs::write(&sync.wal, [7u8; 4096]).expect("write the WAL");
        sync
    }

    #[tokio::test]
    async fn a_lone_durable_commit_gets_its_own_fsync() {
        let wal = wal_file("lone");
        for expected in 1..=3 {
            wal.sync().await.expect("sync");
            assert_eq!(wal.syncs.load(Ordering::Relaxed), expected);
        }
        std::fs::remove_file(&wal.wal).expect("remove");
    }

    #[tokio::test]
    async fn concurrent_durable_commits_share_fsyncs() {
        let wal = wal_file("grouped");
        // 64 commits announced together: the first runs an fsync that began before most of
        // them were announced, so one more covers all the rest.
        let all = futures_util::future::join_all((0..64).map(|_| wal.sync())).await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(wal.syncs.load(Ordering::Relaxed), 2);
        // A commit announced after those still gets an fsync of its own.
        wal.sync().await.expect("sync");
        assert_eq!(wal.syncs.load(Ordering::Relaxed), 3);
        std::fs::remove_file(&wal.wal).expect("remove");
    }

    #[tokio::test]
    async fn a_wal_checkpointed_away_needs_no_fsync() {
        let wal = wal_file("gone");
        std::fs::remove_file(&wal.wal).expect("remove");
        wal.sync().await.expect("a missing WAL is not an error");
    }
}
