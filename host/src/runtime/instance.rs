//! A connector instance: one plugin enabled for one tenant, with the capabilities the tenant
//! granted, its configuration and its limits. Each call runs in a fresh store instantiated
//! from the plugin's pre-instantiated component, under a deadline and a memory cap, and the
//! store is dropped afterwards whatever happened; a plugin that loops, explodes or misbehaves
//! can fail only its own call.
//!
//! What a plugin returns is checked against size limits before anyone uses it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::call::{CallState, CapabilityDenied, DeadlineHit, MemoryLimitHit};
use super::registry::LoadedPlugin;
use super::validate;
use super::wit;
use super::wit::types::{
    Account, AccountPage, AccountQuery, ConnectorError, Features, Info, PasswordPolicy, Report,
    SetOptions, SetOutcome, Timestamp, Violation,
};
use crate::capabilities::graph::GraphApi;
use crate::capabilities::ldap::LdapDirectory;
use crate::capabilities::log::{LogTags, truncate};
use crate::capabilities::{CapabilitySet, graph, ldap};

/// Limits of one connector's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long one call may take, wall-clock, including the capability calls it makes.
    pub deadline: Duration,
    /// The most linear memory one call's instance may use.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            deadline: Duration::from_secs(10),
            memory_bytes: 64 << 20,
        }
    }
}

/// What a tenant configured for a connector.
pub struct ConnectorSettings {
    pub tenant: String,
    /// The connector's id within the tenant (for logs and audit).
    pub connector: String,
    /// The capabilities the tenant grants; the plugin gets those its manifest also requests.
    pub granted: CapabilitySet,
    /// The non-secret configuration (the `config` capability).
    pub config: Map<String, Value>,
    pub limits: Limits,
    /// The directory behind the `ldap` capability; none when not configured.
    pub ldap: Option<Arc<dyn LdapDirectory>>,
    /// Graph behind the `graph` capability; none when not configured.
    pub graph: Option<Arc<dyn GraphApi>>,
}

/// Why a call into a plugin failed (as opposed to the directory answering with an error).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(
        "the plugin did not answer within its deadline of {0:?}; the call was stopped: try again, \
         and if it keeps happening, check the connector's directory and tell whoever maintains \
         the plugin"
    )]
    DeadlineExceeded(Duration),
    #[error(
        "the plugin tried to use more than its memory limit of {limit_mib} MiB; the call was stopped"
    )]
    MemoryLimit { limit_mib: usize },
    #[error("the plugin overflowed its stack; the call was stopped")]
    StackOverflow,
    #[error("the plugin panicked: {message}")]
    Panicked { message: String },
    #[error("the plugin crashed: {trap}")]
    Trapped { trap: String },
    #[error(transparent)]
    CapabilityDenied(#[from] CapabilityDenied),
    #[error("the plugin's answer to `{function}` was refused: {reason}")]
    InvalidOutput {
        function: &'static str,
        reason: String,
    },
    #[error("the plugin does not declare support for `{0}`")]
    Unsupported(&'static str),
    #[error("too many plugin calls are running at once; try again in a moment")]
    Busy,
    #[error("the plugin failed: {0}")]
    Faulted(String),
}

/// A failed operation: either the plugin broke, or the directory (through the plugin) said no.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{}", describe_connector_error(.0))]
    Connector(ConnectorError),
}

fn describe_connector_error(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Policy(v) => {
            format!("the directory refused the password ({} reason(s))", v.len())
        }
        ConnectorError::NotFound(i) => format!("not found: {}", i.message),
        ConnectorError::Denied(i) => format!("denied: {}", i.message),
        ConnectorError::WrongOldPassword(i) => format!("wrong current password: {}", i.message),
        ConnectorError::Unavailable(i) => format!("unavailable: {}", i.message),
        ConnectorError::InvalidConfig(i) => format!("invalid configuration: {}", i.message),
        ConnectorError::Unsupported(i) => format!("unsupported: {}", i.message),
        ConnectorError::Internal(i) => format!("connector error: {}", i.message),
    }
}

/// What every call of one connector instance shares.
pub(crate) struct InstanceShared {
    pub(crate) tags: LogTags,
    pub(crate) requested: CapabilitySet,
    pub(crate) granted: CapabilitySet,
    pub(crate) effective: CapabilitySet,
    pub(crate) config: Map<String, Value>,
    pub(crate) limits: Limits,
    pub(crate) ldap: Arc<dyn LdapDirectory>,
    pub(crate) graph: Arc<dyn GraphApi>,
}

/// One plugin enabled for one tenant.
#[derive(Clone)]
pub struct ConnectorInstance {
    plugin: Arc<LoadedPlugin>,
    shared: Arc<InstanceShared>,
}

impl ConnectorInstance {
    /// Enable `plugin` with `settings`. Fails when the memory limit is above the server's
    /// ceiling.
    pub fn new(plugin: Arc<LoadedPlugin>, settings: ConnectorSettings) -> anyhow::Result<Self> {
        let ceiling = plugin.runtime().memory_ceiling();
        anyhow::ensure!(
            settings.limits.memory_bytes <= ceiling,
            "the memory limit of {} MiB is above the server's ceiling of {} MiB",
            settings.limits.memory_bytes >> 20,
            ceiling >> 20
        );
        let requested = plugin.manifest().requested();
        let shared = InstanceShared {
            tags: LogTags {
                plugin: plugin.manifest().id.as_str().into(),
                version: plugin.manifest().version.to_string().into(),
                tenant: settings.tenant.into(),
                connector: settings.connector.into(),
            },
            requested,
            granted: settings.granted,
            effective: requested.intersection(settings.granted),
            config: settings.config,
            limits: settings.limits,
            ldap: settings
                .ldap
                .unwrap_or_else(|| Arc::new(ldap::NotConfigured)),
            graph: settings
                .graph
                .unwrap_or_else(|| Arc::new(graph::NotConfigured)),
        };
        Ok(ConnectorInstance {
            plugin,
            shared: Arc::new(shared),
        })
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// What the plugin may use here: its manifest's request ∩ the tenant's grant.
    pub fn effective_capabilities(&self) -> CapabilitySet {
        self.shared.effective
    }

    /// The limits of this instance's calls.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    fn require(&self, feature: Features, function: &'static str) -> Result<(), PluginError> {
        if self.plugin.info().supports.contains(feature) {
            Ok(())
        } else {
            Err(PluginError::Unsupported(function))
        }
    }

    /// A fresh store with the instance in it, under one deadline for instantiation and call.
    async fn start(
        &self,
        function: &'static str,
        secrets: Vec<SecretString>,
    ) -> Result<Call, PluginError> {
        self.start_until(
            function,
            secrets,
            Instant::now() + self.shared.limits.deadline,
        )
        .await
    }

    async fn start_until(
        &self,
        function: &'static str,
        secrets: Vec<SecretString>,
        deadline: Instant,
    ) -> Result<Call, PluginError> {
        let runtime = self.plugin.runtime();
        let mut store = Store::new(
            runtime.engine(),
            CallState::new(self.shared.clone(), secrets),
        );
        store.limiter(|state| state.limiter());
        // Every epoch tick, a running plugin yields to the executor (so a loop never holds a
        // thread) and stops once its deadline has passed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineHit))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let mut call = Call {
            store,
            plugin: None,
            function,
            limits: self.shared.limits,
            deadline: deadline.into(),
        };
        let instantiated = tokio::time::timeout_at(
            call.deadline,
            self.plugin.pre().instantiate_async(&mut call.store),
        )
        .await;
        match instantiated {
            Ok(Ok(plugin)) => {
                call.plugin = Some(plugin);
                Ok(call)
            }
            Ok(Err(error)) => Err(call.finish::<()>(Outcome::Failed(error)).unwrap_err()),
            Err(_) => Err(call.finish::<()>(Outcome::WallClock).unwrap_err()),
        }
    }

    /// Who the connector is and what it supports.
    pub async fn describe(&self) -> Result<Info, PluginError> {
        let mut call = self.start("describe", vec![]).await?;
        let outcome = call
            .run(|p, s| p.latchkey_connector_connector().call_describe(s))
            .await;
        let info = call.finish(outcome)?;
        validate::info(&info).map_err(|reason| invalid("describe", reason))?;
        Ok(info)
    }

    /// Reachability and rights, as checks.
    pub async fn test_connection(&self) -> Result<Report, CallError> {
        let mut call = self.start("test-connection", vec![]).await?;
        let outcome = call
            .run(|p, s| p.latchkey_connector_connector().call_test_connection(s))
            .await;
        let report = checked(call.finish(outcome)?, "test-connection", validate::report)?;
        Ok(report)
    }

    /// Search accounts; at most `limit` (capped at [`validate::MAX_PAGE`]).
    pub async fn find_accounts(
        &self,
        query: &AccountQuery,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<AccountPage, CallError> {
        self.require(Features::IMPORT, "find-accounts")?;
        let limit = limit.min(validate::MAX_PAGE);
        let mut call = self.start("find-accounts", vec![]).await?;
        let outcome = call
            .run(|p, s| {
                p.latchkey_connector_connector()
                    .call_find_accounts(s, query, cursor, limit)
            })
            .await;
        checked(call.finish(outcome)?, "find-accounts", |page| {
            validate::page(page, limit)
        })
    }

    /// The policy in force for `account`.
    pub async fn get_policy(&self, account: &Account) -> Result<PasswordPolicy, CallError> {
        self.require(Features::POLICY, "get-policy")?;
        let mut call = self.start("get-policy", vec![]).await?;
        let outcome = call
            .run(|p, s| p.latchkey_connector_connector().call_get_policy(s, account))
            .await;
        checked(call.finish(outcome)?, "get-policy", validate::policy)
    }

    /// Every violation of `candidate`; empty when the connector accepts it.
    pub async fn check_password(
        &self,
        account: &Account,
        candidate: &SecretString,
    ) -> Result<Vec<Violation>, PluginError> {
        self.require(Features::POLICY, "check-password")?;
        let mut call = self
            .start("check-password", vec![candidate.clone()])
            .await?;
        let outcome = call
            .run(|p, s| {
                p.latchkey_connector_connector().call_check_password(
                    s,
                    account,
                    candidate.expose_secret(),
                )
            })
            .await;
        match call.finish(outcome)? {
            Ok(()) => Ok(vec![]),
            Err(violations) => {
                validate::violations(&violations)
                    .map_err(|reason| invalid("check-password", reason))?;
                Ok(violations)
            }
        }
    }

    /// An administrator's reset of `account`'s password.
    pub async fn set_password(
        &self,
        account: &Account,
        password: &SecretString,
        options: SetOptions,
    ) -> Result<SetOutcome, CallError> {
        self.require(Features::SET_PASSWORD, "set-password")?;
        let mut call = self.start("set-password", vec![password.clone()]).await?;
        let outcome = call
            .run(|p, s| {
                p.latchkey_connector_connector().call_set_password(
                    s,
                    account,
                    password.expose_secret(),
                    options,
                )
            })
            .await;
        checked(call.finish(outcome)?, "set-password", validate::outcome)
    }

    /// A user's change from `old` to `new`.
    pub async fn change_password(
        &self,
        account: &Account,
        old: &SecretString,
        new: &SecretString,
    ) -> Result<SetOutcome, CallError> {
        self.require(Features::CHANGE_PASSWORD, "change-password")?;
        let mut call = self
            .start("change-password", vec![old.clone(), new.clone()])
            .await?;
        let outcome = call
            .run(|p, s| {
                p.latchkey_connector_connector().call_change_password(
                    s,
                    account,
                    old.expose_secret(),
                    new.expose_secret(),
                )
            })
            .await;
        checked(call.finish(outcome)?, "change-password", validate::outcome)
    }

    /// When the directory last recorded a password change for `account`.
    pub async fn password_changed_at(
        &self,
        account: &Account,
    ) -> Result<Option<Timestamp>, CallError> {
        self.require(Features::VERIFY, "password-changed-at")?;
        let mut call = self.start("password-changed-at", vec![]).await?;
        let outcome = call
            .run(|p, s| {
                p.latchkey_connector_connector()
                    .call_password_changed_at(s, account)
            })
            .await;
        checked(call.finish(outcome)?, "password-changed-at", |_| Ok(()))
    }

    /// An instance kept alive across calls, for the benchmark that compares a warm call with a
    /// fresh one. Latchkey itself never reuses an instance between calls.
    #[doc(hidden)]
    pub async fn warm(&self) -> Result<WarmInstance, PluginError> {
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        let call = self.start_until("warm", vec![], far).await?;
        Ok(WarmInstance { call })
    }
}

/// See [`ConnectorInstance::warm`].
#[doc(hidden)]
pub struct WarmInstance {
    call: Call,
}

impl WarmInstance {
    /// `check-password` on the live instance.
    pub async fn check_password(&mut self, account: &Account, candidate: &str) -> bool {
        let call = &mut self.call;
        call.store.set_epoch_deadline(1);
        let plugin = call.plugin.as_ref().expect("instantiated");
        matches!(
            plugin
                .latchkey_connector_connector()
                .call_check_password(&mut call.store, account, candidate)
                .await,
            Ok(Ok(()))
        )
    }
}

fn invalid(function: &'static str, reason: String) -> PluginError {
    PluginError::InvalidOutput { function, reason }
}

/// Check a successful answer's size, and pass a directory error through (checked too).
fn checked<T>(
    result: Result<T, ConnectorError>,
    function: &'static str,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, CallError> {
    match result {
        Ok(value) => {
            check(&value).map_err(|reason| invalid(function, reason))?;
            Ok(value)
        }
        Err(error) => {
            validate::connector_error(&error).map_err(|reason| invalid(function, reason))?;
            Err(CallError::Connector(error))
        }
    }
}

enum Outcome<R> {
    Done(R),
    Failed(wasmtime::Error),
    WallClock,
}

/// One call in progress: its store and the instance in it.
struct Call {
    store: Store<CallState>,
    plugin: Option<wit::Plugin>,
    function: &'static str,
    limits: Limits,
    /// When the whole call (instantiation included) must be over.
    deadline: tokio::time::Instant,
}

impl Call {
    /// Run `f` on the instance until the call's deadline.
    async fn run<'a, R, F, Fut>(&'a mut self, f: F) -> Outcome<R>
    where
        F: FnOnce(&'a wit::Plugin, &'a mut Store<CallState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<R>> + 'a,
    {
        let plugin = self.plugin.as_ref().expect("instantiated before run");
        match tokio::time::timeout_at(self.deadline, f(plugin, &mut self.store)).await {
            Ok(Ok(value)) => Outcome::Done(value),
            Ok(Err(error)) => Outcome::Failed(error),
            Err(_) => Outcome::WallClock,
        }
    }

    /// Write the call's output to the log and turn a failure into a [`PluginError`]. The store
    /// (and with it the instance) is dropped here.
    fn finish<R>(mut self, outcome: Outcome<R>) -> Result<R, PluginError> {
        let panic = match &outcome {
            Outcome::Failed(_) => self.panic_message(),
            _ => None,
        };
        self.store.data_mut().flush_output();
        let error = match outcome {
            Outcome::Done(value) => return Ok(value),
            Outcome::WallClock => PluginError::DeadlineExceeded(self.limits.deadline),
            Outcome::Failed(error) => self.classify(error, panic),
        };
        tracing::warn!(
            target: "latchkey::plugin",
            plugin = %self.store.data().shared.tags.plugin,
            tenant = %self.store.data().shared.tags.tenant,
            connector = %self.store.data().shared.tags.connector,
            function = self.function,
            "{error}"
        );
        Err(error)
    }

    /// The message of a Rust panic, from what the plugin wrote to stderr, redacted.
    fn panic_message(&self) -> Option<String> {
        let (bytes, _) = self.store.data().stderr.snapshot();
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines().skip_while(|l| !l.contains("panicked at"));
        lines.next()?;
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
        let message = self.store.data().log.redact(&message.join(" "));
        Some(truncate(&message, 512).0.to_string())
    }

    fn classify(&self, error: wasmtime::Error, panic: Option<String>) -> PluginError {
        if let Some(denied) = error.downcast_ref::<CapabilityDenied>() {
            return PluginError::CapabilityDenied(denied.clone());
        }
        if error.downcast_ref::<MemoryLimitHit>().is_some() {
            return PluginError::MemoryLimit {
                limit_mib: self.limits.memory_bytes >> 20,
            };
        }
        if error.downcast_ref::<DeadlineHit>().is_some() {
            return PluginError::DeadlineExceeded(self.limits.deadline);
        }
        if error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return PluginError::Busy;
        }
        let log = &self.store.data().log;
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => PluginError::StackOverflow,
            Some(Trap::Interrupt) => PluginError::DeadlineExceeded(self.limits.deadline),
            Some(Trap::UnreachableCodeReached) if panic.is_some() => PluginError::Panicked {
                message: panic.unwrap_or_default(),
            },
            Some(trap) => PluginError::Trapped {
                trap: trap.to_string(),
            },
            None => PluginError::Faulted(
                truncate(&log.redact(&format!("{error:#}")), 1024)
                    .0
                    .to_string(),
            ),
        }
    }
}
