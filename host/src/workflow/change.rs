//! The password-change state machine, from the admin's request to a released delivery:
//!
//! 1. preconditions: the employee has a key that may receive a new password, the tenant has an
//!    enabled primary connector (409 naming which is missing);
//! 2. the candidate: typed twice (manual) or drawn to satisfy every connector's policy
//!    (generate);
//! 3. policy: every enabled connector's `check-password` and the host's own history; every
//!    violation comes back together, each naming its connector (422);
//! 4. seal to the key and record the change with its *held* delivery (one transaction);
//! 5. the primary's `set-password`; on failure the held delivery is destroyed and the change
//!    failed, with the directory's reason in words (502/503); a write whose answer was lost
//!    (the directory unreachable or slow, the plugin out of time) may have landed, so the
//!    primary's `password-changed-at` decides, and when it cannot be asked the change stays
//!    applying for `recovery` to decide (503 naming the change);
//! 6. the secondaries in order (a failure makes the change partially applied);
//! 7. release (superseding the older queued envelope), wake the key's workstations, remember
//!    the password in the host's history.
//!
//! Every step is audited, never with a secret. A crash between 4 and 7 is resolved by
//! `recovery`. The same machine serves a user's own change from the workstation (the
//! connector's `change-password` with the old password from the key).
//!
//! It must never return, log or store the plaintext: it lives in `SecretString`s dropped (and
//! zeroized) when the request ends; generated passwords are never shown to anyone.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use super::connectors::{Connectors, ResolveError, TenantConnector};
use super::describe::{self, FailureKind};
use super::generator::{self, GeneratorError};
use super::history::{self, HistoryError};
use super::manual::{self, ManualInputError};
use super::policy::{self, ConnectorPolicy, PolicyError};
use super::recovery::{InFlight, crash_point, delay_point};
use crate::delivery::{self, Waker};
use crate::runtime::wit::types::{
    Account, AccountQuery, ConnectorError, ErrorInfo, MatchMode, SetOptions, SetStatus, Violation,
};
use crate::runtime::{CallError, PluginError};
use crate::store::{
    ChangeMode, ChangeState, Delivery, Employee, Key, KeyStatus, NewAuditRecord, NewChange,
    PasswordChange, Release, Store, StoreError, now,
};

/// The id the host's own history check uses where a connector id would be.
pub const HOST_HISTORY: &str = "latchkey";

/// What the admin asked for.
pub enum Candidate {
    /// Typed twice.
    Manual {
        password: SecretString,
        confirm: SecretString,
    },
    /// Drawn by the generator (default length when `None`).
    Generate { length: Option<u32> },
}

/// A reset requested by an admin.
pub struct ResetRequest {
    pub tenant_id: String,
    pub employee_id: String,
    /// The principal asking (for the change record and the audit).
    pub actor: String,
    pub candidate: Candidate,
    pub must_change_at_next_logon: bool,
    pub unlock: bool,
}

/// A precondition that is not met (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Precondition {
    #[error("the employee has no hardware key: register a key and assign it to the employee first")]
    NoKey,
    #[error(
        "the employee's key {key} is {status}; a new password needs a key that is ready, \
         reserved or active"
    )]
    KeyStatus { key: String, status: KeyStatus },
    #[error(
        "the tenant has no enabled primary connector: add or enable the connector of the \
         directory passwords are set in"
    )]
    NoPrimaryConnector,
    #[error("a password change for this employee's key is already in progress; wait for it")]
    ChangeInFlight,
    #[error("{0}")]
    PolicyConflict(String),
    #[error("the employee's account was not found through connector {connector}: {message}")]
    AccountMissing { connector: String, message: String },
}

impl Precondition {
    /// A stable code for the API (`no-key`, `key-status`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Precondition::NoKey => "no-key",
            Precondition::KeyStatus { .. } => "key-status",
            Precondition::NoPrimaryConnector => "no-primary-connector",
            Precondition::ChangeInFlight => "change-in-flight",
            Precondition::PolicyConflict(_) => "policy-conflict",
            Precondition::AccountMissing { .. } => "account-missing",
        }
    }
}

/// One violation found by one connector (or by the host's history).
#[derive(Debug, Clone)]
pub struct ConnectorViolation {
    pub connector: String,
    pub plugin: String,
    pub violation: Violation,
}

impl ConnectorViolation {
    pub fn to_json(&self) -> Value {
        let mut value = describe::violation(&self.violation);
        value["connector"] = json!(self.connector);
        value["plugin"] = json!(self.plugin);
        value
    }
}

/// Why a change did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Bad typed input (422, beside the field).
    #[error("{error}")]
    Input { error: ManualInputError },
    #[error("{0}")]
    Precondition(Precondition),
    /// The candidate breaks rules (422, every one listed).
    #[error("the password does not meet the policy ({} violation(s))", .0.len())]
    Violations(Vec<ConnectorViolation>),
    /// A directory failed or is down (503 when worth retrying, 502 otherwise).
    #[error("{message}")]
    Directory {
        connector: String,
        plugin: String,
        kind: FailureKind,
        message: String,
        detail: Value,
        /// The change that failed, when it got that far.
        change_id: Option<String>,
    },
    #[error(transparent)]
    NotFound(StoreError),
    /// The database is unavailable or its disk is full (503/507): worth retrying once fixed.
    #[error(transparent)]
    Database(StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ChangeError {
    fn from(error: StoreError) -> ChangeError {
        match error {
            StoreError::NotFound(_) => ChangeError::NotFound(error),
            StoreError::Unavailable(_) | StoreError::DiskFull(_) => ChangeError::Database(error),
            StoreError::KeyRefused { key, status, .. } => {
                ChangeError::Precondition(Precondition::KeyStatus { key, status })
            }
            other => ChangeError::Internal(other.to_string()),
        }
    }
}

impl From<ResolveError> for ChangeError {
    fn from(error: ResolveError) -> ChangeError {
        match error {
            ResolveError::Store(store) => store.into(),
            other => ChangeError::Internal(other.to_string()),
        }
    }
}

impl From<HistoryError> for ChangeError {
    fn from(error: HistoryError) -> ChangeError {
        match error {
            HistoryError::Store(store) => store.into(),
            hash => ChangeError::Internal(hash.to_string()),
        }
    }
}

/// A change that went through: the delivery is queued for the key.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub change_id: String,
    pub state: ChangeState,
}

/// The workflow's dependencies.
#[derive(Clone)]
pub struct Workflow {
    pub store: Store,
    pub connectors: Arc<Connectors>,
    pub waker: Arc<Waker>,
}

/// A connector with the employee's account in it.
struct Target {
    connector: TenantConnector,
    /// `None`: the account does not exist in this (secondary) directory.
    account: Option<Account>,
}

impl Target {
    fn name(&self) -> &str {
        &self.connector.record.id
    }
    fn plugin(&self) -> &str {
        &self.connector.record.plugin
    }
}

fn directory_error(target: &Target, error: &CallError, change_id: Option<String>) -> ChangeError {
    let (detail, kind) = describe::call_error(error);
    let message = format!(
        "{} ({}): {}",
        target.name(),
        target.plugin(),
        detail["message"].as_str().unwrap_or("failed")
    );
    ChangeError::Directory {
        connector: target.name().to_string(),
        plugin: target.plugin().to_string(),
        kind,
        message,
        detail,
        change_id,
    }
}

impl Workflow {
    /// The key a new password for `employee` is sealed to: their first key that allows one.
    async fn key_for(&self, tenant_id: &str, employee: &Employee) -> Result<Key, ChangeError> {
        let keys = self.store.keys(tenant_id, Some(&employee.id)).await?;
        if let Some(key) = keys.iter().find(|k| k.status.allows_new_password()) {
            return Ok(key.clone());
        }
        match keys.into_iter().next() {
            Some(key) => Err(ChangeError::Precondition(Precondition::KeyStatus {
                key: key.id,
                status: key.status,
            })),
            None => Err(ChangeError::Precondition(Precondition::NoKey)),
        }
    }

    /// Every enabled connector with the employee's account in it; the primary first.
    async fn targets(&self, employee: &Employee) -> Result<Vec<Target>, ChangeError> {
        let connectors = self.connectors.enabled(&employee.tenant_id).await?;
        if !connectors.first().is_some_and(TenantConnector::is_primary) {
            return Err(ChangeError::Precondition(Precondition::NoPrimaryConnector));
        }
        let mut targets = Vec::new();
        for connector in connectors {
            let account = if connector.record.id == employee.connector_id {
                describe::account_from_json(&employee.account).or_else(|| {
                    Some(Account {
                        id: employee.account_id.clone(),
                        username: employee.username.clone(),
                        principal_name: None,
                        display_name: employee.display_name.clone(),
                        email: None,
                        location: None,
                        enabled: true,
                        locked_out: false,
                        synced_from_on_premises: false,
                    })
                })
            } else {
                let query = AccountQuery {
                    text: employee.username.clone(),
                    mode: MatchMode::Exact,
                };
                let target = Target {
                    connector: connector.clone(),
                    account: None,
                };
                match connector.instance.find_accounts(&query, None, 2).await {
                    Ok(page) => page.accounts.into_iter().next(),
                    Err(error) => return Err(directory_error(&target, &error, None)),
                }
            };
            if account.is_none() && connector.is_primary() {
                return Err(ChangeError::Precondition(Precondition::AccountMissing {
                    connector: connector.record.id.clone(),
                    message: format!("no account named {}", employee.username),
                }));
            }
            targets.push(Target { connector, account });
        }
        Ok(targets)
    }

    /// The merged policy of every target that has the account and reports one.
    async fn merged_policy(
        &self,
        targets: &[Target],
    ) -> Result<crate::runtime::wit::types::PasswordPolicy, ChangeError> {
        let mut policies = Vec::new();
        for target in targets {
            let Some(account) = &target.account else {
                continue;
            };
            match target.connector.instance.get_policy(account).await {
                Ok(policy) => policies.push(ConnectorPolicy {
                    connector: target.name().to_string(),
                    policy,
                }),
                Err(CallError::Plugin(PluginError::Unsupported(_))) => {}
                Err(error) => return Err(directory_error(target, &error, None)),
            }
        }
        policy::merge(&policies).map_err(|e| match e {
            PolicyError::NoPolicy => ChangeError::Internal(
                "no connector reports a password policy to generate a password for".into(),
            ),
            conflict => {
                ChangeError::Precondition(Precondition::PolicyConflict(conflict.to_string()))
            }
        })
    }

    /// Every violation of `candidate`: each connector's check and, unless `history` is false,
    /// the host's history (argon2id verifies on the blocking pool, run while the connectors
    /// check).
    async fn violations(
        &self,
        employee: &Employee,
        targets: &[Target],
        candidate: &SecretString,
        history: bool,
    ) -> Result<Vec<ConnectorViolation>, ChangeError> {
        let connectors = async {
            let mut found = Vec::new();
            for target in targets {
                let Some(account) = &target.account else {
                    continue;
                };
                match target
                    .connector
                    .instance
                    .check_password(account, candidate)
                    .await
                {
                    Ok(list) => {
                        if let Some(error) = unreachable_behind(target, account, &list).await {
                            return Err(directory_error(target, &error, None));
                        }
                        found.extend(list.into_iter().map(|violation| ConnectorViolation {
                            connector: target.name().to_string(),
                            plugin: target.plugin().to_string(),
                            violation,
                        }))
                    }
                    Err(PluginError::Unsupported(_)) => {}
                    Err(error) => {
                        return Err(directory_error(target, &CallError::Plugin(error), None));
                    }
                }
            }
            Ok(found)
        };
        let in_history = async {
            if history {
                history::in_history(&self.store, &employee.tenant_id, &employee.id, candidate).await
            } else {
                Ok(false)
            }
        };
        let (found, in_history) = tokio::join!(connectors, in_history);
        let mut found = found?;
        if in_history? {
            found.push(ConnectorViolation {
                connector: HOST_HISTORY.into(),
                plugin: HOST_HISTORY.into(),
                violation: Violation::InHistory,
            });
        }
        Ok(found)
    }

    /// Checks a candidate without changing anything (the console's live feedback).
    pub async fn check(
        &self,
        tenant_id: &str,
        employee_id: &str,
        candidate: &SecretString,
    ) -> Result<Vec<ConnectorViolation>, ChangeError> {
        let employee = self.store.employee(tenant_id, employee_id).await?;
        let targets = self.targets(&employee).await?;
        self.violations(&employee, &targets, candidate, true).await
    }

    async fn audit(
        &self,
        tenant_id: &str,
        actor: &str,
        action: &str,
        subject: &str,
        details: Value,
    ) {
        let record = audit_record(tenant_id, actor, action, subject, details);
        if let Err(error) = self.store.append_audit(record, now()).await {
            tracing::error!(%error, action, "writing the audit record failed");
        }
    }

    /// Resets the employee's password: the whole flow. The answer never holds the password.
    pub async fn reset(&self, request: ResetRequest) -> Result<Accepted, ChangeError> {
        let tenant_id = request.tenant_id.as_str();
        let length = request.candidate.length();
        let typed = match request.candidate {
            Candidate::Manual { password, confirm } => Some(
                manual::manual(password, &confirm).map_err(|error| ChangeError::Input { error })?,
            ),
            Candidate::Generate { .. } => None,
        };
        let employee = self.store.employee(tenant_id, &request.employee_id).await?;
        let key = self.key_for(tenant_id, &employee).await?;
        let targets = self.targets(&employee).await?;
        let (mode, password, origin) = match typed {
            Some(password) => {
                let violations = self
                    .violations(&employee, &targets, &password, true)
                    .await?;
                if !violations.is_empty() {
                    return Err(ChangeError::Violations(violations));
                }
                (ChangeMode::Manual, password, history::Origin::Typed)
            }
            None => {
                let policy = self.merged_policy(&targets).await?;
                let account = targets[0]
                    .account
                    .as_ref()
                    .expect("the primary has the account");
                let mut last = Vec::new();
                let mut accepted = None;
                // A generated password satisfies the merged policy by construction; the
                // connectors' own checks still have the last word. The history is not asked:
                // 20 characters drawn by a CSPRNG (about 115 bits) do not repeat an earlier
                // password, and its argon2 verifies are the most expensive part of a change.
                for _ in 0..3 {
                    let candidate = generator::generate(&policy, account, length).map_err(
                        |e: GeneratorError| {
                            ChangeError::Precondition(Precondition::PolicyConflict(e.to_string()))
                        },
                    )?;
                    last = self
                        .violations(&employee, &targets, &candidate, false)
                        .await?;
                    if last.is_empty() {
                        accepted = Some(candidate);
                        break;
                    }
                }
                match accepted {
                    Some(password) => {
                        let bits = generator::entropy_bits(&policy, password.expose_secret().len());
                        (
                            ChangeMode::Generate,
                            password,
                            history::Origin::Drawn { bits },
                        )
                    }
                    None => return Err(ChangeError::Violations(last)),
                }
            }
        };
        let options = json!({
            "must_change_at_next_logon": request.must_change_at_next_logon,
            "unlock": request.unlock,
            "length": length,
        });
        let set_options = SetOptions {
            must_change_at_next_logon: request.must_change_at_next_logon,
            unlock: request.unlock,
            enforce_history: false,
        };
        self.apply(
            &employee,
            &key,
            &targets,
            &request.actor,
            mode,
            options,
            password,
            origin,
            Apply::Set(set_options),
        )
        .await
    }

    /// A user's own change from the workstation: `old` from the key, `new` typed or generated
    /// there. The primary's `change-password` runs (the directory checks the old password and
    /// its own history); secondaries are set as by an admin.
    pub async fn user_change(
        &self,
        tenant_id: &str,
        key: &Key,
        actor: &str,
        old: SecretString,
        new: SecretString,
    ) -> Result<Accepted, ChangeError> {
        let employee_id = key
            .employee_id
            .as_deref()
            .ok_or(ChangeError::Precondition(Precondition::NoKey))?;
        let employee = self.store.employee(tenant_id, employee_id).await?;
        key.require_new_password()?;
        let targets = self.targets(&employee).await?;
        let violations = self.violations(&employee, &targets, &new, true).await?;
        if !violations.is_empty() {
            return Err(ChangeError::Violations(violations));
        }
        self.apply(
            &employee,
            key,
            &targets,
            actor,
            ChangeMode::Manual,
            json!({"user_change": true}),
            new,
            history::Origin::Typed,
            Apply::Change(old),
        )
        .await
    }

    /// Steps 4 to 7: seal and hold, primary, secondaries, release.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        employee: &Employee,
        key: &Key,
        targets: &[Target],
        actor: &str,
        mode: ChangeMode,
        options: Value,
        password: SecretString,
        origin: history::Origin,
        how: Apply,
    ) -> Result<Accepted, ChangeError> {
        let tenant_id = employee.tenant_id.as_str();
        // The history's hash is written ahead of the directory, with the change: a crash after
        // the directory took the password must not leave it out of the history (the crash
        // matrix checks it). A tenant that remembers nothing hashes nothing.
        let slot = employee.username.clone();
        let start = self.store.change_start(tenant_id, &key.id, &slot).await?;
        let history_hash = if start.history_length > 0 {
            Some(history::start_hash(&password, origin).await?)
        } else {
            None
        };
        let server_key = self.store.tenant_signing_key(tenant_id).await?;
        let mut attempt = 0;
        let mut last_sequence = start.last_sequence;
        let (change, held) = loop {
            let at = now();
            let sequence = last_sequence + 1;
            let sealed = delivery::seal_for_key(
                &server_key,
                key,
                &slot,
                &employee.username,
                &password,
                sequence,
                at,
                delivery::seal::DEFAULT_VALIDITY_SECONDS,
            )
            .map_err(|e| ChangeError::Internal(e.to_string()))?;
            let new = NewChange {
                employee_id: employee.id.clone(),
                key_id: key.id.clone(),
                actor: actor.to_string(),
                mode,
                options: options.clone(),
                slot: slot.clone(),
                delivery_id: sealed.delivery_id,
                sequence: sealed.sequence,
                envelope: sealed.envelope,
                receipt: sealed.receipt,
                not_after: Some(sealed.not_after),
                history_hash: history_hash.clone(),
            };
            // Written in the begin's transaction, which may run on the store's writer thread.
            let (tenant, who, subject, key_id, options) = (
                tenant_id.to_string(),
                actor.to_string(),
                employee.id.clone(),
                key.id.clone(),
                options.clone(),
            );
            let begin_audit = move |change: &PasswordChange, held: &Delivery| {
                Some(audit_record(
                    &tenant,
                    &who,
                    "password.change.begin",
                    &subject,
                    json!({"change": change.id, "key": key_id, "mode": mode.as_str(),
                           "options": options, "delivery": held.id}),
                ))
            };
            match self
                .store
                .begin_change_audited(tenant_id, new, at, begin_audit)
                .await
            {
                Ok(begun) => break begun,
                Err(StoreError::SequenceTaken) if attempt < 3 => {
                    attempt += 1;
                    last_sequence = self.store.last_sequence(&key.id, &slot).await?;
                }
                Err(StoreError::Conflict(_) | StoreError::SequenceTaken) => {
                    return Err(ChangeError::Precondition(Precondition::ChangeInFlight));
                }
                Err(other) => return Err(other.into()),
            }
        };
        let change_id = change.id.clone();
        // Until this returns, the sweeper's recovery leaves the change to this request.
        let _in_flight = InFlight::begin(&change_id);
        // Crash points (the crash matrix, `failpoints` builds only): here sealed and held,
        // nothing written to a directory.
        crash_point("change::after-seal");
        self.store
            .set_change_state(tenant_id, &change_id, ChangeState::Applying, None, now())
            .await?;

        // The primary: its failure ends the change with nothing set and the envelope destroyed.
        let primary = &targets[0];
        let account = primary
            .account
            .as_ref()
            .expect("the primary has the account");
        // A slow directory (the tests' delay point, `failpoints` builds only).
        delay_point("change::before-set-password").await;
        let result = match &how {
            Apply::Set(options) => {
                primary
                    .connector
                    .instance
                    .set_password(account, &password, *options)
                    .await
            }
            Apply::Change(old) => {
                primary
                    .connector
                    .instance
                    .change_password(account, old, &password)
                    .await
            }
        };
        // A primary that only waits for sync did not take the password: nothing would.
        let result = match result {
            Ok(outcome) if matches!(outcome.status, SetStatus::AwaitingSync) => Err(
                CallError::Connector(ConnectorError::InvalidConfig(ErrorInfo {
                    message: format!(
                        "this account is mastered in another directory and reaches {} by sync, \
                         so the primary connector cannot set its password: make the directory \
                         the account is mastered in (on-premises Active Directory) the primary \
                         connector and {} a secondary one",
                        primary.name(),
                        primary.name()
                    ),
                    directory_text: None,
                })),
            ),
            other => other,
        };
        // The directory answered; its outcome is not recorded yet.
        crash_point("change::set-password");
        // A write whose answer was lost may have landed: the directory decides, now or later.
        let result = match result {
            Err(error) if answer_may_be_lost(&error) => {
                match self.confirm(primary, account, change.started_at).await {
                    Some(true) => Ok(confirmed_outcome()),
                    Some(false) => Err(error),
                    None => {
                        return Err(self
                            .leave_unconfirmed(employee, primary, &change_id, actor, &error)
                            .await);
                    }
                }
            }
            other => other,
        };
        // The primary's outcome: recorded now when secondaries follow (each records its own),
        // else with the release, in the same transaction (one write less; recovery asks the
        // directory, not this record, whether the primary took the password).
        let mut primary_outcome = None;
        match result {
            Ok(outcome) => {
                let outcome = describe::set_outcome(&outcome);
                if targets.len() > 1 {
                    self.store
                        .record_change_outcome(
                            tenant_id,
                            &change_id,
                            primary.name(),
                            outcome,
                            now(),
                        )
                        .await?;
                } else {
                    primary_outcome = Some((primary.name(), outcome));
                }
                crash_point("change::after-primary");
            }
            Err(error) => {
                let (detail, _) = describe::call_error(&error);
                let failure = format!(
                    "{} ({}) did not set the password: {}",
                    primary.name(),
                    primary.plugin(),
                    detail["message"].as_str().unwrap_or("failed")
                );
                let mut outcome = detail.clone();
                outcome["ok"] = json!(false);
                self.store
                    .record_change_outcome(tenant_id, &change_id, primary.name(), outcome, now())
                    .await?;
                self.store
                    .discard_held_delivery(tenant_id, &held.id, &failure, now())
                    .await?;
                self.store
                    .forget_change_password(tenant_id, &employee.id, &change_id)
                    .await?;
                self.store
                    .set_change_state(
                        tenant_id,
                        &change_id,
                        ChangeState::Failed,
                        Some(&failure),
                        now(),
                    )
                    .await?;
                self.audit(
                    tenant_id,
                    actor,
                    "password.change.failed",
                    &employee.id,
                    json!({"change": change_id, "connector": primary.name(), "error": detail,
                           "directory_text": describe::directory_text(&error)}),
                )
                .await;
                if let CallError::Connector(crate::runtime::wit::types::ConnectorError::Policy(
                    list,
                )) = &error
                {
                    return Err(ChangeError::Violations(
                        list.iter()
                            .map(|violation| ConnectorViolation {
                                connector: primary.name().to_string(),
                                plugin: primary.plugin().to_string(),
                                violation: violation.clone(),
                            })
                            .collect(),
                    ));
                }
                return Err(directory_error(primary, &error, Some(change_id)));
            }
        }

        // Secondaries, in order: the password is set in the primary already, so a failure here
        // is reported, not undone.
        let mut all_applied = true;
        let mut awaiting_sync = Vec::new();
        for target in &targets[1..] {
            let outcome = match &target.account {
                None => {
                    all_applied = false;
                    json!({"ok": false, "kind": "not-found",
                           "message": format!("no account named {} in this directory",
                                              employee.username)})
                }
                Some(account) => {
                    let options = match &how {
                        Apply::Set(options) => *options,
                        Apply::Change(_) => SetOptions {
                            must_change_at_next_logon: false,
                            unlock: false,
                            enforce_history: false,
                        },
                    };
                    match target
                        .connector
                        .instance
                        .set_password(account, &password, options)
                        .await
                    {
                        Ok(outcome) => {
                            if matches!(outcome.status, SetStatus::AwaitingSync) {
                                awaiting_sync.push(target.name().to_string());
                                self.watch_sync(
                                    &change_id,
                                    &target.connector,
                                    account,
                                    change.started_at,
                                    now(),
                                )
                                .await;
                            }
                            describe::set_outcome(&outcome)
                        }
                        Err(error) => {
                            all_applied = false;
                            let (mut detail, _) = describe::call_error(&error);
                            detail["ok"] = json!(false);
                            detail
                        }
                    }
                }
            };
            self.store
                .record_change_outcome(tenant_id, &change_id, target.name(), outcome, now())
                .await?;
        }
        crash_point("change::after-secondaries");

        let state = if all_applied {
            ChangeState::Applied
        } else {
            ChangeState::PartiallyApplied
        };
        let failure = (!all_applied).then_some(
            "the password is set in the primary directory but not in every secondary one; \
             see each connector's outcome",
        );
        // Release, final state and audit record in one transaction.
        let (tenant, who, subject, change, delivery) = (
            tenant_id.to_string(),
            actor.to_string(),
            employee.id.clone(),
            change_id.clone(),
            held.id.clone(),
        );
        let applied_audit = move |release: &Release| {
            audit_record(
                &tenant,
                &who,
                "password.change.applied",
                &subject,
                json!({"change": change, "state": state.as_str(), "delivery": delivery,
                       "superseded": release.superseded, "awaiting_sync": awaiting_sync}),
            )
        };
        crash_point("change::before-release");
        self.store
            .finish_applied_change(
                tenant_id,
                &change_id,
                primary_outcome,
                &held.id,
                state,
                failure,
                applied_audit,
                now(),
            )
            .await?;
        // Released, the key's workstations not woken.
        crash_point("change::after-release");
        self.waker.wake(&key.id);
        drop(password);
        Ok(Accepted { change_id, state })
    }
}

impl Workflow {
    /// Whether the primary's directory took the password of a change begun at `started_at`,
    /// by its `password-changed-at`; None when it cannot be asked now. A connector that cannot
    /// tell at all (no `password-changed-at`) never will: its failed write stands as failed.
    async fn confirm(&self, primary: &Target, account: &Account, started_at: i64) -> Option<bool> {
        match primary
            .connector
            .instance
            .password_changed_at(account)
            .await
        {
            Ok(changed_at) => Some(changed_at.is_some_and(|at| at >= started_at)),
            Err(
                CallError::Plugin(PluginError::Unsupported(_))
                | CallError::Connector(ConnectorError::Unsupported(_)),
            ) => Some(false),
            Err(error) => {
                tracing::warn!(connector = %primary.name(), %error,
                    "cannot ask the primary directory whether it took the password");
                None
            }
        }
    }

    /// The primary's write may or may not have landed and the directory cannot be asked now:
    /// the change stays applying with its envelope held and a note for the admin; recovery
    /// asks the directory on a later sweep and releases or destroys the envelope. The error to
    /// answer with (503, naming the change).
    async fn leave_unconfirmed(
        &self,
        employee: &Employee,
        primary: &Target,
        change_id: &str,
        actor: &str,
        error: &CallError,
    ) -> ChangeError {
        let tenant_id = employee.tenant_id.as_str();
        let (detail, _) = describe::call_error(error);
        let note = format!(
            "{} ({}) did not confirm whether it took the new password: {} Latchkey asks the \
             directory again until it answers, then gives the password to the key if it took \
             it, or fails this change if not; reset again only after that.",
            primary.name(),
            primary.plugin(),
            detail["message"].as_str().unwrap_or("failed")
        );
        let mut outcome = detail.clone();
        outcome["ok"] = json!(false);
        outcome["unconfirmed"] = json!(true);
        let recorded = async {
            self.store
                .record_change_outcome(tenant_id, change_id, primary.name(), outcome, now())
                .await?;
            self.store
                .set_change_state(
                    tenant_id,
                    change_id,
                    ChangeState::Applying,
                    Some(&note),
                    now(),
                )
                .await
        };
        if let Err(error) = recorded.await {
            // Recovery still finds the change applying and decides it.
            tracing::error!(change = %change_id, %error, "recording an unconfirmed change failed");
        }
        self.audit(
            tenant_id,
            actor,
            "password.change.unconfirmed",
            &employee.id,
            json!({"change": change_id, "connector": primary.name(), "error": detail,
                   "directory_text": describe::directory_text(error)}),
        )
        .await;
        ChangeError::Directory {
            connector: primary.name().to_string(),
            plugin: primary.plugin().to_string(),
            kind: FailureKind::Unavailable,
            message: note,
            detail,
            change_id: Some(change_id.to_string()),
        }
    }
}

/// `check-password` cannot fail (its error is a list of violations), so a connector whose
/// directory did not answer says so as `rejected-by-directory`. When that is all it says, its
/// `get-policy` is asked: the directory's error when it fails too (a directory that is down is
/// a 503, not a refused password), None when it answers (the refusal stands).
async fn unreachable_behind(
    target: &Target,
    account: &Account,
    violations: &[Violation],
) -> Option<CallError> {
    let only_directory = !violations.is_empty()
        && violations
            .iter()
            .all(|v| matches!(v, Violation::RejectedByDirectory(_)));
    if !only_directory {
        return None;
    }
    match target.connector.instance.get_policy(account).await {
        Ok(_)
        | Err(
            CallError::Plugin(PluginError::Unsupported(_))
            | CallError::Connector(ConnectorError::Unsupported(_)),
        ) => None,
        Err(error) => Some(error),
    }
}

/// Whether a failed write may still have landed: the directory was unreachable or slow (the
/// connection may have been lost after the request went out) or the plugin ran out of time
/// (perhaps while the directory was writing). A refusal is an answer: nothing was set.
fn answer_may_be_lost(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Connector(ConnectorError::Unavailable(_))
            | CallError::Plugin(PluginError::DeadlineExceeded(_))
    )
}

/// The primary's outcome when only `password-changed-at` confirmed the write.
fn confirmed_outcome() -> crate::runtime::wit::types::SetOutcome {
    crate::runtime::wit::types::SetOutcome {
        status: SetStatus::Applied,
        steps: vec![crate::runtime::wit::types::StepOutcome {
            step: crate::runtime::wit::types::Step::SetPassword,
            done: true,
            detail: Some(
                "the answer was lost; the directory's password-changed-at confirmed it".into(),
            ),
        }],
        changed_at: None,
    }
}

/// An audit record of a change.
fn audit_record(
    tenant_id: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: Value,
) -> NewAuditRecord {
    NewAuditRecord::new(Some(tenant_id), actor, action, Some(subject), details)
}

/// How the primary sets the password.
enum Apply {
    /// An admin's reset.
    Set(SetOptions),
    /// A user's change, with the old password.
    Change(SecretString),
}

impl Candidate {
    fn length(&self) -> Option<u32> {
        match self {
            Candidate::Generate { length } => *length,
            Candidate::Manual { .. } => None,
        }
    }
}
