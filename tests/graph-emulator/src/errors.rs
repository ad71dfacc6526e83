//! The two error dialects the emulator speaks, each rendered exactly as Microsoft renders it:
//! Graph's `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`
//! and the Entra token endpoint's `{"error","error_description","error_codes",…}` with its
//! `AADSTS` numbers. Handlers build these values; only this module turns them into bodies.

use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::clock;

/// The ids a Graph answer carries, in its headers and in an error's `innerError`.
#[derive(Clone, Debug)]
pub(crate) struct RequestIds {
    pub request_id: String,
    /// The client's `client-request-id` if it sent one, else the same as `request_id` (as
    /// Graph does).
    pub client_request_id: String,
}

impl RequestIds {
    pub fn new(client_request_id: Option<&str>) -> RequestIds {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = client_request_id
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        RequestIds {
            request_id,
            client_request_id,
        }
    }

    /// Puts `request-id` and `client-request-id` on an answer.
    pub fn stamp(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        for (name, value) in [
            ("request-id", &self.request_id),
            ("client-request-id", &self.client_request_id),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// A Graph error answer.
#[derive(Debug)]
pub(crate) struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
    /// Throttling answers carry extra `innerError` members (`code`, `message`, `status`).
    throttled: bool,
}

/// The message of every missing-permission answer.
const INSUFFICIENT_PRIVILEGES: &str = "Insufficient privileges to complete the operation.";

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            throttled: false,
        }
    }

    /// 400 `BadRequest`: OData could not make sense of the request.
    pub fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `Request_BadRequest`: the directory refused the request.
    pub fn directory_bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// 400 `Request_UnsupportedQuery`.
    pub fn unsupported_query(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    /// A filter on a property (or with an operator) that needs the advanced query parameters,
    /// or that the property does not support at all.
    pub fn unsupported_filter_property(property: &str) -> GraphError {
        GraphError::unsupported_query(format!(
            "Unsupported or invalid query filter clause specified for property '{property}' of \
             resource 'User'."
        ))
    }

    /// A `$select`, `$filter` or body naming a property a user does not have.
    pub fn unknown_property(property: &str) -> GraphError {
        GraphError::bad_request(format!(
            "Could not find a property named '{property}' on type 'microsoft.graph.user'."
        ))
    }

    /// 400 `BadRequest` "Resource not found for the segment '…'."
    pub fn unknown_segment(segment: &str) -> GraphError {
        GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    /// 404 `Request_ResourceNotFound` for a user or organization that does not exist.
    pub fn not_found(id: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects \
                 are not present."
            ),
        )
    }

    /// 401 `InvalidAuthenticationToken`.
    pub fn invalid_token(message: &str) -> GraphError {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    /// 403 `Authorization_RequestDenied`: the application lacks a permission or role.
    pub fn insufficient_privileges() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            INSUFFICIENT_PRIVILEGES,
        )
    }

    /// 405 for a method the resource does not take.
    pub fn method_not_allowed() -> GraphError {
        GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    /// 429 with `Retry-After`, as Graph's throttling documentation shows it.
    pub fn throttled(retry_after_seconds: u64) -> GraphError {
        GraphError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "TooManyRequests",
            message: "Please retry again later.".to_string(),
            retry_after: Some(retry_after_seconds),
            throttled: true,
        }
    }

    /// An injected 5xx, with the code Graph uses for that status.
    pub fn server_error(status: StatusCode, retry_after_seconds: Option<u64>) -> GraphError {
        let (code, message) = match status.as_u16() {
            502 => ("BadGateway", "Bad gateway."),
            503 => (
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504 => ("GatewayTimeout", "Gateway timeout."),
            _ => ("UnknownError", ""),
        };
        GraphError {
            retry_after: retry_after_seconds,
            ..GraphError::new(status, code, message)
        }
    }

    /// The error code (tests of this crate check it).
    #[cfg(test)]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The answer, stamped with `ids`.
    pub fn into_response(self, ids: &RequestIds) -> Response {
        let mut inner = json!({
            "date": clock::inner_error_date(SystemTime::now()),
            "request-id": ids.request_id,
            "client-request-id": ids.client_request_id,
        });
        if self.throttled {
            inner["code"] = json!(self.status.as_u16().to_string());
            inner["message"] = json!("Please retry after");
            inner["status"] = json!(self.status.as_u16().to_string());
        }
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": inner,
            }
        });
        let mut response = (self.status, json_body(&body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        ids.stamp(response)
    }
}

/// A JSON body with `Content-Type: application/json` (what Graph puts on errors).
fn json_body(value: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

/// An error of the Entra token endpoint (OAuth 2.0 error response with Entra's extras).
#[derive(Debug)]
pub(crate) struct TokenError {
    status: StatusCode,
    /// The OAuth error: `invalid_client`, `unauthorized_client`, `invalid_request`, …
    error: &'static str,
    /// The AADSTS number.
    aadsts: u32,
    /// The description's first line, without the `AADSTS…: ` prefix.
    description: String,
}

impl TokenError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        aadsts: u32,
        description: impl Into<String>,
    ) -> TokenError {
        TokenError {
            status,
            error,
            aadsts,
            description: description.into(),
        }
    }

    /// The AADSTS number (tests of this crate check it).
    #[cfg(test)]
    pub fn aadsts(&self) -> u32 {
        self.aadsts
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let now = SystemTime::now();
        let trace_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let timestamp = clock::token_error_timestamp(now);
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            self.aadsts, self.description
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.aadsts),
        });
        let mut response = (self.status, json_body(&body)).into_response();
        token_endpoint_headers(&mut response, &trace_id);
        response
    }
}

/// The headers every token-endpoint answer carries: no caching, and Entra's request id.
pub(crate) fn token_endpoint_headers(response: &mut Response, request_id: &str) {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-ms-request-id", value);
    }
}
