//! `ldap`: LDAP to the directory configured for a connector, bound by the host.
//!
//! The host implements [`LdapDirectory`] for a connector from its configuration and secrets
//! (server URL, CA, service account and its password); a plugin only ever holds a session
//! handle. A connector without an LDAP configuration gets [`NotConfigured`], whose every call
//! says what to configure.

use async_trait::async_trait;
use secrecy::SecretString;

pub use crate::runtime::wit::ldap::{
    Control, Entry, ExtendedResult, LdapError, LdapResult, Modification, SearchRequest,
    SearchResult,
};

/// The directory behind one connector instance.
#[async_trait]
pub trait LdapDirectory: Send + Sync {
    /// A session bound as the connector's service account.
    async fn open(&self) -> Result<Box<dyn LdapSession>, LdapError>;
    /// A session bound as a user with their own password.
    async fn open_as_user(
        &self,
        dn: &str,
        password: &SecretString,
    ) -> Result<Box<dyn LdapSession>, LdapError>;
}

/// One bound connection.
#[async_trait]
pub trait LdapSession: Send + Sync {
    async fn search(&mut self, request: SearchRequest) -> Result<SearchResult, LdapError>;
    async fn modify(
        &mut self,
        dn: String,
        changes: Vec<Modification>,
        controls: Vec<Control>,
    ) -> Result<LdapResult, LdapError>;
    async fn root_dse(&mut self, attributes: Vec<String>) -> Result<Entry, LdapError>;
    async fn extended(
        &mut self,
        oid: String,
        value: Option<Vec<u8>>,
        controls: Vec<Control>,
    ) -> Result<ExtendedResult, LdapError>;
}

/// A session as the runtime keeps it in a call's resource table.
pub struct SessionHandle(pub Box<dyn LdapSession>);

/// The directory of a connector that has no LDAP settings.
pub struct NotConfigured;

fn not_configured() -> LdapError {
    LdapError::NotConfigured(
        "this connector has no LDAP server configured: set `url` and `bind_dn` in its \
         configuration and the `bind_password` secret"
            .to_string(),
    )
}

#[async_trait]
impl LdapDirectory for NotConfigured {
    async fn open(&self) -> Result<Box<dyn LdapSession>, LdapError> {
        Err(not_configured())
    }

    async fn open_as_user(
        &self,
        _dn: &str,
        _password: &SecretString,
    ) -> Result<Box<dyn LdapSession>, LdapError> {
        Err(not_configured())
    }
}
