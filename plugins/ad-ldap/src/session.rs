//! The one place that calls the host's `ldap` capability. A [`Directory`] is the LDAP session
//! the host opened and bound as the service account for this call; its methods turn host
//! failures into typed errors and entries into [`DirEntry`]s. Refusals by the DC come back as
//! results for the caller to interpret, since only the caller knows which right an operation
//! needs; they are logged here at info, with the DC's words, for the audit trail (those words
//! never contain a password).

use latchkey_plugin_sdk::ldap::{self, Control, Modification, Scope, SearchRequest};
use latchkey_plugin_sdk::{ConnectorError, log};

use crate::errors::{self, Operation, RC_NO_SUCH_OBJECT, RC_SIZE_LIMIT_EXCEEDED};
use latchkey_plugin_sdk::ldap_entry::DirEntry;

/// The entries of a search and whether the DC has more (a paged-results cookie).
pub struct Found {
    pub entries: Vec<DirEntry>,
    pub cookie: Option<Vec<u8>>,
}

/// A search as the plugin asks for it.
pub struct Search<'a> {
    pub base: &'a str,
    pub scope: Scope,
    pub filter: String,
    pub attributes: &'a [&'a str],
    pub binary_attributes: &'a [&'a str],
    pub size_limit: u32,
    pub page_size: u32,
    pub cookie: Option<Vec<u8>>,
    pub controls: Vec<Control>,
}

impl<'a> Search<'a> {
    /// A search with no limits, paging or controls.
    pub fn new(base: &'a str, scope: Scope, filter: String, attributes: &'a [&'a str]) -> Self {
        Self {
            base,
            scope,
            filter,
            attributes,
            binary_attributes: &[],
            size_limit: 0,
            page_size: 0,
            cookie: None,
            controls: vec![],
        }
    }
}

/// A refusal by the DC: its result code and text.
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

    /// Run a search. `Err(Ok(refusal))` is the DC's non-zero answer, `Err(Err(..))` the
    /// host's failure.
    pub fn search_raw(
        &self,
        search: &Search<'_>,
    ) -> Result<Result<Found, Refusal>, ldap::LdapError> {
        let request = SearchRequest {
            base: search.base.to_string(),
            scope: search.scope,
            filter: search.filter.clone(),
            attributes: search.attributes.iter().map(|a| a.to_string()).collect(),
            binary_attributes: search
                .binary_attributes
                .iter()
                .map(|a| a.to_string())
                .collect(),
            size_limit: search.size_limit,
            page_size: search.page_size,
            cookie: search.cookie.clone(),
            controls: search.controls.clone(),
        };
        let result = self.session.search(&request)?;
        let code = result.outcome.code;
        // At the size limit, the entries the DC sent are still good.
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

    /// Run a search; a refusal by the DC is an error for `operation`.
    pub fn search(&self, search: &Search<'_>) -> Result<Found, ConnectorError> {
        match self.search_raw(search) {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(refusal)) => Err(refusal.error(Operation::Read)),
            Err(e) => Err(errors::from_host(&e)),
        }
    }

    /// Read one object's attributes; none when it does not exist.
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
    pub fn root_dse(&self, attributes: &[&str]) -> Result<DirEntry, ConnectorError> {
        self.root_dse_raw(attributes)
            .map_err(|e| errors::from_host(&e))
    }

    pub fn root_dse_raw(&self, attributes: &[&str]) -> Result<DirEntry, ldap::LdapError> {
        let attributes: Vec<String> = attributes.iter().map(|a| a.to_string()).collect();
        self.session.root_dse(&attributes).map(DirEntry::from)
    }

    /// Modify `dn`. `Ok(Err(refusal))` is the DC's refusal (logged here); `Err` is the host's
    /// failure. `what` names the operation in the log line.
    pub fn modify(
        &self,
        what: &str,
        dn: &str,
        changes: &[Modification],
        controls: &[Control],
    ) -> Result<Result<(), Refusal>, ConnectorError> {
        let result = self
            .session
            .modify(dn, changes, controls)
            .map_err(|e| errors::from_host(&e))?;
        if result.code == 0 {
            return Ok(Ok(()));
        }
        log::log(
            log::Level::Info,
            &format!(
                "{what} on {dn}: the domain controller refused with LDAP result {}: {}",
                result.code, result.text
            ),
        );
        Ok(Err(Refusal {
            code: result.code,
            text: result.text,
        }))
    }
}
