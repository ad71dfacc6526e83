//! SQLite's direct writer, and the statements a write transaction is written against.
//!
//! Through sqlx every SQLite statement is two thread hand-offs (to the connection's worker
//! thread and back), and under load each wake-up waits its turn for a core: a change's ~17
//! statements held the write gate for 2.1–2.4 ms while the CPU stood 30–40 % idle (session 8).
//! The direct writer is one thread that owns a rusqlite connection to the same file (the same
//! SQLite library as sqlx's) and runs a write transaction whole — `BEGIN IMMEDIATE`, every
//! statement, `COMMIT` — per hand-off, and the transactions queued meanwhile back to back
//! under one turn of the write gate.
//!
//! A transaction is written once, as a [`Transact`] whose body is generic over
//! [`Statements`]: on SQLite it runs on the direct writer (its futures are ready at once and
//! are polled there, never awaited across threads), on PostgreSQL on a sqlx connection. The
//! SQL is the same text on both (`$n` parameters, which SQLite binds by name).
//!
//! It owns the writer thread, the conversions between rusqlite's values and errors and the
//! store's, and nothing of a domain table: the bodies live in the files named after what they
//! keep.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, ready};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};

use rusqlite::types::{FromSql, ToSqlOutput, Value, ValueRef};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection};

use super::db::Backend;
use super::error::{DbResult as _, StoreError};

/// One bound value of a statement (typed even when null: PostgreSQL types every parameter).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Arg::Text(value.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Blob(Some(value))
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Arg::Blob(Some(value))
    }
}

/// The arguments of a statement, `$1` first: `args![tenant_id, id, now]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::direct::Arg::from($value)),*]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(Some(value)) => ToSqlOutput::Owned(Value::Integer(value)),
            Arg::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Arg::Blob(Some(bytes)) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Arg::Int(None) | Arg::Text(None) | Arg::Blob(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// A column type both drivers read (text, integers, bytes, and their options).
pub(crate) trait Column: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + FromSql {}

impl<T> Column for T where T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + FromSql {}

/// A result row of either driver, read by column name.
pub(crate) trait Columns {
    fn column<T: Column>(&self, name: &str) -> Result<T, StoreError>;
}

impl Columns for AnyRow {
    fn column<T: Column>(&self, name: &str) -> Result<T, StoreError> {
        sqlx::Row::try_get(self, name).db()
    }
}

/// A row the direct writer read (rusqlite's rows borrow their statement).
#[derive(Debug)]
pub(crate) struct OwnedRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Columns for OwnedRow {
    fn column<T: Column>(&self, name: &str) -> Result<T, StoreError> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::db(sqlx::Error::ColumnNotFound(name.into())))?;
        T::column_result(ValueRef::from(&self.values[index])).map_err(|source| {
            StoreError::db(sqlx::Error::ColumnDecode {
                index: name.into(),
                source: Box::new(source),
            })
        })
    }
}

/// Where a write transaction's statements run: a sqlx connection (PostgreSQL, or SQLite
/// outside the change path) or the direct writer. Errors are sqlx's, so `.db()` and
/// `.or_conflict(..)` read them the same whichever driver ran the statement.
pub(crate) trait Statements: Send {
    type Row: Columns + Send;

    fn backend(&self) -> Backend;

    /// The statement's first row, if any.
    fn fetch_optional<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a;

    /// The statement's first row; `RowNotFound` when it has none.
    fn fetch_one<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Self::Row, sqlx::Error>> + Send + 'a {
        let row = self.fetch_optional(sql, args);
        async move { row.await?.ok_or(sqlx::Error::RowNotFound) }
    }

    /// Every row of the statement.
    fn fetch_all<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

    /// Runs the statement; the number of rows it changed.
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;
}

/// `sql` with `args` bound, for sqlx.
fn bound<'a>(
    sql: &'a str,
    args: &'a [Arg<'a>],
) -> sqlx::query::Query<'a, Any, sqlx::any::AnyArguments<'a>> {
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(value) => query.bind(value),
        Arg::Text(value) => query.bind(value),
        Arg::Blob(value) => query.bind(value),
    })
}

impl Statements for AnyConnection {
    type Row = AnyRow;

    fn backend(&self) -> Backend {
        if self.backend_name() == "SQLite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    fn fetch_optional<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Option<AnyRow>, sqlx::Error>> + Send + 'a {
        bound(sql, args).fetch_optional(self)
    }

    fn fetch_all<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Vec<AnyRow>, sqlx::Error>> + Send + 'a {
        bound(sql, args).fetch_all(self)
    }

    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        let query = bound(sql, args);
        async move { Ok(query.execute(self).await?.rows_affected()) }
    }
}

/// A write transaction written once for both backends (see the module's documentation).
pub(crate) trait Transact: Send + 'static {
    type Output: Send + 'static;

    fn run<S: Statements>(
        self,
        statements: &mut S,
    ) -> impl Future<Output = Result<Self::Output, StoreError>> + Send;
}

/// The direct writer's connection, lent to one transaction at a time on its thread.
pub(crate) struct Direct {
    connection: rusqlite::Connection,
}

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Direct")
    }
}

impl Direct {
    /// Runs `sql` with `args` bound by name (`$n` is `args[n - 1]`) and reads every row.
    fn query(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<OwnedRow>, sqlx::Error> {
        let mut statement = self.connection.prepare_cached(sql).map_err(sqlite_error)?;
        for index in 1..=statement.parameter_count() {
            let arg = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| args.get(n.checked_sub(1)?))
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!(
                        "parameter {index} of a statement has no argument (expected $1 to ${})",
                        args.len()
                    ))
                })?;
            statement
                .raw_bind_parameter(index, arg)
                .map_err(sqlite_error)?;
        }
        let names: Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(String::from)
            .collect();
        let mut rows = statement.raw_query();
        let mut read = Vec::new();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let values = (0..names.len())
                .map(|i| row.get_ref(i).map(Value::from))
                .collect::<Result<_, _>>()
                .map_err(sqlite_error)?;
            read.push(OwnedRow {
                names: names.clone(),
                values,
            });
        }
        Ok(read)
    }

    fn batch(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.connection.execute_batch(sql).map_err(sqlite_error)
    }

    /// Runs `op` in one transaction: committed when its body succeeds, rolled back otherwise.
    fn transaction<T: Transact>(&mut self, op: T) -> Result<T::Output, StoreError> {
        self.batch("BEGIN IMMEDIATE").db()?;
        let result = poll_ready(op.run(self)).and_then(|output| {
            self.batch("COMMIT").db()?;
            Ok(output)
        });
        if result.is_err() {
            self.roll_back();
        }
        result
    }

    /// Ends a transaction left open (SQLite may have rolled it back already: a full disk).
    fn roll_back(&self) {
        if !self.connection.is_autocommit() {
            let _ = self.batch("ROLLBACK");
        }
    }
}

impl Statements for Direct {
    type Row = OwnedRow;

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn fetch_optional<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Option<OwnedRow>, sqlx::Error>> + Send + 'a {
        ready(self.query(sql, args).map(|rows| rows.into_iter().next()))
    }

    fn fetch_all<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Vec<OwnedRow>, sqlx::Error>> + Send + 'a {
        ready(self.query(sql, args))
    }

    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        ready(self.query(sql, args).map(|_| self.connection.changes()))
    }
}

/// The output of a future that awaits only the direct writer's statements (always ready).
fn poll_ready<T>(future: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => Err(StoreError::db(sqlx::Error::Protocol(
            "a direct transaction awaited something other than its statements".into(),
        ))),
    }
}

type Job = Box<dyn FnOnce(&mut Direct) + Send>;

enum Message {
    Run(Job),
    Close(tokio::sync::oneshot::Sender<()>),
}

/// How many queued transactions run under one turn of the write gate before the gate's other
/// writers (sqlx's) get theirs.
const BATCH: usize = 64;

/// The direct writer: its thread, reached through a queue (see the module's documentation).
pub(crate) struct DirectWriter {
    jobs: mpsc::Sender<Message>,
}

impl fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectWriter")
    }
}

impl DirectWriter {
    /// Opens the database file at `path` (already in WAL mode and migrated) on a thread of
    /// its own, which takes `gate` for each batch of transactions so that sqlx's writers and
    /// this one never wait in SQLite's busy handler for each other.
    pub(crate) fn open(
        path: &Path,
        gate: Arc<tokio::sync::Mutex<Option<AnyConnection>>>,
        busy_timeout: std::time::Duration,
    ) -> Result<DirectWriter, StoreError> {
        let connection = rusqlite::Connection::open(path)
            .and_then(|connection| {
                connection.busy_timeout(busy_timeout)?;
                connection
                    .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
                connection.set_prepared_statement_cache_capacity(64);
                Ok(connection)
            })
            .map_err(sqlite_error)
            .db()?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || serve(Direct { connection }, &gate, &queue))
            .map_err(|e| StoreError::db(sqlx::Error::Io(e)))?;
        Ok(DirectWriter { jobs })
    }

    /// Runs `op` in one transaction on the writer's thread.
    pub(crate) async fn run<T: Transact>(&self, op: T) -> Result<T::Output, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |direct: &mut Direct| {
            // The caller may be gone (its request dropped): the transaction stands or falls
            // by itself, as a begun change does after a crash.
            let _ = reply.send(direct.transaction(op));
        });
        self.jobs
            .send(Message::Run(job))
            .map_err(|_| StoreError::db(sqlx::Error::PoolClosed))?;
        // No answer: the job panicked (the writer rolled it back and goes on).
        answer
            .await
            .map_err(|_| StoreError::db(sqlx::Error::WorkerCrashed))?
    }

    /// Closes the writer's connection once the transactions queued before are done.
    pub(crate) async fn close(&self) {
        let (done, closed) = tokio::sync::oneshot::channel();
        if self.jobs.send(Message::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// The writer thread: each turn takes the gate and runs the queued transactions, up to
/// [`BATCH`], back to back.
fn serve(
    mut direct: Direct,
    gate: &tokio::sync::Mutex<Option<AnyConnection>>,
    queue: &mpsc::Receiver<Message>,
) {
    while let Ok(first) = queue.recv() {
        let _turn = gate.blocking_lock();
        for message in std::iter::once(first).chain(queue.try_iter().take(BATCH - 1)) {
            match message {
                Message::Run(job) => {
                    let ran =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut direct)));
                    if ran.is_err() {
                        direct.roll_back();
                    }
                }
                Message::Close(done) => {
                    drop(direct);
                    let _ = done.send(());
                    return;
                }
            }
        }
    }
}

/// A failure SQLite reported to rusqlite, as sqlx reports its own (the extended result code
/// and SQLite's message, which never holds a bound value).
#[derive(Debug)]
struct SqliteFailure {
    code: i32,
    message: String,
}

impl fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqliteFailure {}

impl sqlx::error::DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

/// rusqlite's error as sqlx's: SQLite's failures as database errors (so unique violations,
/// a full disk and a busy database read as they do from sqlx), the rest as decode errors.
fn sqlite_error(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(SqliteFailure {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::Decode(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct writer on a new database file with one table `t (k TEXT PRIMARY KEY, n INTEGER,
    /// b BLOB)`.
    fn writer(name: &str) -> (DirectWriter, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join(format!("{name}.db"));
        let setup = rusqlite::Connection::open(&path).expect("open");
        setup
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, b BLOB);",
            )
            .expect("schema");
        drop(setup);
        let gate = Arc::new(tokio::sync::Mutex::new(None));
        let writer = DirectWriter::open(&path, gate, std::time::Duration::from_secs(1))
            .expect("direct writer");
        (writer, dir)
    }

    /// A row of `t`.
    type Row<K> = (K, Option<i64>, Option<Vec<u8>>);

    /// Inserts `(k, n, b)` for each row, then reads the table back ordered by `k`.
    struct Insert(Vec<Row<&'static str>>);

    impl Transact for Insert {
        type Output = Vec<Row<String>>;

        async fn run<S: Statements>(self, statements: &mut S) -> Result<Self::Output, StoreError> {
            for (k, n, b) in &self.0 {
                // Parameters out of order, and one used twice: bound by name.
                statements
                    .execute(
                        "INSERT INTO t (n, k, b) VALUES ($2, $1, CASE WHEN $2 IS NULL THEN NULL ELSE $3 END)",
                        args![*k, *n, b.as_deref().map_or(Arg::Blob(None), Arg::from)],
                    )
                    .await
                    .or_conflict("k is taken")?;
            }
            statements
                .fetch_all("SELECT k, n, b FROM t ORDER BY k", args![])
                .await
                .db()?
                .iter()
                .map(|row| Ok((row.column("k")?, row.column("n")?, row.column("b")?)))
                .collect()
        }
    }

    struct Panics;

    impl Transact for Panics {
        type Output = ();

        async fn run<S: Statements>(self, statements: &mut S) -> Result<(), StoreError> {
            statements
                .execute(
                    "INSERT INTO t (k) VALUES ('written before the panic')",
                    args![],
                )
                .await
                .db()?;
            panic!("a transaction's body panicked");
        }
    }

    #[tokio::test]
    async fn a_transaction_binds_by_name_and_reads_its_own_writes() {
        let (writer, _dir) = writer("binds");
        let rows = writer
            .run(Insert(vec![
                ("b", Some(2), Some(vec![1, 2, 3])),
                ("a", None, Some(vec![9])),
            ]))
            .await
            .expect("inserted");
        assert_eq!(
            rows,
            vec![
                ("a".to_string(), None, None),
                ("b".to_string(), Some(2), Some(vec![1, 2, 3])),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_transaction_leaves_nothing_and_reads_as_sqlx_would() {
        let (writer, _dir) = writer("conflict");
        writer
            .run(Insert(vec![("a", Some(1), None)]))
            .await
            .expect("first");
        // "b" is written, then "a" is refused: the whole transaction rolls back.
        let refused = writer
            .run(Insert(vec![("b", Some(2), None), ("a", Some(3), None)]))
            .await
            .expect_err("a duplicate key");
        assert!(
            matches!(&refused, StoreError::Conflict(message) if message == "k is taken"),
            "{refused:?}"
        );
        let rows = writer.run(Insert(vec![])).await.expect("read");
        assert_eq!(rows, vec![("a".to_string(), Some(1), None)]);
    }

    #[tokio::test]
    async fn a_panicking_transaction_is_rolled_back_and_the_writer_goes_on() {
        let (writer, _dir) = writer("panics");
        let error = writer.run(Panics).await.expect_err("no answer");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        let rows = writer
            .run(Insert(vec![("c", Some(3), None)]))
            .await
            .expect("the writer still serves");
        assert_eq!(rows, vec![("c".to_string(), Some(3), None)]);
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_work() {
        let (writer, _dir) = writer("closed");
        writer.close().await;
        let error = writer.run(Insert(vec![])).await.expect_err("closed");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    }
}
