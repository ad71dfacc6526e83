//! Graph requests for one connector, through graph-rs-sdk's client: the path checked and
//! encoded, the token attached, Graph's throttling honoured, and the answer cut to what a
//! plugin may need.
//!
//! Retries, exactly: a `429` (and a `503` carrying `Retry-After`) is waited out and sent again
//! while the connector's retry budget lasts — Graph did not carry out a throttled request, so
//! this is safe for every method; a `401` is sent once more with a freshly acquired token (the
//! request was refused before it was looked at); a connection failure or a `502`/`503`/`504`
//! is retried once for `GET` only. Nothing else is retried: a `PATCH` that timed out may have
//! been carried out.
//!
//! It owns what goes over the wire to Graph. It must never put a token, the client secret or a
//! request body into an error, a log line or a `Debug` output.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use graph_rs_sdk::http::{BodyRead, Method as HttpMethod};
use graph_rs_sdk::{GraphClient, GraphClientConfiguration, GraphFailure};

use super::settings::GraphSettings;
use super::token::Tokens;
use super::{GraphApi, GraphError, Method, Request, Response};
use crate::capabilities::ldap::ConnectorTags;

/// The most bytes of a Graph answer handed to a plugin.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The most bytes of a request body a plugin may send.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Where `Retry-After` is missing from a 429, the first wait (doubled on each retry).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The answer headers a plugin sees.
const PASSED_HEADERS: [&str; 6] = [
    "retry-after",
    "location",
    "request-id",
    "client-request-id",
    "content-type",
    "odata-version",
];

/// Graph for one connector.
pub struct GraphConnection {
    settings: Arc<GraphSettings>,
    tokens: Tokens,
    client: GraphClient,
    tags: ConnectorTags,
}

impl GraphConnection {
    pub fn new(settings: GraphSettings, tags: ConnectorTags) -> GraphConnection {
        let settings = Arc::new(settings);
        let tokens = Tokens::new(settings.clone());
        let configuration = GraphClientConfiguration::new()
            .client_application(tokens.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .https_only(settings.graph.scheme() == "https");
        let mut client = GraphClient::from(configuration);
        if settings.overridden {
            // Only an explicit `graph_endpoint`/`authority` in the connector's configuration
            // gets here; the SDK's host check would refuse anything but Microsoft's clouds.
            tracing::warn!(
                target: "latchkey::graph",
                tenant = %tags.tenant,
                connector = %tags.connector,
                graph = %settings.graph,
                authority = %settings.authority,
                "this connector's Graph endpoint or authority is overridden (for testing only): \
                 requests do not go to Microsoft's cloud"
            );
            client.use_test_endpoint(&settings.graph);
        } else {
            client.use_endpoint(&settings.graph);
        }
        GraphConnection {
            settings,
            tokens,
            client,
            tags,
        }
    }

    /// How many token requests this connector has sent (tokens are cached).
    pub fn token_requests(&self) -> u64 {
        self.tokens.requests_sent()
    }

    async fn send_once(
        &self,
        request: &Request,
        segments: &[String],
    ) -> Result<reqwest::Response, GraphFailure> {
        let method = match request.method {
            Method::Get => HttpMethod::GET,
            Method::Post => HttpMethod::POST,
            Method::Patch => HttpMethod::PATCH,
            Method::Put => HttpMethod::PUT,
            Method::Delete => HttpMethod::DELETE,
        };
        let body = request.body.clone().map(BodyRead::from);
        let mut handler = self.client.custom(method, body);
        {
            let url: &mut graph_rs_sdk::http::Url = handler.as_mut();
            if let Ok(mut path) = url.path_segments_mut() {
                path.clear().extend(segments);
            }
            if !request.query.is_empty() {
                let mut pairs = url.query_pairs_mut();
                for (name, value) in &request.query {
                    pairs.append_pair(name, value);
                }
            }
        }
        let advanced = request
            .query
            .iter()
            .any(|(name, _)| name == "$count" || name == "$search");
        if advanced {
            // Graph's advanced queries need this header as well as `$count=true`.
            handler = handler.header(
                graph_rs_sdk::header::HeaderName::from_static("consistencylevel"),
                graph_rs_sdk::header::HeaderValue::from_static("eventual"),
            );
        }
        handler.send().await
    }
}

#[async_trait]
impl GraphApi for GraphConnection {
    async fn send(&self, request: Request) -> Result<Response, GraphError> {
        let segments = checked_path(&request)?;
        let idempotent = matches!(request.method, Method::Get);
        let mut budget = self.settings.retry_budget;
        let mut fallback_wait = DEFAULT_RETRY_AFTER;
        let mut refreshed = false;
        let mut retried = false;
        loop {
            let token = self.tokens.get().await?;
            let answer = match self.send_once(&request, &segments).await {
                Ok(answer) => answer,
                Err(failure) => {
                    let error = failure_to_error(&failure, &self.settings);
                    if idempotent && !retried && matches!(error, GraphError::Unavailable(_)) {
                        retried = true;
                        continue;
                    }
                    return Err(error);
                }
            };
            let status = answer.status().as_u16();
            let retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if status == 401 && !refreshed {
                refreshed = true;
                self.tokens.refused(&token).await;
                continue;
            }
            if status == 429 || (status == 503 && retry_after.is_some()) {
                let wait = retry_after.unwrap_or(fallback_wait);
                fallback_wait *= 2;
                if wait > budget {
                    tracing::warn!(
                        target: "latchkey::graph",
                        tenant = %self.tags.tenant,
                        connector = %self.tags.connector,
                        status,
                        retry_after_s = wait.as_secs(),
                        "Graph is throttling this connector beyond its retry budget"
                    );
                    return Err(GraphError::Throttled(
                        u32::try_from(wait.as_secs()).unwrap_or(u32::MAX),
                    ));
                }
                tracing::info!(
                    target: "latchkey::graph",
                    tenant = %self.tags.tenant,
                    connector = %self.tags.connector,
                    status,
                    retry_after_s = wait.as_secs(),
                    "Graph asked this connector to wait; waiting"
                );
                budget -= wait;
                tokio::time::sleep(wait).await;
                continue;
            }
            if idempotent && !retried && matches!(status, 502..=504) {
                retried = true;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            return read_answer(answer, status, &self.settings).await;
        }
    }
}

/// The path's segments: `/v1.0/…` or `/beta/…`, each segment literal (encoded by the URL).
fn checked_path(request: &Request) -> Result<Vec<String>, GraphError> {
    let path = request.path.as_str();
    let Some(rest) = path.strip_prefix('/') else {
        return Err(GraphError::InvalidRequest(format!(
            "the Graph path {path:?} must start with /v1.0/ or /beta/"
        )));
    };
    let segments: Vec<String> = rest.split('/').map(str::to_string).collect();
    if !matches!(segments.first().map(String::as_str), Some("v1.0" | "beta")) || segments.len() < 2
    {
        return Err(GraphError::InvalidRequest(format!(
            "the Graph path {path:?} must start with /v1.0/ or /beta/ and name a resource"
        )));
    }
    if segments
        .iter()
        .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('?'))
    {
        return Err(GraphError::InvalidRequest(format!(
            "the Graph path {path:?} has an empty, relative or invalid segment; put query \
             parameters in `query`"
        )));
    }
    if let Some(body) = &request.body {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(GraphError::InvalidRequest(format!(
                "the request body is {} bytes, more than the {MAX_REQUEST_BYTES} allowed",
                body.len()
            )));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(body).is_err() {
            return Err(GraphError::InvalidRequest(
                "the request body is not JSON".to_string(),
            ));
        }
    }
    Ok(segments)
}

async fn read_answer(
    answer: reqwest::Response,
    status: u16,
    settings: &GraphSettings,
) -> Result<Response, GraphError> {
    let headers = answer
        .headers()
        .iter()
        .filter(|(name, _)| PASSED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(GraphError::Unavailable(format!(
            "Graph's answer is larger than {MAX_RESPONSE_BYTES} bytes; ask for fewer items or \
             properties"
        )));
    }
    let mut answer = answer;
    let mut body = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(GraphError::Unavailable(format!(
                        "Graph's answer is larger than {MAX_RESPONSE_BYTES} bytes; ask for \
                         fewer items or properties"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Err(GraphError::Timeout(format!(
                    "Graph's answer did not arrive within {:?}",
                    settings.timeout
                )));
            }
            Err(e) => {
                return Err(GraphError::Unavailable(format!(
                    "Graph's answer was cut off: {}",
                    transport_reason(&e)
                )));
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn failure_to_error(failure: &GraphFailure, settings: &GraphSettings) -> GraphError {
    match failure {
        GraphFailure::ReqwestError(e) if e.is_timeout() => GraphError::Timeout(format!(
            "Graph did not answer within {:?}",
            settings.timeout
        )),
        GraphFailure::ReqwestError(e) => GraphError::Unavailable(format!(
            "Graph at {} could not be reached: {}",
            settings.graph.origin().ascii_serialization(),
            transport_reason(e)
        )),
        // The SDK asks `Tokens` for the token acquired just before; this is a fault of ours.
        _ => GraphError::Unavailable(
            "the request to Graph could not be prepared; try again".to_string(),
        ),
    }
}

/// Why a request failed on the wire, without its URL (which may carry a query with names).
pub(super) fn transport_reason(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut reason = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if reason.is_empty() {
        if e.is_connect() {
            "connection refused or no route".to_string()
        } else {
            "transport error".to_string()
        }
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, body: Option<&str>) -> Request {
        Request {
            method: Method::Get,
            path: path.to_string(),
            query: vec![],
            body: body.map(str::to_string),
        }
    }

    #[test]
    fn paths_are_versioned_and_literal() {
        // A guest's UPN holds `#`: segments are literal, the URL encodes them.
        assert_eq!(
            checked_path(&request("/v1.0/users/a_x#EXT#@corp.example", None)).unwrap(),
            ["v1.0", "users", "a_x#EXT#@corp.example"]
        );
        assert_eq!(
            checked_path(&request("/beta/users/x", None)).unwrap(),
            ["beta", "users", "x"]
        );
        for bad in [
            "v1.0/users",
            "/v2/users",
            "/v1.0",
            "/v1.0/users/../groups",
            "/v1.0//users",
            "/v1.0/users?$top=1",
        ] {
            assert!(
                matches!(
                    checked_path(&request(bad, None)),
                    Err(GraphError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            checked_path(&request("/v1.0/users/x", Some("{not json"))),
            Err(GraphError::InvalidRequest(_))
        ));
    }
}
