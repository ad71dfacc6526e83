//! `ApiError`: every error the HTTP API answers, as RFC 9457 problem+json — a type URI naming
//! the problem, a title, the status, a detail a person can act on, and extension members where
//! a client needs structure: `errors` (bad fields), `violations` (every unmet password rule
//! with its connector), `precondition` (which one is missing), `connector` and `change_id`
//! (a directory that failed).
//!
//! It owns the mapping from the store's and the workflow's errors to statuses. A 500 logs its
//! cause and shows none of it. It must never carry a password, a token or a secret.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::StoreError;
use crate::workflow::describe::FailureKind;
use crate::workflow::{ChangeError, ResolveError};

/// An API error, rendered as problem+json.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The last segment of the problem type URI (`invalid-request`, `policy-violation`, ...).
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members (merged into the body).
    pub extra: Value,
}

/// The base of every problem type URI (documented in the OpenAPI document).
pub const PROBLEM_BASE: &str = "https://latchkey.invalid/problems/";

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            title,
            detail: detail.into(),
            extra: json!({}),
        }
    }

    pub fn with(mut self, extra: Value) -> ApiError {
        if let (Some(into), Value::Object(from)) = (self.extra.as_object_mut(), extra) {
            into.extend(from);
        }
        self
    }

    /// 400: the body is not what the endpoint takes.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "The request is not valid",
            detail,
        )
    }

    /// 422 with one field error.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "A field is not valid",
            format!("{field}: {message}"),
        )
        .with(json!({"errors": [{"field": field, "message": message}]}))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            "send a valid token as `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 429: this address failed to authenticate too often (`api::limiter`); `Retry-After`
    /// says when to try again.
    pub fn locked_out(retry_after: u64) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failed-authentications",
            "Too many failed authentications",
            format!(
                "too many requests from your address carried a wrong token; try again in \
                 {retry_after} seconds with the right one"
            ),
        )
        .with(json!({"retry_after": retry_after}))
    }

    /// 500: logs `cause` and shows nothing of it.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(cause = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the error is in its log",
        )
    }

    /// 503: the database does not answer (down, restarting, every connection busy); logs
    /// `cause`, asks the client to retry in a few seconds.
    pub fn database_unavailable(cause: impl std::fmt::Display) -> ApiError {
        tracing::warn!(cause = %cause, "the database is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "The database is unavailable; try again later",
            "Latchkey cannot reach its database now (it may be restarting): try again in a few \
             seconds; if this lasts, check that the database server is running and reachable",
        )
        .with(json!({"retry_after": DATABASE_RETRY_AFTER_SECONDS}))
    }

    /// 507: the database's disk is full, so nothing could be written; logs `cause`.
    pub fn disk_full(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(cause = %cause, "the database's disk is full");
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk-full",
            "The database's disk is full",
            "Latchkey could not write to its database because the disk space is exhausted, so \
             nothing was saved: free space on the disk that holds the database (the server's \
             data directory), then try again",
        )
    }
}

/// What a client is told to wait before retrying when the database does not answer (a restart
/// takes a few seconds).
const DATABASE_RETRY_AFTER_SECONDS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.extra.get("retry_after").and_then(Value::as_u64);
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), self.extra) {
            body.extend(extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(message) => ApiError::conflict(message),
            StoreError::KeyRefused {
                key,
                status,
                refusal,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "precondition",
                "A precondition is not met",
                format!("key {key} is {status}: {refusal}"),
            )
            .with(json!({"precondition": "key-status", "key": key, "key_status": status.as_str()})),
            StoreError::WrongState { .. } | StoreError::SequenceTaken => {
                ApiError::conflict(error.to_string())
            }
            StoreError::Invalid(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "A field is not valid",
                message,
            ),
            StoreError::Unavailable(cause) => ApiError::database_unavailable(cause),
            StoreError::DiskFull(cause) => ApiError::disk_full(cause),
            other => ApiError::internal(other),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> ApiError {
        match error {
            ResolveError::Store(store) => store.into(),
            ResolveError::PluginMissing { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "precondition",
                "A precondition is not met",
                error.to_string(),
            )
            .with(json!({"precondition": "plugin-missing"})),
            ResolveError::Invalid { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "precondition",
                "A precondition is not met",
                error.to_string(),
            )
            .with(json!({"precondition": "connector-invalid"})),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> ApiError {
        match error {
            ChangeError::Input { error } => ApiError::field(error.field(), error.to_string()),
            ChangeError::Precondition(precondition) => ApiError::new(
                StatusCode::CONFLICT,
                "precondition",
                "A precondition is not met",
                precondition.to_string(),
            )
            .with(json!({"precondition": precondition.code()})),
            ChangeError::Violations(violations) => {
                let list: Vec<Value> = violations.iter().map(|v| v.to_json()).collect();
                let summary: Vec<String> = violations
                    .iter()
                    .map(|v| {
                        format!(
                            "{}: {}",
                            v.connector,
                            crate::workflow::describe::violation(&v.violation)["message"]
                                .as_str()
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "policy-violation",
                    "The password does not meet the policy",
                    summary.join("; "),
                )
                .with(json!({"violations": list}))
            }
            ChangeError::Directory {
                connector,
                plugin,
                kind,
                message,
                detail,
                change_id,
            } => {
                let (status, code, title) = match kind {
                    FailureKind::Unavailable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "directory-unavailable",
                        "A directory is unavailable; try again later",
                    ),
                    FailureKind::Failed => (
                        StatusCode::BAD_GATEWAY,
                        "directory-failed",
                        "A directory refused or failed",
                    ),
                };
                ApiError::new(status, code, title, message).with(json!({
                    "connector": connector, "plugin": plugin, "error": detail,
                    "change_id": change_id,
                }))
            }
            ChangeError::NotFound(store) | ChangeError::Database(store) => store.into(),
            ChangeError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;
