//! The admin console (DESIGN: "src/web/"): server-rendered pages under `/console` for the work
//! admins do in a browser — employees and the Edit password dialog, a change's live status,
//! connectors, keys, workstations and the audit log.
//!
//! The console is a client of the API: every page and form calls the same handlers in-process
//! (`call`) as the signed-in principal, so roles, tenant isolation, validation and the audit
//! are exactly the API's. It owns the sign-in (an HttpOnly, Secure, SameSite=Strict session
//! cookie; `session`), CSRF protection of every state-changing request (a middleware, so no form
//! can forget it), security headers, templates (`render`) and the small script that gives live
//! policy feedback and live change status. It must never put a password, a token or a secret
//! into a page, a log or a URL: a password typed in the dialog is posted once and never sent
//! back.

mod admins;
mod audit;
mod call;
mod connectors;
mod employees;
mod keys;
mod render;
mod session;
mod workstations;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::AppState;

pub use call::ApiReply;
pub use session::Console;

/// The console's routes; `state` is what its CSRF and session middleware reads.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(session::home))
        .route("/console/", get(session::home))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route(
            "/console/tenants",
            get(session::tenants).post(session::create_tenant),
        )
        .route("/console/static/{file}", get(render::asset))
        .route(
            "/console/t/{tenant}/employees",
            get(employees::list).post(employees::add),
        )
        .route(
            "/console/t/{tenant}/employees/{employee}",
            get(employees::show),
        )
        .route(
            "/console/t/{tenant}/employees/{employee}/password",
            post(employees::set_password),
        )
        .route(
            "/console/t/{tenant}/employees/{employee}/password/check",
            post(employees::check_password),
        )
        .route(
            "/console/t/{tenant}/changes/{change}",
            get(employees::change),
        )
        .route(
            "/console/t/{tenant}/changes/{change}/events",
            get(employees::change_events),
        )
        .route(
            "/console/{*rest}",
            axum::routing::any(|| async { WebError::not_found("page") }),
        )
        .merge(admins::routes())
        .merge(connectors::routes())
        .merge(keys::routes())
        .merge(workstations::routes())
        .merge(audit::routes())
        .layer(axum::middleware::from_fn_with_state(state, session::guard))
}

/// What a console handler answers when it cannot show its page: a redirect (to sign in) or an
/// error page saying what to do next.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in (or the session ended): to the sign-in page, then back here.
    SignIn { next: String },
    /// A page explaining what went wrong.
    Page {
        status: StatusCode,
        title: String,
        message: String,
    },
}

impl WebError {
    pub fn page(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        WebError::Page {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        WebError::page(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("This {what} does not exist, or you may not see it."),
        )
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "console page failed");
        WebError::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server failed to show this page; the error is in its log. Try again, or ask \
             your operator.",
        )
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn { next } => {
                let to = format!(
                    "/console/sign-in?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Redirect::to(&to).into_response()
            }
            WebError::Page {
                status,
                title,
                message,
            } => render::error_page(status, &title, &message),
        }
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// The headers every console response carries: no framing, no inline script, no sniffing, no
/// referrer, no caching of pages that show a tenant's data.
fn security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    let set =
        |headers: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
            headers.insert(name, HeaderValue::from_static(value));
        };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
}
