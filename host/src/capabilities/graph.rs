//! `graph`: Microsoft Graph for a connector, with the application token acquired, cached and
//! refreshed by the host. A connector without Graph settings gets [`NotConfigured`].

use async_trait::async_trait;

pub use crate::runtime::wit::graph::{GraphError, Request, Response};

/// Graph as one connector instance reaches it.
#[async_trait]
pub trait GraphApi: Send + Sync {
    async fn send(&self, request: Request) -> Result<Response, GraphError>;
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
