//! One call into a plugin: the store's data, the host side of every import, and the limits.
//!
//! Every import checks, before doing anything, that its capability is in the connector's
//! effective set (manifest ∩ grant); otherwise the call ends with [`CapabilityDenied`]. WASI is
//! linked because Rust's std imports it, with an empty context: no files, no environment, no
//! arguments, no sockets, no stdin. stdout and stderr are captured with a cap and then written
//! to the log like `log` messages.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use secrecy::SecretString;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::instance::InstanceShared;
use super::wit;
use crate::capabilities::ldap::SessionHandle;
use crate::capabilities::log::{CallLog, Level, Stream};
use crate::capabilities::{self, Capability};

/// The most bytes of stdout (and, separately, stderr) kept from one call.
const CAPTURE_LIMIT: usize = 64 * 1024;

/// A plugin called an import whose capability it may not use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the plugin called `{function}`, but the `{capability}` capability is {}", self.reason())]
pub struct CapabilityDenied {
    pub capability: Capability,
    pub function: &'static str,
    /// Whether the plugin's manifest requests it.
    pub requested: bool,
    /// Whether the tenant granted it to this connector.
    pub granted: bool,
}

impl CapabilityDenied {
    fn reason(&self) -> &'static str {
        match (self.requested, self.granted) {
            (false, false) => "neither requested in its manifest nor granted to this connector",
            (false, true) => "not requested in its manifest",
            (true, _) => "not granted to this connector by the tenant",
        }
    }
}

/// The memory limit was hit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes reached (the plugin asked for {desired})")]
pub(crate) struct MemoryLimitHit {
    pub limit: usize,
    pub desired: usize,
}

/// The call's deadline passed while the plugin was running.
#[derive(Debug, thiserror::Error)]
#[error("deadline passed")]
pub(crate) struct DeadlineHit;

/// The store's data for one call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    pub(crate) shared: Arc<InstanceShared>,
    pub(crate) log: CallLog,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
}

impl CallState {
    pub(crate) fn new(shared: Arc<InstanceShared>, secrets: Vec<SecretString>) -> CallState {
        let stdout = CapturedOutput::default();
        let stderr = CapturedOutput::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter {
                memory: shared.limits.memory_bytes,
            },
            log: CallLog::new(shared.tags.clone(), secrets),
            shared,
            stdout,
            stderr,
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    fn require(&self, capability: Capability, function: &'static str) -> wasmtime::Result<()> {
        if self.shared.effective.contains(capability) {
            return Ok(());
        }
        let denied = CapabilityDenied {
            capability,
            function,
            requested: self.shared.requested.contains(capability),
            granted: self.shared.granted.contains(capability),
        };
        tracing::warn!(
            target: "latchkey::plugin",
            plugin = %self.shared.tags.plugin,
            tenant = %self.shared.tags.tenant,
            connector = %self.shared.tags.connector,
            "{denied}"
        );
        Err(wasmtime::Error::new(denied))
    }

    /// Write what the plugin printed to the log, redacted and within the budget.
    pub(crate) fn flush_output(&mut self) {
        for (stream, captured) in [
            (Stream::Stdout, &self.stdout),
            (Stream::Stderr, &self.stderr),
        ] {
            let (bytes, dropped) = captured.take();
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.log.write(Level::Info, stream, line);
            }
            if dropped > 0 {
                self.log.write(
                    Level::Warn,
                    stream,
                    &format!("[{dropped} more bytes of {stream:?} dropped]"),
                );
            }
        }
        self.log.finish();
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The per-call memory cap; going over it ends the call with a typed error instead of letting
/// the guest see an allocation failure (a Rust guest would abort, a hostile one could retry).
struct CallLimiter {
    memory: usize,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            return Err(wasmtime::Error::new(MemoryLimitHit {
                limit: self.memory,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// stdout or stderr of one call: kept up to [`CAPTURE_LIMIT`], the rest counted and dropped.
/// Writes never fail, so a chatty plugin is not broken by its own logging.
#[derive(Clone, Default)]
pub(crate) struct CapturedOutput(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl CapturedOutput {
    fn push(&self, data: &[u8]) {
        let mut captured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = CAPTURE_LIMIT.saturating_sub(captured.bytes.len());
        let kept = data.len().min(room);
        captured.bytes.extend_from_slice(&data[..kept]);
        captured.dropped += data.len() - kept;
    }

    pub(crate) fn snapshot(&self) -> (Vec<u8>, usize) {
        let captured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (captured.bytes.clone(), captured.dropped)
    }

    fn take(&self) -> (Vec<u8>, usize) {
        let mut captured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::take(&mut captured.bytes),
            std::mem::take(&mut captured.dropped),
        )
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(CAPTURE_LIMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

// ---- the imports ----

impl wit::types::Host for CallState {}

impl wit::log::Host for CallState {
    async fn log(&mut self, level: wit::log::Level, message: String) -> wasmtime::Result<()> {
        self.require(Capability::Log, "log.log")?;
        let level = match level {
            wit::log::Level::Trace => Level::Trace,
            wit::log::Level::Debug => Level::Debug,
            wit::log::Level::Info => Level::Info,
            wit::log::Level::Warn => Level::Warn,
            wit::log::Level::Error => Level::Error,
        };
        self.log.write(level, Stream::Log, &message);
        Ok(())
    }
}

impl wit::config::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.require(Capability::Config, "config.get")?;
        Ok(capabilities::config::get(&self.shared.config, &key))
    }

    async fn get_all(&mut self) -> wasmtime::Result<String> {
        self.require(Capability::Config, "config.get-all")?;
        Ok(capabilities::config::get_all(&self.shared.config))
    }
}

type LdapResult<T> = wasmtime::Result<Result<T, wit::ldap::LdapError>>;

impl wit::ldap::Host for CallState {
    async fn open(&mut self) -> LdapResult<Resource<SessionHandle>> {
        self.require(Capability::Ldap, "ldap.open")?;
        let directory = self.shared.ldap.clone();
        Ok(match directory.open().await {
            Ok(session) => Ok(self.table.push(SessionHandle(session))?),
            Err(e) => Err(e),
        })
    }

    async fn open_as_user(
        &mut self,
        dn: String,
        password: String,
    ) -> LdapResult<Resource<SessionHandle>> {
        self.require(Capability::Ldap, "ldap.open-as-user")?;
        let password = SecretString::from(password);
        // The plugin holds a user's password: keep it out of whatever it writes next.
        self.log.add_secret(password.clone());
        let directory = self.shared.ldap.clone();
        Ok(match directory.open_as_user(&dn, &password).await {
            Ok(session) => Ok(self.table.push(SessionHandle(session))?),
            Err(e) => Err(e),
        })
    }
}

impl wit::ldap::HostSession for CallState {
    async fn search(
        &mut self,
        session: Resource<SessionHandle>,
        request: wit::ldap::SearchRequest,
    ) -> LdapResult<wit::ldap::SearchResult> {
        self.require(Capability::Ldap, "ldap.session.search")?;
        Ok(self.table.get_mut(&session)?.0.search(request).await)
    }

    async fn modify(
        &mut self,
        session: Resource<SessionHandle>,
        dn: String,
        changes: Vec<wit::ldap::Modification>,
        controls: Vec<wit::ldap::Control>,
    ) -> LdapResult<wit::ldap::LdapResult> {
        self.require(Capability::Ldap, "ldap.session.modify")?;
        Ok(self
            .table
            .get_mut(&session)?
            .0
            .modify(dn, changes, controls)
            .await)
    }

    async fn root_dse(
        &mut self,
        session: Resource<SessionHandle>,
        attributes: Vec<String>,
    ) -> LdapResult<wit::ldap::Entry> {
        self.require(Capability::Ldap, "ldap.session.root-dse")?;
        Ok(self.table.get_mut(&session)?.0.root_dse(attributes).await)
    }

    async fn extended(
        &mut self,
        session: Resource<SessionHandle>,
        oid: String,
        value: Option<Vec<u8>>,
        controls: Vec<wit::ldap::Control>,
    ) -> LdapResult<wit::ldap::ExtendedResult> {
        self.require(Capability::Ldap, "ldap.session.extended")?;
        Ok(self
            .table
            .get_mut(&session)?
            .0
            .extended(oid, value, controls)
            .await)
    }

    async fn drop(&mut self, session: Resource<SessionHandle>) -> wasmtime::Result<()> {
        self.table.delete(session)?;
        Ok(())
    }
}

impl wit::graph::Host for CallState {
    async fn send(
        &mut self,
        request: wit::graph::Request,
    ) -> wasmtime::Result<Result<wit::graph::Response, wit::graph::GraphError>> {
        self.require(Capability::Graph, "graph.send")?;
        let graph = self.shared.graph.clone();
        Ok(graph.send(request).await)
    }
}
