//! The console's in-process calls of the API: a request built here carries the signed-in
//! principal as [`SignedIn`] and goes through the API's own router (extractors, roles, tenant
//! isolation, validation, audit) without a socket or a token.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

use super::{WebError, WebResult};
use crate::api::AppState;
use crate::api::auth::SignedIn;
use crate::store::Principal;

/// What the API answered.
#[derive(Debug)]
pub struct ApiReply {
    pub status: StatusCode,
    /// The JSON body (a problem+json document on errors; null when empty).
    pub body: Value,
}

/// The API's routes, built once: every console page calls them, often several times.
static API_ROUTES: std::sync::LazyLock<axum::Router<AppState>> =
    std::sync::LazyLock::new(crate::api::routes);

/// The largest answer the console reads (an audit page or an employee list is far smaller).
const MAX_REPLY: usize = 16 * 1024 * 1024;

/// Calls the API at `uri` (`/api/v1/…`, with its query) as `principal`.
pub async fn api(
    state: &AppState,
    principal: &Principal,
    method: Method,
    uri: &str,
    body: Option<&Value>,
) -> ApiReply {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(value) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(value).unwrap_or_default())
        }
        None => Body::empty(),
    };
    let mut request = match request.body(body) {
        Ok(request) => request,
        Err(error) => {
            tracing::error!(%error, "the console built an invalid API request");
            return ApiReply {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: Value::Null,
            };
        }
    };
    request.extensions_mut().insert(SignedIn(principal.clone()));
    let router = API_ROUTES.clone().with_state(state.clone());
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_REPLY)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    ApiReply { status, body }
}

impl ApiReply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `detail`, for showing beside a form.
    pub fn detail(&self) -> String {
        self.body["detail"]
            .as_str()
            .unwrap_or("the request failed")
            .to_string()
    }

    /// The message of a field error on `field` (`errors: [{field, message}]`), if any.
    pub fn field_error(&self, field: &str) -> Option<String> {
        self.body["errors"].as_array()?.iter().find_map(|e| {
            (e["field"] == field).then(|| e["message"].as_str().unwrap_or_default().to_string())
        })
    }

    /// The error page for an answer a form cannot show beside its fields: the caller may not
    /// do this (403), the thing is gone or another tenant's (404), or the sign-in ended (401).
    pub fn refusal(&self) -> Option<WebError> {
        matches!(
            self.status,
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
        )
        .then(|| self.page_error())
    }

    /// The error page that fits this (failed) answer.
    pub fn page_error(&self) -> WebError {
        let detail = self.detail();
        match self.status {
            StatusCode::NOT_FOUND => WebError::page(
                StatusCode::NOT_FOUND,
                "Not found",
                format!(
                    "{}: it does not exist, or you may not see it.",
                    capitalise(&detail)
                ),
            ),
            StatusCode::FORBIDDEN => WebError::page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!("{}.", capitalise(&detail)),
            ),
            StatusCode::UNAUTHORIZED => WebError::SignIn {
                next: "/console".into(),
            },
            status if status.is_server_error() => WebError::page(
                status,
                "The server could not do this",
                format!("{}.", capitalise(&detail)),
            ),
            status => WebError::page(status, "The request was refused", capitalise(&detail)),
        }
    }

    /// The body of a successful answer; otherwise the error page that fits the problem (a page
    /// load has nothing better to show).
    pub fn into_page_data(self) -> WebResult<Value> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(self.page_error())
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
