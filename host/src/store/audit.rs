//! The audit log: append-only records (tenant, actor, action, subject, details, time) in one
//! hash chain, `hash = SHA-256(prev_hash ‖ canonical bytes of the row)`, and its verification.
//!
//! It owns appending (serialized on the chain's head row, which every append updates first, so
//! concurrent appends queue and never fork the chain: PostgreSQL locks the row, SQLite has one
//! writer) and `verify`, which names the first row edited, missing or out of place. It must
//! never record a secret or a password (callers pass details without them), and never update
//! or delete a record.

use std::fmt;

use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use super::direct::{Arg, Columns, Statements, Transact, args};
use super::error::{DbResult as _, StoreError};
use super::{Backend, Scope, Store, UnixTime};

/// A record to append.
#[derive(Debug, Clone)]
pub struct NewAuditRecord {
    /// `None` for server-wide events (an operator creating a tenant, start-up recovery).
    pub tenant_id: Option<String>,
    /// A principal id, `workstation:<id>`, or `system`.
    pub actor: String,
    /// What happened (`password.reset`, `key.status`, ...).
    pub action: String,
    /// What it happened to (an employee, key or connector id).
    pub subject: Option<String>,
    /// Anything else, never a secret.
    pub details: serde_json::Value,
}

impl NewAuditRecord {
    /// A record of `tenant_id`'s `actor` doing `action` to `subject`.
    pub fn new(
        tenant_id: Option<&str>,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        details: serde_json::Value,
    ) -> NewAuditRecord {
        NewAuditRecord {
            tenant_id: tenant_id.map(str::to_string),
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.map(str::to_string),
            details,
        }
    }
}

/// A record of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub details: serde_json::Value,
    pub at: UnixTime,
    /// Hex of this record's chain hash.
    pub hash: String,
}

/// The first thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditProblem {
    /// Record `seq`'s content does not match its hash: it was edited.
    Edited { seq: i64 },
    /// Record `seq` is missing (deleted) from the chain.
    Missing { seq: i64 },
    /// Record `seq` does not follow the record before it: it was inserted or rewritten out of
    /// order (or the one before it was rewritten with a recomputed hash).
    OutOfOrder { seq: i64 },
}

impl fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditProblem::Edited { seq } => write!(f, "record {seq} was edited"),
            AuditProblem::Missing { seq } => write!(f, "record {seq} is missing"),
            AuditProblem::OutOfOrder { seq } => {
                write!(f, "record {seq} does not follow the record before it")
            }
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// The chain's head: how many records were ever appended.
    pub head_seq: i64,
    /// `None` when the chain is whole.
    pub problem: Option<AuditProblem>,
}

/// The chain's domain label (PostgreSQL's deferred append, migration 0009, writes the same bytes).
const LABEL: &[u8] = b"latchkey audit v1\0";

fn field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// SHA-256(prev ‖ label ‖ seq ‖ tail), the tail being the record's [`chain_tail`].
fn chain_hash(prev: &[u8], seq: i64, tail: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(LABEL);
    hasher.update(seq.to_be_bytes());
    hasher.update(tail);
    hasher.finalize().to_vec()
}

/// The bytes [`chain_hash`] covers after the seq (which only the head knows): tenant ‖ actor ‖
/// action ‖ subject ‖ details ‖ at; strings length-prefixed (absent ones marked), numbers
/// big-endian, details as stored.
fn chain_tail(
    tenant_id: Option<&str>,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    details: &str,
    at: i64,
) -> Vec<u8> {
    let mut row = Vec::with_capacity(64 + details.len());
    field(&mut row, tenant_id);
    field(&mut row, Some(actor));
    field(&mut row, Some(action));
    field(&mut row, subject);
    field(&mut row, Some(details));
    row.extend_from_slice(&at.to_be_bytes());
    row
}

const COLUMNS: &str = "seq, tenant_id, actor, action, subject, details, at, prev_hash, hash";

fn record(row: &impl Columns) -> Result<AuditRecord, StoreError> {
    let details: String = row.column("details")?;
    Ok(AuditRecord {
        seq: row.column("seq")?,
        tenant_id: row.column("tenant_id")?,
        actor: row.column("actor")?,
        action: row.column("action")?,
        subject: row.column("subject")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?,
        at: row.column("at")?,
        hash: hex::encode(row.column::<Vec<u8>>("hash")?),
    })
}

impl Store {
    /// Appends `new` to the chain at time `at` (PostgreSQL: one statement on its own, whose
    /// commit appends it; SQLite: a transaction on the direct writer).
    pub async fn append_audit(&self, new: NewAuditRecord, at: UnixTime) -> Result<(), StoreError> {
        self.transact(Scope::Statement, Append { new, at }).await
    }
}

/// [`Store::append_audit`]'s statement(s).
struct Append {
    new: NewAuditRecord,
    at: UnixTime,
}

impl Transact for Append {
    type Output = ();

    async fn run<S: Statements>(self, statements: &mut S) -> Result<(), StoreError> {
        append_in(statements, self.new, self.at).await
    }
}

/// Appends `new` inside a transaction, so a record is written exactly when the change it
/// records is, and in commit order.
///
/// PostgreSQL: the record waits in `audit_pending` until the transaction commits, and a
/// deferred trigger (migration 0009) appends it inside COMMIT: takes the chain's head (the
/// next seq, the previous hash), hashes the record as [`chain_hash`] does over the
/// [`chain_tail`] given here, inserts it. The head is one row every append locks until its
/// transaction ends; taken by a statement of the transaction, it stayed locked while the
/// client got the answer and sent COMMIT, the wait of every other append (16 concurrent pulls:
/// ~10 backends waiting on it, session 11). SQLite: at once — the transaction holds the one
/// write lock since BEGIN IMMEDIATE and runs whole on the writer's thread.
pub(crate) async fn append_in(
    statements: &mut impl Statements,
    new: NewAuditRecord,
    at: UnixTime,
) -> Result<(), StoreError> {
    let details = new.details.to_string();
    let tail = chain_tail(
        new.tenant_id.as_deref(),
        &new.actor,
        &new.action,
        new.subject.as_deref(),
        &details,
        at,
    );
    // $1 … $6 on both backends: the record's own columns.
    let columns: [Arg<'_>; 6] = [
        Arg::from(&new.tenant_id),
        Arg::from(&new.actor),
        Arg::from(&new.action),
        Arg::from(&new.subject),
        Arg::from(&details),
        Arg::from(at),
    ];
    if statements.backend() == Backend::Postgres {
        statements
            .execute(
                "INSERT INTO audit_pending (tenant_id, actor, action, subject, details, at, tail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&columns[..], &[Arg::from(tail.as_slice())]].concat(),
            )
            .await
            .db()?;
        return Ok(());
    }
    let head = statements
        .fetch_one(
            "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
            args![],
        )
        .await
        .db()?;
    let seq: i64 = head.column("seq")?;
    let prev: Vec<u8> = head.column("hash")?;
    let hash = chain_hash(&prev, seq, &tail);
    statements
        .execute(
            "INSERT INTO audit_log (tenant_id, actor, action, subject, details, at, seq, \
             prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &columns[..],
                &[Arg::from(seq), Arg::from(&prev), Arg::from(hash.as_slice())],
            ]
            .concat(),
        )
        .await
        .db()?;
    // The head's hash follows by trigger (migration 0007, `audit_head_follows`).
    Ok(())
}

impl Store {
    /// The records of `tenant_id` after `after_seq`, oldest first, at most `limit`.
    pub async fn audit_records(
        &self,
        tenant_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_records_matching(tenant_id, after_seq, limit, None)
            .await
    }

    /// Like [`Store::audit_records`], only the actions starting with `action_prefix` when given
    /// (`password.change` finds `password.change.begin`, `password.change.applied`, ...).
    pub async fn audit_records_matching(
        &self,
        tenant_id: &str,
        after_seq: i64,
        limit: u32,
        action_prefix: Option<&str>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let pattern = action_prefix.map(|prefix| {
            format!(
                "{}%",
                prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 AND seq > $2 \
             AND ($4 IS NULL OR action LIKE $4 ESCAPE '\\') ORDER BY seq LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .bind(pattern)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(record)
        .collect()
    }

    /// Walks the whole chain from its first record to its head and reports the first record
    /// that was edited, deleted, or inserted out of order (`latchkey audit verify`).
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let mut tx = self.pool.begin().await.db()?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .db()?;
        let head_seq: i64 = head.try_get("seq").db()?;
        let head_hash: Vec<u8> = head.try_get("hash").db()?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq <= $1 ORDER BY seq"
        ))
        .bind(head_seq)
        .fetch_all(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        let mut prev = vec![0u8; 32];
        let mut expected = 1;
        let mut records = 0;
        let report = |records, problem| AuditReport {
            records,
            head_seq,
            problem,
        };
        for row in &rows {
            let seq: i64 = row.try_get("seq").db()?;
            if seq != expected {
                return Ok(report(
                    records,
                    Some(AuditProblem::Missing { seq: expected }),
                ));
            }
            let stored_prev: Vec<u8> = row.try_get("prev_hash").db()?;
            let stored_hash: Vec<u8> = row.try_get("hash").db()?;
            let tenant_id: Option<String> = row.try_get("tenant_id").db()?;
            let subject: Option<String> = row.try_get("subject").db()?;
            let actor: String = row.try_get("actor").db()?;
            let action: String = row.try_get("action").db()?;
            let details: String = row.try_get("details").db()?;
            let at: i64 = row.try_get("at").db()?;
            let tail = chain_tail(
                tenant_id.as_deref(),
                &actor,
                &action,
                subject.as_deref(),
                &details,
                at,
            );
            let computed = chain_hash(&stored_prev, seq, &tail);
            if computed != stored_hash {
                return Ok(report(records, Some(AuditProblem::Edited { seq })));
            }
            if stored_prev != prev {
                return Ok(report(records, Some(AuditProblem::OutOfOrder { seq })));
            }
            prev = stored_hash;
            expected += 1;
            records += 1;
        }
        if expected <= head_seq {
            return Ok(report(
                records,
                Some(AuditProblem::Missing { seq: expected }),
            ));
        }
        if head_seq > 0 && prev != head_hash {
            return Ok(report(
                records,
                Some(AuditProblem::OutOfOrder { seq: head_seq }),
            ));
        }
        let extra: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE seq > $1")
            .bind(head_seq)
            .fetch_one(&self.pool)
            .await
            .db()?;
        if extra > 0 {
            return Ok(report(
                records,
                Some(AuditProblem::OutOfOrder { seq: head_seq + 1 }),
            ));
        }
        Ok(report(records, None))
    }
}
