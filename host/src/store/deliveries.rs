//! The key delivery queue: sealed envelopes on their way to a key. A delivery is *held* while
//! its password change runs, *released* to *pending* (superseding the older queued one for the
//! same key and account slot), *leased* by a workstation for a while, and finally *delivered*
//! (the key's ack), or *superseded*, *expired* or *failed*. Every final state deletes the
//! ciphertext.
//!
//! It owns the states and their transitions, and the one place where the backends' claims
//! differ (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite). Two partial
//! unique indexes make the database enforce one held and one queued delivery per key and slot.
//! It must never hand a ciphertext to a key that is not Active, lease one delivery to two
//! claimers at once, or keep a ciphertext in a final state. Verifying acks, sealing and waking
//! workstations belong to `delivery`, not here.

use std::fmt;

use super::audit::{self, NewAuditRecord};
use super::db::Backend;
use super::direct::{Arg, Columns, Statements, Transact, args};
use super::error::{DbResult as _, StoreError};
use super::keys;
use super::{Scope, Store, UnixTime};

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Held,
    Pending,
    Leased,
    Delivered,
    Superseded,
    Expired,
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Held,
        DeliveryState::Pending,
        DeliveryState::Leased,
        DeliveryState::Delivered,
        DeliveryState::Superseded,
        DeliveryState::Expired,
        DeliveryState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Held => "held",
            DeliveryState::Pending => "pending",
            DeliveryState::Leased => "leased",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Superseded => "superseded",
            DeliveryState::Expired => "expired",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Held, pending or leased: the ciphertext still exists.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            DeliveryState::Held | DeliveryState::Pending | DeliveryState::Leased
        )
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sealed envelope for one account slot of one key.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub tenant_id: String,
    pub key_id: String,
    /// The account slot on the key (one password per slot).
    pub slot: String,
    pub change_id: Option<String>,
    pub state: DeliveryState,
    /// The envelope sealed to the key; `None` in every final state.
    pub ciphertext: Option<Vec<u8>>,
    pub created_at: UnixTime,
    pub released_at: Option<UnixTime>,
    /// After this the envelope is not delivered (the key would refuse it anyway).
    pub not_after: Option<UnixTime>,
    pub lease_expires_at: Option<UnixTime>,
    /// The workstation holding the lease.
    pub leased_by: Option<String>,
    /// How many times it was leased.
    pub attempts: i64,
    pub finished_at: Option<UnixTime>,
    pub failure: Option<String>,
    /// The envelope's sequence number for its key and slot.
    pub sequence: i64,
    /// keyproto's seal receipt, to verify the key's ack (hashes only).
    pub receipt: Option<Vec<u8>>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("slot", &self.slot)
            .field("state", &self.state)
            .field("ciphertext_len", &self.ciphertext.as_ref().map(Vec::len))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// What a release did.
#[derive(Debug, Clone)]
pub struct Release {
    /// The released delivery, now pending.
    pub delivery: Delivery,
    /// The ids of the older queued deliveries it superseded.
    pub superseded: Vec<String>,
}

/// What an ack found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The delivery is now delivered and its ciphertext deleted.
    Delivered,
    /// It was delivered before (a repeated ack).
    AlreadyDelivered,
    /// It had ended otherwise (superseded, expired, failed): nothing changed.
    Ended(DeliveryState),
}

pub(crate) const COLUMNS: &str = "id, tenant_id, key_id, slot, change_id, state, ciphertext, \
     created_at, released_at, not_after, lease_expires_at, leased_by, attempts, finished_at, \
     failure, sequence, receipt";

pub(crate) fn delivery(row: &impl Columns) -> Result<Delivery, StoreError> {
    let state: String = row.column("state")?;
    Ok(Delivery {
        id: row.column("id")?,
        tenant_id: row.column("tenant_id")?,
        key_id: row.column("key_id")?,
        slot: row.column("slot")?,
        change_id: row.column("change_id")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
        ciphertext: row.column("ciphertext")?,
        created_at: row.column("created_at")?,
        released_at: row.column("released_at")?,
        not_after: row.column("not_after")?,
        lease_expires_at: row.column("lease_expires_at")?,
        leased_by: row.column("leased_by")?,
        attempts: row.column("attempts")?,
        finished_at: row.column("finished_at")?,
        failure: row.column("failure")?,
        sequence: row.column("sequence")?,
        receipt: row.column("receipt")?,
    })
}

impl Store {
    /// Delivery `id` of `tenant_id`.
    pub async fn delivery(&self, tenant_id: &str, id: &str) -> Result<Delivery, StoreError> {
        delivery_in(&mut *self.pool.acquire().await.db()?, tenant_id, id).await
    }

    /// The delivery of change `change_id` of `tenant_id` (every change has one).
    pub async fn delivery_of_change(
        &self,
        tenant_id: &str,
        change_id: &str,
    ) -> Result<Delivery, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND change_id = $2"
        ))
        .bind(tenant_id)
        .bind(change_id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound("delivery"))?;
        delivery(&row)
    }

    /// The deliveries of key `key_id` of `tenant_id`, oldest first.
    pub async fn deliveries_of_key(
        &self,
        tenant_id: &str,
        key_id: &str,
    ) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND key_id = $2 \
             ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .bind(key_id)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(delivery)
        .collect()
    }

    /// Releases held delivery `id`: it becomes pending and, in the same transaction, the older
    /// pending or leased delivery for the same key and slot is superseded (ciphertext deleted).
    pub async fn release_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now: UnixTime,
    ) -> Result<Release, StoreError> {
        let op = ReleaseHeld {
            tenant_id: tenant_id.to_string(),
            id: id.to_string(),
            now,
        };
        self.transact(Scope::Transaction, op).await
    }

    /// Destroys held delivery `id` (its change failed before release): failed, ciphertext
    /// deleted. The older queued delivery for the slot, if any, stays deliverable.
    pub async fn discard_held_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        reason: &str,
        now: UnixTime,
    ) -> Result<Delivery, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE deliveries SET state = 'failed', ciphertext = NULL, finished_at = $3, \
             failure = $4 WHERE tenant_id = $1 AND id = $2 AND state = 'held' RETURNING {COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .bind(reason)
        .fetch_optional(&mut *self.writer().await?)
        .await
        .db()?;
        match row {
            Some(row) => delivery(&row),
            None => {
                let current = self.delivery(tenant_id, id).await?;
                Err(wrong_state(
                    &current,
                    "only a held delivery can be discarded",
                ))
            }
        }
    }

    /// Leases up to `limit` due deliveries of key `key_id` to `workstation_id` until
    /// `now + lease_seconds`, oldest first: pending ones and leased ones whose lease expired.
    /// Concurrent claimers never get the same delivery. The key must be Active.
    pub async fn lease_deliveries(
        &self,
        tenant_id: &str,
        key_id: &str,
        workstation_id: &str,
        limit: u32,
        lease_seconds: i64,
        now: UnixTime,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.lease_deliveries_audited(
            tenant_id,
            key_id,
            workstation_id,
            limit,
            lease_seconds,
            now,
            |_| None,
        )
        .await
    }

    /// [`Store::lease_deliveries`], appending `audit(leased)` (when it gives a record and
    /// something was leased) to the audit chain in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn lease_deliveries_audited(
        &self,
        tenant_id: &str,
        key_id: &str,
        workstation_id: &str,
        limit: u32,
        lease_seconds: i64,
        now: UnixTime,
        audit: impl FnOnce(&[Delivery]) -> Option<NewAuditRecord> + Send + 'static,
    ) -> Result<Vec<Delivery>, StoreError> {
        let op = Lease {
            tenant_id: tenant_id.to_string(),
            key_id: key_id.to_string(),
            workstation_id: workstation_id.to_string(),
            limit,
            lease_seconds,
            now,
            audit,
        };
        self.transact(Scope::Transaction, op).await
    }

    /// Records the key's ack of delivery `id`: delivered, ciphertext deleted. Idempotent: a
    /// repeated ack is [`AckOutcome::AlreadyDelivered`]. (Verifying the ack's signature is the
    /// caller's job, before this.)
    pub async fn ack_delivery(
        &self,
        tenant_id: &str,
        key_id: &str,
        id: &str,
        now: UnixTime,
    ) -> Result<AckOutcome, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'delivered', ciphertext = NULL, \
             lease_expires_at = NULL, finished_at = $4 \
             WHERE tenant_id = $1 AND key_id = $2 AND id = $3 AND state IN ('pending', 'leased')",
        )
        .bind(tenant_id)
        .bind(key_id)
        .bind(id)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        if done.rows_affected() == 1 {
            return Ok(AckOutcome::Delivered);
        }
        let current = self.delivery(tenant_id, id).await?;
        if current.key_id != key_id {
            return Err(StoreError::NotFound("delivery"));
        }
        match current.state {
            DeliveryState::Delivered => Ok(AckOutcome::AlreadyDelivered),
            DeliveryState::Held => Err(wrong_state(
                &current,
                "a held delivery has not been released to any key",
            )),
            state if state.is_live() => Err(wrong_state(&current, "it changed; retry")),
            state => Ok(AckOutcome::Ended(state)),
        }
    }

    /// The deliveries of `tenant_id` among `ids` (those that exist), in one query.
    pub async fn deliveries_by_ids(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(tenant_id);
        for id in ids {
            query = query.bind(id);
        }
        query
            .fetch_all(&self.pool)
            .await
            .db()?
            .iter()
            .map(delivery)
            .collect()
    }

    /// Records the key's verified acks of deliveries `ids` of key `key_id` in one transaction:
    /// those pending or leased become delivered (ciphertext deleted) and `audit(delivered)`
    /// records them in one audit record; the outcome of each id, in order.
    pub async fn ack_deliveries_audited(
        &self,
        tenant_id: &str,
        key_id: &str,
        ids: &[String],
        audit: impl FnOnce(&[String]) -> NewAuditRecord + Send + 'static,
        now: UnixTime,
    ) -> Result<Vec<(String, AckOutcome)>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let op = Ack {
            tenant_id: tenant_id.to_string(),
            key_id: key_id.to_string(),
            ids: ids.to_vec(),
            audit,
            now,
        };
        let (delivered, states) = self.transact(Scope::Transaction, op).await?;
        ids.iter()
            .map(|id| {
                let outcome = if delivered.contains(id) {
                    AckOutcome::Delivered
                } else {
                    match states.get(id).and_then(|s| DeliveryState::parse(s)) {
                        Some(DeliveryState::Delivered) => AckOutcome::AlreadyDelivered,
                        Some(other) => AckOutcome::Ended(other),
                        None => return Err(StoreError::NotFound("delivery")),
                    }
                };
                Ok((id.clone(), outcome))
            })
            .collect()
    }

    /// Returns leases that expired by `now` to pending, on every tenant; how many.
    pub async fn expire_leases(&self, now: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'pending', lease_expires_at = NULL, leased_by = NULL \
             WHERE state = 'leased' AND lease_expires_at <= $1",
        )
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    /// Ends the queued deliveries past their `not_after` (expired, ciphertext deleted), on
    /// every tenant; how many.
    pub async fn expire_deliveries(&self, now: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'expired', ciphertext = NULL, lease_expires_at = NULL, \
             finished_at = $1 \
             WHERE state IN ('pending', 'leased') AND not_after IS NOT NULL AND not_after <= $1",
        )
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }
}

/// [`Store::lease_deliveries_audited`]'s transaction.
struct Lease<A> {
    tenant_id: String,
    key_id: String,
    workstation_id: String,
    limit: u32,
    lease_seconds: i64,
    now: UnixTime,
    audit: A,
}

impl<A> Transact for Lease<A>
where
    A: FnOnce(&[Delivery]) -> Option<NewAuditRecord> + Send + 'static,
{
    type Output = Vec<Delivery>;

    async fn run<S: Statements>(self, statements: &mut S) -> Result<Vec<Delivery>, StoreError> {
        // PostgreSQL: concurrent claimers skip the rows another one has locked. SQLite: the
        // statement runs under the database's single write lock, taken at BEGIN IMMEDIATE.
        let sql = match statements.backend() {
            Backend::Postgres => &*LEASE_POSTGRES,
            Backend::Sqlite => &*LEASE_SQLITE,
        };
        let now = self.now;
        let rows = statements
            .fetch_all(
                sql,
                args![
                    &self.tenant_id,
                    &self.key_id,
                    now,
                    now + self.lease_seconds,
                    &self.workstation_id,
                    i64::from(self.limit)
                ],
            )
            .await
            .db()?;
        if rows.is_empty() {
            // Nothing due, or the key is missing or not Active (the statement leases only to
            // an Active key): which one is said.
            keys::key_in(statements, &self.tenant_id, &self.key_id)
                .await?
                .require_delivery()?;
            return Ok(vec![]);
        }
        let mut leased = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        leased.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        if let Some(record) = (self.audit)(&leased) {
            audit::append_in(statements, record, now).await?;
        }
        Ok(leased)
    }
}

/// The lease's statement, with the subquery's row lock (`FOR UPDATE SKIP LOCKED` on
/// PostgreSQL). It leases to an Active key only (`KeyStatus::allows_delivery`).
fn lease_sql(lock: &str) -> String {
    format!(
        "UPDATE deliveries SET state = 'leased', lease_expires_at = $4, leased_by = $5, \
         attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM deliveries \
           WHERE tenant_id = $1 AND key_id = $2 \
           AND (state = 'pending' OR (state = 'leased' AND lease_expires_at <= $3)) \
           AND (not_after IS NULL OR not_after > $3) \
           AND EXISTS (SELECT 1 FROM keys \
                       WHERE keys.tenant_id = $1 AND keys.id = $2 AND keys.status = '{active}') \
           ORDER BY created_at, id LIMIT $6 {lock}) \
         RETURNING {COLUMNS}",
        active = keys::KeyStatus::Active.as_str()
    )
}

static LEASE_SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| lease_sql(""));
static LEASE_POSTGRES: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| lease_sql("FOR UPDATE SKIP LOCKED"));

/// [`Store::ack_deliveries_audited`]'s transaction: the ids it delivered, and the state of
/// each other one that exists.
struct Ack<A> {
    tenant_id: String,
    key_id: String,
    ids: Vec<String>,
    audit: A,
    now: UnixTime,
}

impl<A> Transact for Ack<A>
where
    A: FnOnce(&[String]) -> NewAuditRecord + Send + 'static,
{
    type Output = (Vec<String>, std::collections::HashMap<String, String>);

    async fn run<S: Statements>(self, statements: &mut S) -> Result<Self::Output, StoreError> {
        let Ack {
            tenant_id,
            key_id,
            ids,
            audit,
            now,
        } = self;
        // $1 tenant, $2 key, $3 now, then the ids.
        let list = (0..ids.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let mut bound: Vec<Arg<'_>> =
            vec![Arg::from(&tenant_id), Arg::from(&key_id), Arg::from(now)];
        bound.extend(ids.iter().map(Arg::from));
        let delivered = statements
            .fetch_all(
                &format!(
                    "UPDATE deliveries SET state = 'delivered', ciphertext = NULL, \
                     lease_expires_at = NULL, finished_at = $3 WHERE tenant_id = $1 \
                     AND key_id = $2 AND id IN ({list}) AND state IN ('pending', 'leased') \
                     RETURNING id"
                ),
                &bound,
            )
            .await
            .db()?
            .iter()
            .map(|row| row.column("id"))
            .collect::<Result<Vec<String>, _>>()?;
        let mut states = std::collections::HashMap::new();
        if delivered.len() < ids.len() {
            // $1 tenant, $2 key, then the ids.
            let list = (0..ids.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let bound: Vec<Arg<'_>> = bound[..2].iter().chain(&bound[3..]).copied().collect();
            let rows = statements
                .fetch_all(
                    &format!(
                        "SELECT id, state FROM deliveries WHERE tenant_id = $1 AND key_id = $2 \
                         AND id IN ({list})"
                    ),
                    &bound,
                )
                .await
                .db()?;
            for row in rows {
                states.insert(row.column("id")?, row.column("state")?);
            }
        }
        if !delivered.is_empty() {
            audit::append_in(statements, audit(&delivered), now).await?;
        }
        Ok((delivered, states))
    }
}

/// Releases held delivery `id` inside a transaction (see [`Store::release_delivery`]).
pub(crate) async fn release_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    id: &str,
    now: UnixTime,
) -> Result<Release, StoreError> {
    // The queued delivery for the held one's key and slot is superseded first (one may be
    // queued per key and slot); nothing is when `id` is not a held delivery of the tenant,
    // which the release below then finds.
    let superseded = statements
        .fetch_all(
            "UPDATE deliveries SET state = 'superseded', ciphertext = NULL, \
             lease_expires_at = NULL, finished_at = $3 \
             WHERE key_id = (SELECT key_id FROM deliveries \
                             WHERE tenant_id = $1 AND id = $2 AND state = 'held') \
               AND slot = (SELECT slot FROM deliveries \
                           WHERE tenant_id = $1 AND id = $2 AND state = 'held') \
               AND state IN ('pending', 'leased') RETURNING id",
            args![tenant_id, id, now],
        )
        .await
        .db()?
        .iter()
        .map(|row| row.column("id"))
        .collect::<Result<Vec<String>, _>>()?;
    let released = statements
        .fetch_optional(&RELEASE, args![tenant_id, id, now])
        .await
        .or_conflict("another delivery is queued for this key and slot")?;
    let Some(row) = released else {
        // Why not: it does not exist in the tenant, or is not held.
        let current = delivery_in(statements, tenant_id, id).await?;
        return Err(wrong_state(
            &current,
            "only a held delivery can be released",
        ));
    };
    let released = delivery(&row)?;
    if statements.backend() == Backend::Postgres {
        // Delivered at commit to every replica's listener, so the one holding this key's
        // long poll answers at once.
        statements
            .execute(
                "SELECT pg_notify($1, $2)",
                args![super::db::RELEASE_CHANNEL, &released.key_id],
            )
            .await
            .db()?;
    }
    Ok(Release {
        delivery: released,
        superseded,
    })
}

static RELEASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE deliveries SET state = 'pending', released_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND state = 'held' RETURNING {COLUMNS}"
    )
});

/// [`Store::release_delivery`]'s transaction.
struct ReleaseHeld {
    tenant_id: String,
    id: String,
    now: UnixTime,
}

impl Transact for ReleaseHeld {
    type Output = Release;

    async fn run<S: Statements>(self, statements: &mut S) -> Result<Release, StoreError> {
        release_in(statements, &self.tenant_id, &self.id, self.now).await
    }
}

/// Delivery `id` of `tenant_id`, read by `statements` (a pooled connection, or a transaction).
async fn delivery_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    id: &str,
) -> Result<Delivery, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2");
    let row = statements
        .fetch_optional(&sql, args![tenant_id, id])
        .await
        .db()?
        .ok_or(StoreError::NotFound("delivery"))?;
    delivery(&row)
}

fn wrong_state(delivery: &Delivery, expected: &'static str) -> StoreError {
    StoreError::WrongState {
        what: "delivery",
        id: delivery.id.clone(),
        state: delivery.state.to_string(),
        expected,
    }
}
