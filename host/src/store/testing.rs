//! Hooks for the workspace tests (feature `test-support`): create and drop a PostgreSQL
//! database, and run raw SQL on a store to tamper with rows the way an attacker with database
//! access would.
//!
//! It owns nothing the server uses. It must never be enabled in a release build's features.

use sqlx::{Connection as _, Executor as _};

use super::Store;
use super::error::{DbResult as _, StoreError};

/// Creates database `name` on the PostgreSQL server of `admin_url` and returns its URL.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, StoreError> {
    check_name(name)?;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.db()?;
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .db()?;
    conn.close().await.db()?;
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    Ok(format!("{base}/{name}{query}"))
}

/// Drops database `name` on the PostgreSQL server of `admin_url` (forcing other sessions off).
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    check_name(name)?;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.db()?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .db()?;
    conn.close().await.db()
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Invalid(format!("database name {name:?}")));
    }
    Ok(())
}

impl Store {
    /// Runs `sql` as it is, outside every rule of the store; how many rows it changed.
    pub async fn execute_unchecked(&self, sql: &str) -> Result<u64, StoreError> {
        // A bare string runs unprepared, so it may hold several statements.
        let done = self.pool.execute(sql).await.db()?;
        Ok(done.rows_affected())
    }

    /// Every column of every `password_history` row (and every tenant's history length), as
    /// the database returns them in text, to scan for what must not be there.
    pub async fn password_history_raw(&self) -> Result<Vec<String>, StoreError> {
        use sqlx::Row as _;
        let rows = sqlx::query(
            "SELECT tenant_id, employee_id, CAST(seq AS TEXT) AS seq, hash, \
             CAST(created_at AS TEXT) AS created_at FROM password_history",
        )
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut cells = Vec::new();
        for row in &rows {
            for column in ["tenant_id", "employee_id", "seq", "hash", "created_at"] {
                cells.push(row.try_get::<String, _>(column).db()?);
            }
        }
        Ok(cells)
    }

    /// Every text column of every `console_sessions` row, to scan for a session value.
    pub async fn console_sessions_raw(&self) -> Result<Vec<String>, StoreError> {
        use sqlx::Row as _;
        let rows = sqlx::query("SELECT id_hash, principal_id, csrf FROM console_sessions")
            .fetch_all(&self.pool)
            .await
            .db()?;
        let mut cells = Vec::new();
        for row in &rows {
            for column in ["id_hash", "principal_id", "csrf"] {
                cells.push(row.try_get::<String, _>(column).db()?);
            }
        }
        Ok(cells)
    }
}
