//! `ldap`: LDAP to the directory configured for a connector, bound by the host.
//!
//! The host implements [`LdapDirectory`] for a connector from its configuration and secrets
//! (server URL, CA, service account and its password): [`directory`] builds an [`LdapPool`]
//! (real connections through ldap3, over LDAPS or StartTLS only), or, when the settings cannot
//! work, a [`Misconfigured`] directory whose every call says what to fix. A plugin only ever
//! holds a session handle. A connector without an LDAP configuration gets [`NotConfigured`].
//!
//! This module owns the traits the runtime binds to the WIT `ldap` import and the service
//! account's credentials. It must never hand the bind password (or a user's password) to a
//! plugin, a log, an error text or a `Debug` output, and never speak plain LDAP.
//!
//! - `settings`: the configuration keys, checked, with a sentence per mistake.
//! - `tls`: the rustls configuration (CA file, system store, or unverified) and TLS messages.
//! - `pool`: connecting and binding; the pool of service-account connections.
//! - `session`: the operations, their timeouts, caps, retries and reconnects.
//! - `convert`: WIT types to ldap3's and back, decoding answers without panicking.
//! - `failure`: ldap3's errors sorted into `ldap-error` kinds.

mod convert;
mod failure;
mod pool;
mod session;
mod settings;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value};

pub use self::pool::LdapPool;
pub use self::settings::{
    DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT_MS, InvalidLdapSettings, LdapSettings, MAX_SEARCH_BYTES,
    MAX_SEARCH_ENTRIES, POOL_SIZE_RANGE, SearchLimits, ServerUrl, TIMEOUT_MS_RANGE,
};
pub use crate::capabilities::secrets::Secrets;
pub use crate::runtime::wit::ldap::{
    Attribute, BinaryAttribute, Control, Entry, ExtendedResult, LdapError, LdapResult,
    Modification, Scope, SearchRequest, SearchResult,
};

/// The tenant and connector a directory belongs to, for its log lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectorTags {
    pub tenant: Arc<str>,
    pub connector: Arc<str>,
}

impl ConnectorTags {
    pub fn new(tenant: impl Into<Arc<str>>, connector: impl Into<Arc<str>>) -> ConnectorTags {
        ConnectorTags {
            tenant: tenant.into(),
            connector: connector.into(),
        }
    }
}

/// The directory of a connector from its configuration (`url`, `starttls`, `ca_file`,
/// `tls_verify`, `bind_dn`, `timeout_ms`, `pool_size`) and secrets (`bind_password`): a pool
/// of connections when the settings are valid, otherwise a directory that answers every call
/// with [`LdapError::NotConfigured`] and the sentence saying what to fix (so a plugin's
/// test-connection can show it).
pub fn directory(
    config: &Map<String, Value>,
    secrets: &Secrets,
    tags: ConnectorTags,
) -> Arc<dyn LdapDirectory> {
    match LdapSettings::from_connector(config, secrets) {
        Ok(settings) => Arc::new(LdapPool::new(settings, tags)),
        Err(invalid) => {
            tracing::warn!(
                target: "latchkey::ldap",
                tenant = %tags.tenant,
                connector = %tags.connector,
                "this connector's LDAP settings cannot work: {invalid}"
            );
            Arc::new(Misconfigured(invalid))
        }
    }
}

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

/// The directory of a connector whose LDAP settings cannot work; every call says why.
#[derive(Debug)]
pub struct Misconfigured(pub InvalidLdapSettings);

#[async_trait]
impl LdapDirectory for Misconfigured {
    async fn open(&self) -> Result<Box<dyn LdapSession>, LdapError> {
        Err(LdapError::NotConfigured(self.0.to_string()))
    }

    async fn open_as_user(
        &self,
        _dn: &str,
        _password: &SecretString,
    ) -> Result<Box<dyn LdapSession>, LdapError> {
        Err(LdapError::NotConfigured(self.0.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn invalid_settings_become_a_directory_that_says_what_to_fix() {
        let config = json!({"url": "ldap://dc1", "bind_dn": "CN=svc,DC=corp"});
        let secrets: Secrets = [("bind_password", SecretString::from("pw-123456"))]
            .into_iter()
            .collect();
        let directory = directory(
            config.as_object().unwrap(),
            &secrets,
            ConnectorTags::new("t1", "ad"),
        );
        let Err(LdapError::NotConfigured(message)) = directory.open().await else {
            panic!("a misconfigured directory opened a session");
        };
        assert!(message.contains("set `starttls: true`"), "{message}");
        let password = SecretString::from("x".to_string());
        let Err(LdapError::NotConfigured(again)) =
            directory.open_as_user("CN=u,DC=corp", &password).await
        else {
            panic!("a misconfigured directory bound a user");
        };
        assert_eq!(message, again);
    }
}
