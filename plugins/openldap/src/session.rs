//! The one place that calls the host's `ldap` capability. A [`Directory`] is an LDAP session
//! the host opened and bound, as the service account ([`Directory::open`]) or as a user with
//! their own password ([`Directory::open_as_user`]); its methods turn host failures into typed
//! errors and entries into [`DirEntry`]s. Writes answer with the server's result and any
//! password policy response, for the caller to interpret; refusals are logged here at info,
//! with the server's words (which never contain a password).

use latchkey_plugin_sdk::ldap::{self, Control, Modification, Scope, SearchRequest};
use latchkey_plugin_sdk::{ConnectorError, log};

use crate::ber::{self, PolicyResponse};
use crate::errors::{self, Operation, RC_NO_SUCH_OBJECT, RC_SIZE_LIMIT_EXCEEDED};
use latchkey_plugin_sdk::ldap_entry::DirEntry;

/// The password policy request control (draft-behera-ldap-password-policy).
pub const PPOLICY_CONTROL: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// The request control: no value, not critical (a server without ppolicy ignores it).
pub fn ppolicy_request() -> Control {
    Control {
        oid: PPOLICY_CONTROL.into(),
        critical: false,
        value: None,
    }
}

/// The entries of a search and whether the server has more (a paged-results cookie).
pub struct Found {
    pub entries: Vec<DirEntry>,
    pub cookie: Option<Vec<u8>>,
}

/// A search as the plugin asks for it.
pub struct Search<'a> {
    pub base: &'a str,
    pub scope: Scope,
    pub filter: String,
    pub attributes: Vec<String>,
    pub size_limit: u32,
    pub page_size: u32,
    pub cookie: Option<Vec<u8>>,
}

impl<'a> Search<'a> {
    /// A search with no limits or paging.
    pub fn new(base: &'a str, scope: Scope, filter: String, attributes: &[&str]) -> Self {
        Self {
            base,
            scope,
            filter,
            attributes: attributes.iter().map(|a| a.to_string()).collect(),
            size_limit: 0,
            page_size: 0,
            cookie: None,
        }
    }
}

/// A refusal by the server: its result code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u32,
    pub text: String,
}

impl Refusal {
    /// This refusal as a typed error for `operation`.
    pub fn error(&self, operation: Operation) -> ConnectorError {
        errors::refused(operation, self.code, &self.text)
    }
}

/// The server's answer to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    pub code: u32,
    pub text: String,
    /// The decoded password policy response control, when the server sent a valid one.
    pub policy: Option<PolicyResponse>,
}

impl WriteResult {
    fn from(outcome: ldap::LdapResult) -> Self {
        let policy = outcome
            .controls
            .iter()
            .find(|c| c.oid == PPOLICY_CONTROL)
            .and_then(|c| c.value.as_deref())
            .and_then(ber::decode_policy_response);
        Self {
            code: outcome.code,
            text: outcome.text,
            policy,
        }
    }
}

pub struct Directory {
    session: ldap::Session,
}

impl Directory {
    /// A session bound as the service account, or the host's reason why not.
    pub fn open_raw() -> Result<Self, ldap::LdapError> {
        ldap::open().map(|session| Self { session })
    }

    /// A session bound as the service account.
    pub fn open() -> Result<Self, ConnectorError> {
        Self::open_raw().map_err(|e| errors::from_host(&e))
    }

    /// A session bound as `dn` with `password`, or the host's reason why not (a refused bind
    /// is `bind-failed`).
    pub fn open_as_user(dn: &str, password: &str) -> Result<Self, ldap::LdapError> {
        ldap::open_as_user(dn, password).map(|session| Self { session })
    }

    /// Run a search. `Ok(Err(refusal))` is the server's non-zero answer, `Err` the host's
    /// failure.
    pub fn search_raw(
        &self,
        search: &Search<'_>,
    ) -> Result<Result<Found, Refusal>, ldap::LdapError> {
        let request = SearchRequest {
            base: search.base.to_string(),
            scope: search.scope,
            filter: search.filter.clone(),
            attributes: search.attributes.clone(),
            binary_attributes: vec![],
            size_limit: search.size_limit,
            page_size: search.page_size,
            cookie: search.cookie.clone(),
            controls: vec![],
        };
        let result = self.session.search(&request)?;
        let code = result.outcome.code;
        // At the size limit, the entries the server sent are still good.
        if code != 0 && code != RC_SIZE_LIMIT_EXCEEDED {
            return Ok(Err(Refusal {
                code,
                text: result.outcome.text,
            }));
        }
        Ok(Ok(Found {
            entries: result.entries.into_iter().map(DirEntry::from).collect(),
            cookie: result.next_cookie.filter(|c| !c.is_empty()),
        }))
    }

    /// Run a search; a refusal by the server is an error for reading.
    pub fn search(&self, search: &Search<'_>) -> Result<Found, ConnectorError> {
        match self.search_raw(search) {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(refusal)) => Err(refusal.error(Operation::Read)),
            Err(e) => Err(errors::from_host(&e)),
        }
    }

    /// Read one entry's attributes; none when it does not exist (or cannot be seen).
    pub fn read(&self, dn: &str, attributes: &[&str]) -> Result<Option<DirEntry>, ConnectorError> {
        let search = Search::new(dn, Scope::Base, "(objectClass=*)".into(), attributes);
        match self.search_raw(&search) {
            Ok(Ok(found)) => Ok(found.entries.into_iter().next()),
            Ok(Err(refusal)) if refusal.code == RC_NO_SUCH_OBJECT => Ok(None),
            Ok(Err(refusal)) => Err(refusal.error(Operation::Read)),
            Err(e) => Err(errors::from_host(&e)),
        }
    }

    /// The root DSE's `attributes`.
    pub fn root_dse_raw(&self, attributes: &[&str]) -> Result<DirEntry, ldap::LdapError> {
        let attributes: Vec<String> = attributes.iter().map(|a| a.to_string()).collect();
        self.session.root_dse(&attributes).map(DirEntry::from)
    }

    fn log_refusal(what: &str, dn: &str, result: &WriteResult) {
        if result.code != 0 {
            log::log(
                log::Level::Info,
                &format!(
                    "{what} on {dn}: the LDAP server refused with result {}: {}{}",
                    result.code,
                    result.text,
                    match result.policy.and_then(|p| p.error) {
                        Some(error) => format!(" (ppolicy: {error:?})"),
                        None => String::new(),
                    }
                ),
            );
        }
    }

    /// Modify `dn`; the server's answer, whatever it is. `what` names the operation in the log.
    pub fn modify(
        &self,
        what: &str,
        dn: &str,
        changes: &[Modification],
        controls: &[Control],
    ) -> Result<WriteResult, ConnectorError> {
        let result = self
            .session
            .modify(dn, changes, controls)
            .map_err(|e| errors::from_host(&e))?;
        let result = WriteResult::from(result);
        Self::log_refusal(what, dn, &result);
        Ok(result)
    }

    /// An extended operation; the server's answer, whatever it is. `dn` is for the log.
    pub fn extended(
        &self,
        what: &str,
        dn: &str,
        oid: &str,
        value: Vec<u8>,
        controls: &[Control],
    ) -> Result<WriteResult, ConnectorError> {
        let result = self
            .session
            .extended(oid, Some(&value), controls)
            .map_err(|e| errors::from_host(&e))?;
        let result = WriteResult::from(result.outcome);
        Self::log_refusal(what, dn, &result);
        Ok(result)
    }
}
