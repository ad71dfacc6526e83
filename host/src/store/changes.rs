//! Password changes: the record of one reset or change of one employee's password, from the
//! moment its envelope is sealed and held to the outcome of every connector, and the query
//! start-up uses to resolve changes a crash left between seal and release.
//!
//! It owns the change rows and creating a change together with its held delivery (one
//! transaction, after the key status check). It must never hold a plaintext password: the
//! envelope arrives sealed to the key. Deciding what to do with an unfinished change belongs
//! to `workflow`.

use std::fmt;

use sqlx::Row as _;

use super::audit::NewAuditRecord;
use super::db::{Backend, Scope};
use super::deliveries::{self, Delivery};
use super::direct::{Columns, Statements, Transact, args};
use super::error::{DbResult as _, KeyRefusal, StoreError};
use super::keys;
use super::{Store, UnixTime, new_id};

/// Typed by an admin, or generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeMode {
    Manual,
    Generate,
}

impl ChangeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeMode::Manual => "manual",
            ChangeMode::Generate => "generate",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeMode> {
        match text {
            "manual" => Some(ChangeMode::Manual),
            "generate" => Some(ChangeMode::Generate),
            _ => None,
        }
    }
}

/// Where a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeState {
    /// Sealed, its delivery held; no directory written yet.
    Held,
    /// Connectors are setting it.
    Applying,
    /// Every connector set it; the delivery is released.
    Applied,
    /// The primary set it, a secondary did not; the delivery is released.
    PartiallyApplied,
    /// The primary did not set it; the delivery is destroyed.
    Failed,
}

impl ChangeState {
    pub const ALL: [ChangeState; 5] = [
        ChangeState::Held,
        ChangeState::Applying,
        ChangeState::Applied,
        ChangeState::PartiallyApplied,
        ChangeState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Held => "held",
            ChangeState::Applying => "applying",
            ChangeState::Applied => "applied",
            ChangeState::PartiallyApplied => "partially_applied",
            ChangeState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeState> {
        ChangeState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Applied, partially applied or failed.
    pub fn is_final(self) -> bool {
        !matches!(self, ChangeState::Held | ChangeState::Applying)
    }
}

impl fmt::Display for ChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One password change.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordChange {
    pub id: String,
    pub tenant_id: String,
    pub employee_id: String,
    pub key_id: String,
    /// Who asked (a principal id, or `workstation:<id>` for a user's own change).
    pub actor: String,
    pub mode: ChangeMode,
    /// must_change_at_next_logon, unlock, length, ... (never the password).
    pub options: serde_json::Value,
    pub state: ChangeState,
    /// Each connector's outcome by connector id.
    pub outcomes: serde_json::Map<String, serde_json::Value>,
    pub failure: Option<String>,
    pub started_at: UnixTime,
    pub updated_at: UnixTime,
    pub finished_at: Option<UnixTime>,
}

/// A change to record, with its envelope already sealed to the key.
pub struct NewChange {
    pub employee_id: String,
    pub key_id: String,
    pub actor: String,
    pub mode: ChangeMode,
    pub options: serde_json::Value,
    /// The account slot on the key.
    pub slot: String,
    /// The delivery's id, chosen by the caller because the sealed envelope carries it.
    pub delivery_id: String,
    /// The envelope's sequence number: it must be above every earlier one for this key and
    /// slot ([`Store::last_sequence`]), or the change is a conflict to retry.
    pub sequence: i64,
    /// The envelope sealed to the key (keyproto).
    pub envelope: Vec<u8>,
    /// What verifies the key's ack of it (keyproto's seal receipt: hashes, nothing secret).
    pub receipt: Vec<u8>,
    /// The password's argon2id hash for the employee's history (none when the tenant keeps no
    /// history), written ahead of the directory with the change.
    pub history_hash: Option<String>,
    pub not_after: Option<UnixTime>,
}

/// A change a crash left held or applying, with its held delivery if it still has one.
#[derive(Debug, Clone)]
pub struct UnfinishedChange {
    pub change: PasswordChange,
    pub held_delivery_id: Option<String>,
}

const COLUMNS: &str = "id, tenant_id, employee_id, key_id, actor, mode, options, state, \
                       outcomes, failure, started_at, updated_at, finished_at";

/// See [`Store::change_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStart {
    pub history_length: u32,
    pub last_sequence: i64,
}

fn change(row: &impl Columns) -> Result<PasswordChange, StoreError> {
    let mode: String = row.column("mode")?;
    let state: String = row.column("state")?;
    let json = |column: &str| -> Result<serde_json::Value, StoreError> {
        let text: String = row.column(column)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    };
    Ok(PasswordChange {
        id: row.column("id")?,
        tenant_id: row.column("tenant_id")?,
        employee_id: row.column("employee_id")?,
        key_id: row.column("key_id")?,
        actor: row.column("actor")?,
        mode: ChangeMode::parse(&mode)
            .ok_or_else(|| StoreError::Corrupt(format!("change mode {mode:?}")))?,
        options: json("options")?,
        state: ChangeState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("change state {state:?}")))?,
        outcomes: outcomes(&row.column::<String>("outcomes")?)?,
        failure: row.column("failure")?,
        started_at: row.column("started_at")?,
        updated_at: row.column("updated_at")?,
        finished_at: row.column("finished_at")?,
    })
}

/// The change columns of table alias `alias` (`c.id, c.tenant_id, …`).
fn prefixed(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A change's recorded outcomes (a JSON object by connector id).
fn outcomes(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(StoreError::Corrupt("outcomes is not an object".into())),
        Err(e) => Err(StoreError::Corrupt(format!("outcomes: {e}"))),
    }
}

/// The one statement that moves a change: only an unfinished change moves, and a final state
/// stamps `finished_at`; `outcomes` (the whole object, as JSON) replaces the recorded ones when
/// given. The changed change (none when it was final already).
async fn set_state_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    id: &str,
    state: ChangeState,
    failure: Option<&str>,
    outcomes: Option<&str>,
    now: UnixTime,
) -> Result<Option<PasswordChange>, StoreError> {
    statements
        .fetch_optional(
            &SET_STATE,
            args![
                tenant_id,
                id,
                state.as_str(),
                failure,
                now,
                state.is_final().then_some(now),
                outcomes
            ],
        )
        .await
        .db()?
        .map(|row| change(&row))
        .transpose()
}

static SET_STATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE password_changes SET state = $3, failure = COALESCE($4, failure), \
         updated_at = $5, finished_at = $6, outcomes = COALESCE($7, outcomes) \
         WHERE tenant_id = $1 AND id = $2 AND state IN ('held', 'applying') RETURNING {COLUMNS}"
    )
});

/// The refusal to move a final change.
fn already_final(id: &str, state: String) -> StoreError {
    StoreError::WrongState {
        what: "password change",
        id: id.to_string(),
        state,
        expected: "a finished change does not change state",
    }
}

impl Store {
    /// Records a change of `tenant_id` in state Held together with its held delivery, in one
    /// transaction. The key must belong to the employee and allow a new password; a second
    /// change in flight for the same key and slot is a conflict.
    pub async fn begin_change(
        &self,
        tenant_id: &str,
        new: NewChange,
        now: UnixTime,
    ) -> Result<(PasswordChange, Delivery), StoreError> {
        self.begin_change_audited(tenant_id, new, now, |_, _| None)
            .await
    }

    /// [`Store::begin_change`], appending `audit(change, delivery)` to the audit chain in the
    /// same transaction. The password's history hash, if any, is added in it too (and taken
    /// back by [`Store::forget_change_password`] if the change fails).
    pub async fn begin_change_audited(
        &self,
        tenant_id: &str,
        new: NewChange,
        now: UnixTime,
        audit: impl FnOnce(&PasswordChange, &Delivery) -> Option<NewAuditRecord> + Send + 'static,
    ) -> Result<(PasswordChange, Delivery), StoreError> {
        let op = Begin {
            tenant_id: tenant_id.to_string(),
            new,
            now,
            audit,
        };
        // Durable: the directory is asked only after this commit, so a power cut must not take
        // it (the held envelope and the history entry are what recovery and the key rely on).
        self.transact(Scope::Durable, op).await
    }

    /// What a change of `tenant_id` sealed to `key_id` for `slot` starts from, in one read:
    /// how many passwords the tenant remembers, and the highest envelope sequence number
    /// sealed for the key and slot (0 when none).
    pub async fn change_start(
        &self,
        tenant_id: &str,
        key_id: &str,
        slot: &str,
    ) -> Result<ChangeStart, StoreError> {
        let row = sqlx::query(
            "SELECT password_history_length, \
             (SELECT MAX(sequence) FROM deliveries WHERE key_id = $2 AND slot = $3) AS last \
             FROM tenants WHERE id = $1",
        )
        .bind(tenant_id)
        .bind(key_id)
        .bind(slot)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound("tenant"))?;
        let last: Option<i64> = row.try_get("last").db()?;
        Ok(ChangeStart {
            history_length: super::history::history_length(
                row.try_get("password_history_length").db()?,
            )?,
            last_sequence: last.unwrap_or(0),
        })
    }

    /// The highest envelope sequence number sealed for `key_id` and `slot` (0 when none).
    pub async fn last_sequence(&self, key_id: &str, slot: &str) -> Result<i64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(sequence) FROM deliveries WHERE key_id = $1 AND slot = $2",
        )
        .bind(key_id)
        .bind(slot)
        .fetch_one(&self.pool)
        .await
        .db()?;
        Ok(last.unwrap_or(0))
    }

    /// The changes of `tenant_id` (only `employee_id`'s when given), newest first, at most
    /// `limit`.
    pub async fn password_changes(
        &self,
        tenant_id: &str,
        employee_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PasswordChange>, StoreError> {
        // Two statements, so that an employee's changes are read by index (SQLite plans
        // `$2 IS NULL OR employee_id = $2` without knowing $2).
        let employee = match employee_id {
            Some(_) => "AND employee_id = $2",
            None => "AND $2 IS NULL",
        };
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM password_changes WHERE tenant_id = $1 {employee} \
             ORDER BY started_at DESC, id LIMIT $3"
        ))
        .bind(tenant_id)
        .bind(employee_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(change)
        .collect()
    }

    /// The latest change of each employee of `tenant_id` who has one (newest first by
    /// `started_at`, then by id, as [`Store::password_changes`] orders them), in one query:
    /// one index lookup per employee.
    pub async fn latest_changes(&self, tenant_id: &str) -> Result<Vec<PasswordChange>, StoreError> {
        sqlx::query(&format!(
            "SELECT {} FROM employees e JOIN password_changes c ON c.id = \
             (SELECT p.id FROM password_changes p WHERE p.tenant_id = e.tenant_id \
              AND p.employee_id = e.id ORDER BY p.started_at DESC, p.id LIMIT 1) \
             WHERE e.tenant_id = $1",
            prefixed("c")
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .db()?
        .iter()
        .map(change)
        .collect()
    }

    /// Change `id` of `tenant_id`.
    pub async fn password_change(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<PasswordChange, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM password_changes WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .db()?
        .ok_or(StoreError::NotFound("password change"))?;
        change(&row)
    }

    /// Records connector `connector_id`'s outcome of change `id` (replacing an earlier one).
    pub async fn record_change_outcome(
        &self,
        tenant_id: &str,
        id: &str,
        connector_id: &str,
        outcome: serde_json::Value,
        now: UnixTime,
    ) -> Result<PasswordChange, StoreError> {
        let op = RecordOutcome {
            tenant_id: tenant_id.to_string(),
            id: id.to_string(),
            connector_id: connector_id.to_string(),
            outcome,
            now,
        };
        self.transact(Scope::Transaction, op).await
    }

    /// Moves change `id` to `state` (with `failure` when it failed). A final change does not
    /// move again.
    pub async fn set_change_state(
        &self,
        tenant_id: &str,
        id: &str,
        state: ChangeState,
        failure: Option<&str>,
        now: UnixTime,
    ) -> Result<PasswordChange, StoreError> {
        let op = SetState {
            tenant_id: tenant_id.to_string(),
            id: id.to_string(),
            state,
            failure: failure.map(str::to_string),
            now,
        };
        match self.transact(Scope::Statement, op).await? {
            Some(change) => Ok(change),
            None => {
                let current = self.password_change(tenant_id, id).await?;
                Err(already_final(id, current.state.to_string()))
            }
        }
    }

    /// Ends change `id` whose directories took the password, in one transaction: records
    /// `outcome` (a connector's outcome not recorded yet, as [`Store::record_change_outcome`]
    /// would), releases its held delivery `delivery_id` (superseding the older queued one),
    /// moves the change to `state` (with `failure`), prunes the employee's password history to
    /// the tenant's length, and appends `audit(release)` to the audit chain.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_applied_change(
        &self,
        tenant_id: &str,
        id: &str,
        outcome: Option<(&str, serde_json::Value)>,
        delivery_id: &str,
        state: ChangeState,
        failure: Option<&str>,
        audit: impl FnOnce(&deliveries::Release) -> NewAuditRecord + Send + 'static,
        now: UnixTime,
    ) -> Result<(PasswordChange, deliveries::Release), StoreError> {
        let op = Finish {
            tenant_id: tenant_id.to_string(),
            id: id.to_string(),
            outcome: outcome.map(|(connector, outcome)| (connector.to_string(), outcome)),
            delivery_id: delivery_id.to_string(),
            state,
            failure: failure.map(str::to_string),
            audit,
            now,
        };
        self.transact(Scope::Transaction, op).await
    }

    /// Every change left held or applying, on every tenant, oldest first: what start-up must
    /// resolve (ask the directory, then release or destroy the held delivery).
    pub async fn unfinished_changes(&self) -> Result<Vec<UnfinishedChange>, StoreError> {
        let columns = prefixed("c");
        let rows = sqlx::query(&format!(
            "SELECT {columns}, d.id AS held_delivery_id FROM password_changes c \
             LEFT JOIN deliveries d ON d.change_id = c.id AND d.state = 'held' \
             WHERE c.state IN ('held', 'applying') ORDER BY c.started_at, c.id"
        ))
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter()
            .map(|row| {
                Ok(UnfinishedChange {
                    change: change(row)?,
                    held_delivery_id: row.try_get("held_delivery_id").db()?,
                })
            })
            .collect()
    }
}

/// [`Store::begin_change_audited`]'s transaction.
struct Begin<A> {
    tenant_id: String,
    new: NewChange,
    now: UnixTime,
    audit: A,
}

impl<A> Transact for Begin<A>
where
    A: FnOnce(&PasswordChange, &Delivery) -> Option<NewAuditRecord> + Send + 'static,
{
    type Output = (PasswordChange, Delivery);

    async fn run<S: Statements>(self, statements: &mut S) -> Result<Self::Output, StoreError> {
        let Begin {
            tenant_id,
            new,
            now,
            audit,
        } = self;
        // The key, and the highest sequence sealed for its slot, in one statement. PostgreSQL:
        // the key row's lock orders concurrent changes of one key, so the sequence check below
        // sees every earlier envelope; SQLite has one writer already.
        let sql = match statements.backend() {
            Backend::Postgres => &*KEY_FOR_BEGIN_POSTGRES,
            Backend::Sqlite => &*KEY_FOR_BEGIN,
        };
        let row = statements
            .fetch_optional(sql, args![&tenant_id, &new.key_id, &new.slot])
            .await
            .db()?
            .ok_or(StoreError::NotFound("key"))?;
        let key = keys::key(&row)?;
        let last: Option<i64> = row.column("last_sequence")?;
        if key.employee_id.as_deref() != Some(new.employee_id.as_str()) {
            return Err(StoreError::KeyRefused {
                key: key.id,
                status: key.status,
                refusal: KeyRefusal::NotTheEmployees,
            });
        }
        key.require_new_password()?;
        if new.sequence <= last.unwrap_or(0) {
            return Err(StoreError::SequenceTaken);
        }
        let change_id = new_id();
        let options = new.options.to_string();
        let row = statements
            .fetch_one(
                &INSERT_CHANGE,
                args![
                    &change_id,
                    &tenant_id,
                    &new.employee_id,
                    &new.key_id,
                    &new.actor,
                    new.mode.as_str(),
                    &options,
                    now
                ],
            )
            .await
            .db()?;
        let change = change(&row)?;
        let row = statements
            .fetch_one(
                &INSERT_HELD_DELIVERY,
                args![
                    &new.delivery_id,
                    &tenant_id,
                    &new.key_id,
                    &new.slot,
                    &change_id,
                    &new.envelope,
                    now,
                    new.not_after,
                    new.sequence,
                    &new.receipt
                ],
            )
            .await
            .or_conflict("a password change for this key and account is already in flight")?;
        let delivery = deliveries::delivery(&row)?;
        if let Some(hash) = &new.history_hash {
            super::history::append_ahead_in(
                statements,
                &tenant_id,
                &new.employee_id,
                &change_id,
                hash,
            )
            .await?;
        }
        if let Some(record) = audit(&change, &delivery) {
            super::audit::append_in(statements, record, now).await?;
        }
        Ok((change, delivery))
    }
}

static KEY_FOR_BEGIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {}, (SELECT MAX(sequence) FROM deliveries WHERE key_id = $2 AND slot = $3) \
         AS last_sequence FROM keys WHERE tenant_id = $1 AND id = $2",
        keys::COLUMNS
    )
});

static KEY_FOR_BEGIN_POSTGRES: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{} FOR UPDATE", *KEY_FOR_BEGIN));

static INSERT_CHANGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO password_changes (id, tenant_id, employee_id, key_id, actor, mode, \
         options, state, outcomes, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'held', '{{}}', $8, $8) RETURNING {COLUMNS}"
    )
});

static INSERT_HELD_DELIVERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO deliveries (id, tenant_id, key_id, slot, change_id, state, ciphertext, \
         created_at, not_after, sequence, receipt) \
         VALUES ($1, $2, $3, $4, $5, 'held', $6, $7, $8, $9, $10) RETURNING {}",
        deliveries::COLUMNS
    )
});

/// [`Store::record_change_outcome`]'s transaction.
struct RecordOutcome {
    tenant_id: String,
    id: String,
    connector_id: String,
    outcome: serde_json::Value,
    now: UnixTime,
}

impl Transact for RecordOutcome {
    type Output = PasswordChange;

    async fn run<S: Statements>(self, statements: &mut S) -> Result<PasswordChange, StoreError> {
        let RecordOutcome {
            tenant_id,
            id,
            connector_id,
            outcome,
            now,
        } = self;
        update_outcome_in(statements, &tenant_id, &id, &connector_id, now, |slot| {
            *slot = outcome
        })
        .await
    }
}

/// [`Store::set_change_state`]'s statement: the moved change, none when it was final.
struct SetState {
    tenant_id: String,
    id: String,
    state: ChangeState,
    failure: Option<String>,
    now: UnixTime,
}

impl Transact for SetState {
    type Output = Option<PasswordChange>;

    async fn run<S: Statements>(
        self,
        statements: &mut S,
    ) -> Result<Option<PasswordChange>, StoreError> {
        set_state_in(
            statements,
            &self.tenant_id,
            &self.id,
            self.state,
            self.failure.as_deref(),
            None,
            self.now,
        )
        .await
    }
}

/// [`Store::finish_applied_change`]'s transaction.
struct Finish<A> {
    tenant_id: String,
    id: String,
    outcome: Option<(String, serde_json::Value)>,
    delivery_id: String,
    state: ChangeState,
    failure: Option<String>,
    audit: A,
    now: UnixTime,
}

impl<A> Transact for Finish<A>
where
    A: FnOnce(&deliveries::Release) -> NewAuditRecord + Send + 'static,
{
    type Output = (PasswordChange, deliveries::Release);

    async fn run<S: Statements>(self, statements: &mut S) -> Result<Self::Output, StoreError> {
        let Finish {
            tenant_id,
            id,
            outcome,
            delivery_id,
            state,
            failure,
            audit,
            now,
        } = self;
        let recorded = match outcome {
            Some((connector_id, outcome)) => Some(
                merged_outcomes_in(statements, &tenant_id, &id, &connector_id, |slot| {
                    *slot = outcome
                })
                .await?,
            ),
            None => None,
        };
        let release = deliveries::release_in(statements, &tenant_id, &delivery_id, now).await?;
        // The state and the outcome in one statement.
        let change = set_state_in(
            statements,
            &tenant_id,
            &id,
            state,
            failure.as_deref(),
            recorded.as_deref(),
            now,
        )
        .await?
        .ok_or_else(|| already_final(&id, "final".into()))?;
        super::history::prune_in(statements, &tenant_id, &change.employee_id).await?;
        super::audit::append_in(statements, audit(&release), now).await?;
        Ok((change, release))
    }
}

/// Change `id`'s outcomes read inside a transaction with `update` applied to connector
/// `connector_id`'s (null when it has none yet), as the JSON to store.
async fn merged_outcomes_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    id: &str,
    connector_id: &str,
    update: impl FnOnce(&mut serde_json::Value),
) -> Result<String, StoreError> {
    let row = statements
        .fetch_optional(
            "SELECT outcomes FROM password_changes WHERE tenant_id = $1 AND id = $2",
            args![tenant_id, id],
        )
        .await
        .db()?
        .ok_or(StoreError::NotFound("password change"))?;
    let mut all = outcomes(&row.column::<String>("outcomes")?)?;
    update(
        all.entry(connector_id.to_string())
            .or_insert(serde_json::Value::Null),
    );
    Ok(serde_json::Value::Object(all).to_string())
}

/// Applies `update` to connector `connector_id`'s outcome of change `id` (null when it has
/// none yet) inside a transaction.
pub(super) async fn update_outcome_in(
    statements: &mut impl Statements,
    tenant_id: &str,
    id: &str,
    connector_id: &str,
    now: UnixTime,
    update: impl FnOnce(&mut serde_json::Value),
) -> Result<PasswordChange, StoreError> {
    let outcomes = merged_outcomes_in(statements, tenant_id, id, connector_id, update).await?;
    let row = statements
        .fetch_one(&UPDATE_OUTCOMES, args![tenant_id, id, &outcomes, now])
        .await
        .db()?;
    change(&row)
}

static UPDATE_OUTCOMES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE password_changes SET outcomes = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )
});
