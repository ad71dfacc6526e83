//! The application's token for one connector: acquired with the client-credentials grant
//! (`POST {authority}/{tenant}/oauth2/v2.0/token`), cached until five minutes before it
//! expires, refreshed by one request at a time however many calls need it.
//!
//! It owns the client secret on its way to the token endpoint and the access token after. It
//! must never put either into an error, a log line or a `Debug` output: the token endpoint's
//! refusals are reported by their AADSTS code and description, which hold neither.
//!
//! [`Tokens`] also implements graph-rs-sdk's `ClientApplication`, so the SDK's client attaches
//! the token Latchkey acquired (graph-rs-sdk's own credential types only know Microsoft's
//! authorities, and a connector may be pointed at a test endpoint).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use graph_core::identity::ForceTokenRefresh;
use graph_rs_sdk::error::{AuthExecutionError, AuthExecutionResult};
use graph_rs_sdk::identity::ClientApplication;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::GraphError;
use super::settings::GraphSettings;

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// The most of a token endpoint's error text kept in a message.
const MAX_DESCRIPTION: usize = 400;

struct Cached {
    token: SecretString,
    renew_at: Instant,
}

/// One connector's application token.
#[derive(Clone)]
pub struct Tokens {
    settings: Arc<GraphSettings>,
    http: reqwest::Client,
    cached: Arc<Mutex<Option<Cached>>>,
    /// The token last handed out, for the SDK's synchronous `get_token_silent`.
    current: Arc<std::sync::Mutex<Option<SecretString>>>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: Option<String>,
    error_description: Option<String>,
}

impl Tokens {
    pub fn new(settings: Arc<GraphSettings>) -> Tokens {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .https_only(settings.token_url().scheme() == "https")
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls builds");
        Tokens {
            settings,
            http,
            cached: Arc::new(Mutex::new(None)),
            current: Arc::new(std::sync::Mutex::new(None)),
            requests: Arc::default(),
        }
    }

    /// How many token requests this connector has sent.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a new one.
    pub async fn get(&self) -> Result<SecretString, GraphError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(self.hand_out(c.token.clone()));
        }
        let (token, lifetime) = self.acquire().await?;
        *cached = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
        });
        Ok(self.hand_out(token))
    }

    /// Forgets `refused`, a token Graph did not accept, unless another call already replaced it.
    pub async fn refused(&self, refused: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == refused.expose_secret())
        {
            *cached = None;
        }
    }

    fn hand_out(&self, token: SecretString) -> SecretString {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        token
    }

    async fn acquire(&self) -> Result<(SecretString, Duration), GraphError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = &self.settings;
        let form = [
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose_secret()),
            ("scope", s.scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        let url = s.token_url();
        let answer = self
            .http
            .post(url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    format!("timed out after {:?}", s.timeout)
                } else {
                    "could not be reached".to_string()
                };
                GraphError::Unavailable(format!(
                    "the token endpoint {} {what}: {}",
                    origin(&url),
                    super::client::transport_reason(&e)
                ))
            })?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| {
            GraphError::Unavailable(format!(
                "the token endpoint's answer could not be read: {}",
                super::client::transport_reason(&e)
            ))
        })?;
        if status.is_success() {
            let parsed: TokenAnswer = serde_json::from_str(&body).map_err(|_| {
                GraphError::Token(format!(
                    "the token endpoint {} answered {status} without an access token",
                    origin(&url)
                ))
            })?;
            let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3599).max(60));
            return Ok((SecretString::from(parsed.access_token), lifetime));
        }
        if status.is_server_error() {
            return Err(GraphError::Unavailable(format!(
                "the token endpoint {} answered {status}; try again later",
                origin(&url)
            )));
        }
        let refusal: TokenRefusal = serde_json::from_str(&body).unwrap_or(TokenRefusal {
            error: None,
            error_description: None,
        });
        let code = refusal.error.unwrap_or_else(|| status.to_string());
        let mut description = refusal
            .error_description
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        // The description quotes nothing the request sent but the app id, but cut it anyway.
        if description.len() > MAX_DESCRIPTION {
            let mut end = MAX_DESCRIPTION;
            while !description.is_char_boundary(end) {
                end -= 1;
            }
            description.truncate(end);
        }
        let advice = match code.as_str() {
            "invalid_client" => {
                "check the `client_secret` secret (its value, not its id) and that it has not \
                 expired"
            }
            "unauthorized_client" => {
                "check `client_id`: no such application in this tenant (or it is disabled)"
            }
            "invalid_request" | "invalid_tenant" => "check `tenant_id`",
            "invalid_scope" => "check `cloud`: the application is in another cloud",
            _ => "check the connector's `tenant_id`, `client_id` and `client_secret`",
        };
        Err(GraphError::Token(format!(
            "no token for application {} in tenant {}: {code}: {description} ({advice})",
            s.client_id, s.tenant_id
        )))
    }
}

/// Scheme, host and port of `url`, for messages.
fn origin(url: &graph_rs_sdk::http::Url) -> String {
    url.origin().ascii_serialization()
}

#[async_trait]
impl ClientApplication for Tokens {
    fn get_token_silent(&mut self) -> AuthExecutionResult<String> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|t| t.expose_secret().to_string())
            .ok_or_else(|| AuthExecutionError::Other("no token acquired yet".into()))
    }

    async fn get_token_silent_async(&mut self) -> AuthExecutionResult<String> {
        self.get_token_silent()
    }

    fn with_force_token_refresh(&mut self, _force_token_refresh: ForceTokenRefresh) {}
}
