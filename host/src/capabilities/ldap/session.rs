//! One session a plugin holds: a bound connection and the operations on it (search with the
//! host's caps and paging, modify, root DSE, extended operations).
//!
//! It owns each operation's timeout, the host caps on a search (and the plugin's own
//! size-limit: Samba 4.17 ignores it, so the host stops the search there and answers result
//! code 4 as a server would), and what a failure does to the connection: a lost connection
//! under a read-only operation is replaced and the operation retried once; under a modify or
//! an extended operation it is replaced only for the next call, because the change may already
//! have landed. It must never retry a write, never return a connection that saw an error or a
//! timeout to the pool, and never log a modify's values.

use std::sync::Arc;

use async_trait::async_trait;
use ldap3::controls::RawControl;
use ldap3::exop::Exop;
use ldap3::{Ldap, SearchOptions};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::convert;
use super::failure::{Connection, Failure, operation_failure};
use super::pool::PoolShared;
use super::settings::{LdapSettings, SearchLimits};
use crate::capabilities::ldap::{
    Control, Entry, ExtendedResult, LdapError, LdapResult, LdapSession, Modification,
    SearchRequest, SearchResult,
};

/// A bound connection held by a plugin; returned to the pool (service account) or closed
/// (user) when dropped.
pub(super) struct Session {
    shared: Arc<PoolShared>,
    connection: Option<Bound>,
    identity: SessionIdentity,
}

struct Bound {
    ldap: Ldap,
    /// Taken from the pool's idle connections (it may have died while idle).
    from_pool: bool,
}

enum SessionIdentity {
    /// Holds one of the pool's places for as long as the session lives.
    ServiceAccount { _permit: OwnedSemaphorePermit },
    /// Bound with a user's password, which the host does not keep: once lost, it is gone.
    User { dn: String },
}

impl Session {
    pub(super) fn service_account(
        shared: Arc<PoolShared>,
        permit: OwnedSemaphorePermit,
        ldap: Ldap,
        from_pool: bool,
    ) -> Session {
        Session {
            shared,
            connection: Some(Bound { ldap, from_pool }),
            identity: SessionIdentity::ServiceAccount { _permit: permit },
        }
    }

    pub(super) fn user(shared: Arc<PoolShared>, ldap: Ldap, dn: &str) -> Session {
        Session {
            shared,
            connection: Some(Bound {
                ldap,
                from_pool: false,
            }),
            identity: SessionIdentity::User { dn: dn.to_string() },
        }
    }

    fn settings(&self) -> &LdapSettings {
        &self.shared.settings
    }

    /// The session's connection, replacing a closed or discarded one (service account only).
    async fn connection(&mut self) -> Result<&mut Bound, LdapError> {
        if self
            .connection
            .as_mut()
            .is_some_and(|bound| bound.ldap.is_closed())
        {
            self.connection = None;
        }
        if self.connection.is_none() {
            match &self.identity {
                SessionIdentity::User { dn } => {
                    return Err(LdapError::Unavailable(format!(
                        "the connection to {} bound as {dn} was lost; open a new session as the \
                         user to go on",
                        self.settings().url
                    )));
                }
                SessionIdentity::ServiceAccount { .. } => {
                    let deadline = Instant::now() + self.settings().timeout;
                    let ldap = self.shared.connect_service_account(deadline, true).await?;
                    self.connection = Some(Bound {
                        ldap,
                        from_pool: false,
                    });
                }
            }
        }
        let shared = self.shared.clone();
        self.connection.as_mut().ok_or_else(|| {
            LdapError::Unavailable(format!("no connection to {}", shared.settings.url))
        })
    }

    /// Drops the connection unless the failure left it intact.
    fn after_failure(&mut self, failure: &Failure) {
        if failure.connection != Connection::Intact && self.connection.take().is_some() {
            tracing::info!(
                target: "latchkey::ldap",
                tenant = %self.shared.tags.tenant,
                connector = %self.shared.tags.connector,
                url = %self.settings().url,
                error = %DisplayError(&failure.error),
                "discarded a connection after a failure; the next call reconnects"
            );
        }
    }

    fn can_reconnect(&self) -> bool {
        matches!(self.identity, SessionIdentity::ServiceAccount { .. })
    }

    /// A read-only search, retried once on a new connection when a pooled one turns out dead.
    async fn read(&mut self, plan: &SearchPlan) -> Result<SearchResult, LdapError> {
        let mut retried = false;
        loop {
            let shared = self.shared.clone();
            let settings = &shared.settings;
            let bound = self.connection().await?;
            let from_pool = bound.from_pool;
            let result =
                tokio::time::timeout(settings.timeout, search(&mut bound.ldap, plan, settings))
                    .await
                    .unwrap_or_else(|_| Err(Failure::timeout(settings, plan.operation)));
            match result {
                Ok(result) => return Ok(result),
                Err(failure) => {
                    self.after_failure(&failure);
                    if failure.connection == Connection::Lost
                        && from_pool
                        && !retried
                        && self.can_reconnect()
                    {
                        retried = true;
                        tracing::info!(
                            target: "latchkey::ldap",
                            tenant = %shared.tags.tenant,
                            connector = %shared.tags.connector,
                            url = %settings.url,
                            "a pooled connection was lost; repeating the {} once on a new one",
                            plan.operation
                        );
                        continue;
                    }
                    return Err(failure.error);
                }
            }
        }
    }

    /// How a write (modify, extended) ends: never repeated, since a lost connection may have
    /// carried it; a connection it left in doubt is replaced for the next call.
    fn after_write<T>(
        &mut self,
        result: Result<T, Failure>,
        operation: &str,
    ) -> Result<T, LdapError> {
        result.map_err(|failure| {
            self.after_failure(&failure);
            match (failure.connection, failure.error) {
                (Connection::Intact, error) => error,
                (_, LdapError::Unavailable(text)) => LdapError::Unavailable(format!(
                    "{text}; the {operation} may or may not have been applied: check before \
                     repeating it"
                )),
                (_, LdapError::Timeout(text)) => LdapError::Timeout(format!(
                    "{text}; it may or may not have been applied: check before repeating it"
                )),
                (_, error) => error,
            }
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let (SessionIdentity::ServiceAccount { .. }, Some(bound)) =
            (&self.identity, self.connection.take())
        {
            // Before the permit goes (fields drop after this), so a waiter finds it idle.
            self.shared.give_back(bound.ldap);
        }
    }
}

#[async_trait]
impl LdapSession for Session {
    async fn search(&mut self, request: SearchRequest) -> Result<SearchResult, LdapError> {
        let plan = SearchPlan::new(request, self.settings().limits)?;
        self.read(&plan).await
    }

    async fn modify(
        &mut self,
        dn: String,
        changes: Vec<Modification>,
        controls: Vec<Control>,
    ) -> Result<LdapResult, LdapError> {
        convert::check_dn(&dn)?;
        let changes = convert::modifications(changes)?;
        let controls = convert::request_controls(controls)?;
        let shared = self.shared.clone();
        let settings = &shared.settings;
        let ldap = &mut self.connection().await?.ldap;
        let result = tokio::time::timeout(settings.timeout, async {
            with_controls(ldap, controls);
            ldap.with_timeout(settings.timeout)
                .modify(&dn, changes)
                .await
                .map(convert::outcome)
                .map_err(|e| operation_failure(e, settings, "modify"))
        })
        .await
        .unwrap_or_else(|_| Err(Failure::timeout(settings, "modify")));
        self.after_write(result, "modify")
    }

    async fn root_dse(&mut self, attributes: Vec<String>) -> Result<Entry, LdapError> {
        let plan = SearchPlan::root_dse(attributes, self.settings().limits);
        let result = self.read(&plan).await?;
        match result.entries.into_iter().next() {
            Some(entry) => Ok(entry),
            None => Err(LdapError::Unavailable(format!(
                "{} answered the read of its root DSE with result code {} and no entry{}",
                self.settings().url,
                result.outcome.code,
                if result.outcome.text.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", result.outcome.text)
                }
            ))),
        }
    }

    async fn extended(
        &mut self,
        oid: String,
        value: Option<Vec<u8>>,
        controls: Vec<Control>,
    ) -> Result<ExtendedResult, LdapError> {
        convert::check_oid(&oid, "the extended operation")?;
        let controls = convert::request_controls(controls)?;
        let shared = self.shared.clone();
        let settings = &shared.settings;
        let ldap = &mut self.connection().await?.ldap;
        let result = tokio::time::timeout(settings.timeout, async {
            with_controls(ldap, controls);
            ldap.with_timeout(settings.timeout)
                .extended(Exop {
                    name: Some(oid),
                    val: value,
                })
                .await
                .map(|ldap3::result::ExopResult(exop, result)| ExtendedResult {
                    outcome: convert::outcome(result),
                    oid: exop.name,
                    value: exop.val,
                })
                .map_err(|e| operation_failure(e, settings, "extended operation"))
        })
        .await
        .unwrap_or_else(|_| Err(Failure::timeout(settings, "extended operation")));
        self.after_write(result, "extended operation")
    }
}

fn with_controls(ldap: &mut Ldap, controls: Vec<RawControl>) {
    if !controls.is_empty() {
        ldap.with_controls(controls);
    }
}

/// A search, checked and ready to send (and to send again on a new connection).
struct SearchPlan {
    operation: &'static str,
    base: String,
    scope: ldap3::Scope,
    filter: String,
    attributes: Vec<String>,
    binary: convert::BinaryNames,
    /// Sent to the server; one above the host's cap when the plugin asked for more (or for no
    /// limit), so that going past the cap is seen rather than silently cut.
    size_limit: i32,
    /// The plugin's own size limit (within the cap), enforced here too: some servers (Samba
    /// 4.17) ignore the one in the request.
    wanted: Option<usize>,
    controls: Vec<RawControl>,
    paged: bool,
    limits: SearchLimits,
}

impl SearchPlan {
    fn new(request: SearchRequest, limits: SearchLimits) -> Result<SearchPlan, LdapError> {
        if ldap3::parse_filter(&request.filter).is_err() {
            return Err(LdapError::InvalidRequest(format!(
                "the filter {:?} is not a valid RFC 4515 filter: check its parentheses, and \
                 escape `*`, `(`, `)`, `\\` and NUL in values as \\2a, \\28, \\29, \\5c and \\00",
                request.filter
            )));
        }
        if !request.base.is_empty() {
            convert::check_dn(&request.base)?;
        }
        let mut controls = convert::request_controls(request.controls)?;
        let paged = request.page_size > 0;
        if paged {
            if controls
                .iter()
                .any(|c| c.ctype == convert::PAGED_RESULTS_OID)
            {
                return Err(LdapError::InvalidRequest(
                    "page with `page-size` and `cookie`, not with a paged results control of \
                     your own"
                        .to_string(),
                ));
            }
            controls.push(convert::paged_results(request.page_size, request.cookie));
        } else if request.cookie.is_some() {
            return Err(LdapError::InvalidRequest(
                "a paging `cookie` needs the `page-size` the paging started with".to_string(),
            ));
        }
        let cap = limits.max_entries;
        let wanted = usize::try_from(request.size_limit).unwrap_or(usize::MAX);
        let wanted = (wanted > 0 && wanted <= cap).then_some(wanted);
        let size_limit = wanted.unwrap_or(cap.saturating_add(1));
        let mut attributes = request.attributes;
        if !attributes.is_empty() {
            // Binary attributes are attributes too: ask for those the list leaves out.
            for name in &request.binary_attributes {
                if !attributes.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                    attributes.push(name.clone());
                }
            }
        }
        Ok(SearchPlan {
            operation: "search",
            base: request.base,
            scope: convert::scope(request.scope),
            filter: request.filter,
            attributes,
            binary: convert::BinaryNames::new(&request.binary_attributes),
            size_limit: i32::try_from(size_limit).unwrap_or(i32::MAX),
            wanted,
            controls,
            paged,
            limits,
        })
    }

    fn root_dse(attributes: Vec<String>, limits: SearchLimits) -> SearchPlan {
        SearchPlan {
            operation: "root DSE read",
            base: String::new(),
            scope: ldap3::Scope::Base,
            filter: "(objectClass=*)".to_string(),
            attributes,
            binary: convert::BinaryNames::new(&[]),
            size_limit: 1,
            wanted: None,
            controls: Vec::new(),
            paged: false,
            limits,
        }
    }
}

/// Why a search was stopped before its end.
enum Stopped {
    /// At the plugin's own size limit: answered with result code 4, as a server would.
    AtSizeLimit(usize),
    /// Past a host cap.
    Exceeded(String),
}

/// One search on one connection: streamed, so an answer past the plugin's size limit or the
/// host's caps is stopped (and abandoned) as soon as it crosses them.
async fn search(
    ldap: &mut Ldap,
    plan: &SearchPlan,
    settings: &LdapSettings,
) -> Result<SearchResult, Failure> {
    let failed = |e| operation_failure(e, settings, plan.operation);
    with_controls(ldap, plan.controls.clone());
    let mut stream = ldap
        .with_search_options(SearchOptions::new().sizelimit(plan.size_limit))
        .with_timeout(settings.timeout)
        .streaming_search(&plan.base, plan.scope, &plan.filter, &plan.attributes)
        .await
        .map_err(failed)?;
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    let stopped = loop {
        let Some(item) = stream.next().await.map_err(failed)? else {
            break None;
        };
        if item.is_ref() || item.is_intermediate() {
            // Continuation references are not chased, and intermediate responses not used.
            continue;
        }
        if let Some(wanted) = plan.wanted
            && entries.len() >= wanted
        {
            break Some(Stopped::AtSizeLimit(wanted));
        }
        if entries.len() >= plan.limits.max_entries {
            break Some(Stopped::Exceeded(format!(
                "the {} matched more than {} entries, the host's limit per search; narrow the \
                 filter or the base, or page with a smaller page-size",
                plan.operation, plan.limits.max_entries
            )));
        }
        bytes = bytes.saturating_add(convert::payload_size(&item.0));
        if bytes > plan.limits.max_bytes {
            break Some(Stopped::Exceeded(format!(
                "the {}'s answer grew past {} bytes, the host's limit per search; ask for fewer \
                 attributes, or page with a smaller page-size",
                plan.operation, plan.limits.max_bytes
            )));
        }
        let entry = convert::entry(item.0, &plan.binary)
            .ok_or_else(|| Failure::malformed(settings, "a search entry"))?;
        entries.push(entry);
    };
    if let Some(stopped) = stopped {
        let id = stream.ldap_handle().last_id();
        stream.finish().await;
        // Only a closed connection refuses an abandon, and the next call sees it closed.
        let _ = ldap.abandon(id).await;
        return match stopped {
            Stopped::AtSizeLimit(wanted) => Ok(SearchResult {
                entries,
                outcome: LdapResult {
                    code: SIZE_LIMIT_EXCEEDED,
                    matched_dn: String::new(),
                    text: format!(
                        "sizeLimitExceeded: the host stopped the {} at its size-limit of \
                         {wanted} entries",
                        plan.operation
                    ),
                    controls: Vec::new(),
                },
                next_cookie: None,
            }),
            Stopped::Exceeded(message) => Err(Failure::intact(LdapError::LimitExceeded(message))),
        };
    }
    let outcome = convert::outcome(stream.finish().await);
    let next_cookie = if plan.paged {
        convert::next_cookie(&outcome.controls)
            .map_err(|()| Failure::malformed(settings, "a paged results control"))?
    } else {
        None
    };
    Ok(SearchResult {
        entries,
        outcome,
        next_cookie,
    })
}

/// LDAP result code 4.
const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// An `LdapError` in a log line: its kind and sentence.
struct DisplayError<'a>(&'a LdapError);

impl std::fmt::Display for DisplayError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, text) = match self.0 {
            LdapError::Unavailable(t) => ("unavailable", t),
            LdapError::Tls(t) => ("tls", t),
            LdapError::BindFailed(t) => ("bind failed", t),
            LdapError::Timeout(t) => ("timeout", t),
            LdapError::LimitExceeded(t) => ("limit exceeded", t),
            LdapError::InvalidRequest(t) => ("invalid request", t),
            LdapError::NotConfigured(t) => ("not configured", t),
        };
        write!(f, "{kind}: {text}")
    }
}
