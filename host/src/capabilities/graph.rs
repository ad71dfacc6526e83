//! `graph`: Microsoft Graph for a connector, with the application token acquired, cached and
//! refreshed by the host, and Graph's throttling honoured within a budget.
//!
//! The host builds a [`GraphConnection`] for a connector from its configuration and secrets
//! ([`connection`]): `tenant_id`, `client_id`, `cloud` (Microsoft's worldwide or national
//! clouds), `timeout_ms`, `retry_budget_seconds`, the testing overrides `graph_endpoint` and
//! `authority`, and the `client_secret` secret. When the settings cannot work, a
//! [`Misconfigured`] Graph answers every call with the sentence saying what to fix. A connector
//! without Graph settings gets [`NotConfigured`].
//!
//! - `settings`: the configuration keys, checked, with a sentence per mistake.
//! - `token`: the client-credentials token, cached and refreshed.
//! - `client`: the requests (graph-rs-sdk's client), retries and limits.
//!
//! It must never hand the client secret or a token to a plugin, a log, an error or a `Debug`
//! output.

mod client;
mod settings;
mod token;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use self::client::{GraphConnection, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
pub use self::settings::{
    Cloud, DEFAULT_RETRY_BUDGET_SECONDS, DEFAULT_TIMEOUT_MS, GraphSettings, InvalidGraphSettings,
};
use crate::capabilities::ldap::ConnectorTags;
use crate::capabilities::secrets::Secrets;
pub use crate::runtime::wit::graph::{GraphError, Method, Request, Response};

/// Graph as one connector instance reaches it.
#[async_trait]
pub trait GraphApi: Send + Sync {
    async fn send(&self, request: Request) -> Result<Response, GraphError>;
}

/// Graph for a connector from its configuration and secrets: a connection when the settings
/// are valid, otherwise a Graph that answers every call with [`GraphError::NotConfigured`] and
/// the sentence saying what to fix (so a plugin's test-connection can show it).
pub fn connection(
    config: &Map<String, Value>,
    secrets: &Secrets,
    tags: ConnectorTags,
) -> Arc<dyn GraphApi> {
    match GraphSettings::from_connector(config, secrets) {
        Ok(settings) => Arc::new(GraphConnection::new(settings, tags)),
        Err(invalid) => {
            tracing::warn!(
                target: "latchkey::graph",
                tenant = %tags.tenant,
                connector = %tags.connector,
                "this connector's Graph settings cannot work: {invalid}"
            );
            Arc::new(Misconfigured(invalid))
        }
    }
}

/// Graph for a connector that has no Graph settings.
pub struct NotConfigured;

#[async_trait]
impl GraphApi for NotConfigured {
    async fn send(&self, _request: Request) -> Result<Response, GraphError> {
        Err(GraphError::NotConfigured(
            "this connector has no Microsoft Graph settings: set `tenant_id` and `client_id` in \
             its configuration and the `client_secret` secret"
                .to_string(),
        ))
    }
}

/// Graph for a connector whose settings cannot work; every call says why.
#[derive(Debug)]
pub struct Misconfigured(pub InvalidGraphSettings);

#[async_trait]
impl GraphApi for Misconfigured {
    async fn send(&self, _request: Request) -> Result<Response, GraphError> {
        Err(GraphError::NotConfigured(self.0.to_string()))
    }
}
