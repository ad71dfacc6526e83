//! Microsoft Graph's front door: every request that is not for the token endpoint lands here.
//! In order, it stamps `request-id`/`client-request-id`, serves an injected fault (so a
//! throttled request has no effect), checks the bearer token, and routes `/v1.0/…` or
//! `/beta/…` (served identically) to `users` or `organization`; anything else gets the answer
//! Graph gives for an unknown segment or method. Handlers return `GraphError`s; it never panics
//! on a request.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::errors::{GraphError, RequestIds};
use crate::state::{Fault, Shared};
use crate::token::{self, Grant};
use crate::{organization, users};

/// The Content-Type Graph puts on JSON it returns.
pub(crate) const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// The largest request body read (Graph's own limit is 4 MB).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What a handler gets to know about its request.
pub(crate) struct GraphRequest<'a> {
    pub shared: &'a Shared,
    pub grant: Grant,
    /// `v1.0` or `beta`.
    pub version: &'a str,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
}

impl GraphRequest<'_> {
    /// `{base}/{version}/$metadata#{fragment}`.
    pub fn context(&self, fragment: &str) -> String {
        format!(
            "{}/{}/$metadata#{fragment}",
            self.shared.base_url, self.version
        )
    }

    /// Whether the request carries `ConsistencyLevel: eventual`.
    pub fn eventual(&self) -> bool {
        self.headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
    }
}

/// A 200 with an OData JSON body.
pub(crate) fn odata_json(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, ODATA_JSON)],
        body.to_string(),
    )
        .into_response()
}

/// The fallback handler: everything but the token endpoint.
pub(crate) async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let ids = RequestIds::new(
        request
            .headers()
            .get("client-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    match serve(&shared, request).await {
        Ok(response) => ids.stamp(response),
        Err(error) => error.into_response(&ids),
    }
}

async fn serve(shared: &Shared, request: Request) -> Result<Response, GraphError> {
    let (parts, body) = request.into_parts();
    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let version = segments.first().map(String::as_str).unwrap_or_default();
    if !matches!(version, "v1.0" | "beta") {
        return Err(GraphError::bad_request(format!(
            "Invalid version: {version}"
        )));
    }
    let grant = {
        let mut tenant = shared.tenant();
        if let Some(fault) = tenant.take_fault() {
            return Err(match fault {
                Fault::Throttle {
                    retry_after_seconds,
                } => GraphError::throttled(retry_after_seconds),
                Fault::ServerError {
                    status,
                    retry_after_seconds,
                } => GraphError::server_error(status, retry_after_seconds),
            });
        }
        token::authenticate(&tenant, &parts.headers)?
    };
    let body = to_bytes(Body::new(body), BODY_LIMIT)
        .await
        .map_err(|_| GraphError::bad_request("The request body is too large."))?;
    let request = GraphRequest {
        shared,
        grant,
        version,
        headers: &parts.headers,
        query: parts.uri.query(),
    };
    let resource: Vec<&str> = segments[1..]
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    let method = &parts.method;
    match resource.as_slice() {
        ["users"] if method == Method::GET => users::list(&request),
        ["users", "$count"] if method == Method::GET => users::count(&request),
        ["users", key] if method == Method::GET => users::get(&request, key),
        ["users", key] if method == Method::PATCH => users::patch(&request, key, &body),
        ["users"] | ["users", _] => Err(GraphError::method_not_allowed()),
        ["users", _, segment, ..] => Err(GraphError::unknown_segment(segment)),
        ["me", ..] => Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        )),
        ["organization"] if method == Method::GET => organization::list(&request),
        ["organization", id] if method == Method::GET => organization::get(&request, id),
        ["organization"] | ["organization", _] => Err(GraphError::method_not_allowed()),
        [] => Err(GraphError::bad_request("Invalid request")),
        [segment, ..] => Err(GraphError::unknown_segment(segment)),
    }
}

/// Puts a `text/plain` count (for `/$count`).
pub(crate) fn plain_count(count: usize) -> Response {
    let mut response = (StatusCode::OK, count.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    response
}
