//! The request log tests scan: for every request, its method, path, raw query, the names (never
//! the values) of the token endpoint's form fields and of the request's headers, and the status
//! answered. Nothing here stores a body, a secret or a token.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::Shared;

/// One request as the emulator saw it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub at: SystemTime,
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The token endpoint's form field names, in order (empty for other requests).
    pub form_fields: Vec<String>,
    /// The request's header names, lowercase.
    pub header_names: Vec<String>,
    pub status: u16,
}

impl RequestRecord {
    /// Whether this was a request to the token endpoint.
    pub fn is_token_request(&self) -> bool {
        self.path.ends_with("/oauth2/v2.0/token")
    }
}

/// Where the token endpoint leaves the form field names for the log.
#[derive(Clone, Default)]
pub(crate) struct FormFields(pub Arc<Mutex<Vec<String>>>);

impl FormFields {
    pub fn set(&self, names: Vec<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = names;
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Middleware: records every request once it has been answered.
pub(crate) async fn record(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let form_fields = FormFields::default();
    request.extensions_mut().insert(form_fields.clone());
    let at = SystemTime::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let header_names = request
        .headers()
        .keys()
        .map(|name| name.as_str().to_string())
        .collect();
    let response = next.run(request).await;
    shared.log().push(RequestRecord {
        at,
        method,
        path,
        query,
        form_fields: form_fields.take(),
        header_names,
        status: response.status().as_u16(),
    });
    response
}
