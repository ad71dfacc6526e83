//! Signing in to the console and guarding every console request.
//!
//! Sign-in takes an admin's (or operator's) API token once and gives the browser a session
//! cookie instead (`__Host-latchkey-session`: HttpOnly, Secure, SameSite=Strict, Path=/); the
//! token itself is never kept by the browser. The sign-in form is protected from login CSRF by
//! a double-submit cookie of its own.
//!
//! [`guard`] runs before every console handler: it resolves the session once (handlers take
//! [`Console`]), refuses any state-changing request whose CSRF token (the `csrf` form field or
//! the `x-csrf-token` header) does not match the session's, and adds the security headers.

use axum::body::Body;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use std::time::Instant;

use super::call::{ApiReply, api};
use super::render;
use super::{WebError, WebResult, security_headers};
use crate::api::AppState;
use crate::api::auth::{Caller, Need};
use crate::api::limiter::client_address;
use crate::store::{ConsoleSession, NewAuditRecord, PrincipalKind, SESSION_SECONDS, now};

/// The session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
const SESSION_COOKIE: &str = "__Host-latchkey-session";
/// The sign-in form's double-submit CSRF cookie.
const SIGN_IN_COOKIE: &str = "__Host-latchkey-sign-in";
/// The largest form the guard reads to find its CSRF token.
const MAX_FORM: usize = 1024 * 1024;

/// The signed-in principal and its session, for console handlers. Extracting it from a request
/// without a live session sends the browser to sign in.
#[derive(Debug, Clone)]
pub struct Console {
    pub session: ConsoleSession,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, WebError> {
        parts
            .extensions
            .get::<Console>()
            .cloned()
            .ok_or_else(|| WebError::SignIn {
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/console".into()),
            })
    }
}

impl Console {
    pub fn principal(&self) -> &crate::store::Principal {
        &self.session.principal
    }

    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }

    pub fn is_operator(&self) -> bool {
        matches!(self.principal().kind, PrincipalKind::Operator)
    }

    /// Whether the principal may do what `need` names on `tenant`.
    pub fn can(&self, tenant: &str, need: Need) -> bool {
        Caller(self.principal().clone())
            .require(tenant, need)
            .is_ok()
    }

    /// Refuses with the API's own answer (404 for another tenant, 403 naming the role needed).
    pub fn require(&self, tenant: &str, need: Need) -> WebResult<()> {
        Caller(self.principal().clone())
            .require(tenant, need)
            .map_err(|error| {
                let status = error.status;
                if status == StatusCode::NOT_FOUND {
                    WebError::not_found("tenant")
                } else {
                    WebError::page(
                        status,
                        "Not allowed",
                        format!(
                            "This page {}. Ask an owner of this tenant if you need it.",
                            error.detail.replacen("this ", "", 1)
                        ),
                    )
                }
            })
    }

    /// Calls the API in-process as this principal.
    pub async fn api(
        &self,
        state: &AppState,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> ApiReply {
        api(state, self.principal(), method, uri, body).await
    }

    /// GETs `uri` from the API, as the data of a page.
    pub async fn get(&self, state: &AppState, uri: &str) -> WebResult<Value> {
        self.api(state, Method::GET, uri, None)
            .await
            .into_page_data()
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<SecretString> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| SecretString::from(c.value().to_string()))
}

fn set_cookie(response: &mut Response, cookie: Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn secure_cookie(name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

fn tokens_match(provided: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(provided.as_bytes().ct_eq(expected.as_bytes()))
}

/// The CSRF token a request carries: the `x-csrf-token` header, or the `csrf` field of a
/// url-encoded form (the body is read and put back).
async fn provided_csrf(request: Request) -> Result<(Option<String>, Request), Response> {
    if let Some(value) = request.headers().get("x-csrf-token") {
        return Ok((value.to_str().ok().map(str::to_string), request));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, request));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        render::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large",
            "The console's forms are small; this one is over 1 MiB and was not read.",
        )
    })?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned());
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.contains_key("x-csrf-token")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json") || v.contains("event-stream"))
}

/// Resolves the session, checks the CSRF token of every state-changing request, and adds the
/// security headers to whatever is answered.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let session = match cookie_value(request.headers(), SESSION_COOKIE) {
        Some(value) => match state.store.console_session(&value, now()).await {
            Ok(session) => session,
            Err(error) => {
                let mut response = WebError::internal(error).into_response();
                security_headers(&mut response);
                return response;
            }
        },
        None => None,
    };
    if let Some(session) = &session {
        request.extensions_mut().insert(Console {
            session: session.clone(),
        });
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let signing_in = request.uri().path() == "/console/sign-in";
        let expected = match (&session, signing_in) {
            (Some(session), _) => Some(session.csrf.clone()),
            (None, true) => cookie_value(request.headers(), SIGN_IN_COOKIE)
                .map(|v| v.expose_secret().to_string()),
            (None, false) => None,
        };
        let json = wants_json(request.headers());
        let Some(expected) = expected else {
            let mut response = if json {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(
                        json!({"detail": "your sign-in ended: reload the page and sign in again"}),
                    ),
                )
                    .into_response()
            } else {
                Redirect::to("/console/sign-in").into_response()
            };
            security_headers(&mut response);
            return response;
        };
        let (provided, rebuilt) = match provided_csrf(request).await {
            Ok(found) => found,
            Err(mut response) => {
                security_headers(&mut response);
                return response;
            }
        };
        request = rebuilt;
        if !provided.is_some_and(|p| tokens_match(&p, &expected)) {
            tracing::warn!(
                path = request.uri().path(),
                "refused a console request without a valid CSRF token"
            );
            let message = "This request did not come from a page of this console (its CSRF \
                           token is missing or wrong), so nothing was changed. Reload the page \
                           and try again.";
            let mut response = if json {
                (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"detail": message})),
                )
                    .into_response()
            } else {
                render::error_page(StatusCode::FORBIDDEN, "Refused", message)
            };
            security_headers(&mut response);
            return response;
        }
    }
    let mut response = next.run(request).await;
    security_headers(&mut response);
    response
}

/// Where a principal starts: its tenant's employees, or an operator's tenant list.
fn start_page(console: &Console) -> String {
    match &console.principal().kind {
        PrincipalKind::Operator => "/console/tenants".into(),
        PrincipalKind::Admin { tenant_id, .. } => format!("/console/t/{tenant_id}/employees"),
    }
}

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    #[serde(default)]
    signed_in: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// `/console`: the start page when signed in, otherwise the sign-in page.
pub async fn home(console: Option<Console>, Query(query): Query<HomeQuery>) -> Response {
    match console {
        Some(console) => Redirect::to(&start_page(&console)).into_response(),
        None if query.signed_in.is_some() => sign_in_form(
            StatusCode::OK,
            None,
            Some(
                "Your browser did not keep the sign-in cookie. The console's cookie is Secure: \
                 open the console over HTTPS (or on localhost), and allow cookies for it.",
            ),
        ),
        None => Redirect::to("/console/sign-in").into_response(),
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Console {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Console>().cloned())
    }
}

/// A safe place to go after signing in: a console path, never another site.
fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?;
    (next.starts_with("/console") && !next.starts_with("//") && !next.contains('\\'))
        .then(|| next.to_string())
}

fn sign_in_form(status: StatusCode, next: Option<&str>, error: Option<&str>) -> Response {
    let csrf = crate::store::random_token_text();
    let mut response = render::standalone(
        status,
        "sign_in.html",
        json!({"csrf": csrf.as_str(), "next": next, "error": error}),
    );
    set_cookie(
        &mut response,
        secure_cookie(SIGN_IN_COOKIE, csrf.as_str().to_string(), 3600),
    );
    response
}

/// `GET /console/sign-in`.
pub async fn sign_in_page(console: Option<Console>, Query(query): Query<HomeQuery>) -> Response {
    if let Some(console) = console {
        return Redirect::to(&start_page(&console)).into_response();
    }
    sign_in_form(
        StatusCode::OK,
        safe_next(query.next.as_deref()).as_deref(),
        None,
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /console/sign-in`: the token becomes a session (the guard has checked the form's
/// CSRF token against the sign-in cookie).
pub async fn sign_in(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    let token = SecretString::from(form.token);
    let next = safe_next(form.next.as_deref());
    let client = client_address(&extensions);
    if let Err(seconds) = state.auth_limiter.check(client, Instant::now()) {
        return sign_in_form(
            StatusCode::TOO_MANY_REQUESTS,
            next.as_deref(),
            Some(&format!(
                "Too many sign-ins from your address failed. Wait {} minutes, then try again \
                 with the right token.",
                seconds.div_ceil(60)
            )),
        );
    }
    let principal = match state.store.authenticate(&token).await {
        Ok(Some(principal)) => {
            state.auth_limiter.succeeded(client);
            principal
        }
        Ok(None) => {
            tracing::info!(%client, "refused a console sign-in with an unknown or revoked token");
            state.auth_limiter.failed(client, Instant::now());
            return sign_in_form(
                StatusCode::UNAUTHORIZED,
                next.as_deref(),
                Some(
                    "That token is not valid, or it was revoked. Paste the whole token your \
                     operator or owner gave you (it starts with lk_).",
                ),
            );
        }
        Err(error) => return WebError::internal(error).into_response(),
    };
    let at = now();
    let (value, session) = match state.store.create_console_session(&principal, at).await {
        Ok(created) => created,
        Err(error) => return WebError::internal(error).into_response(),
    };
    let tenant = match &principal.kind {
        PrincipalKind::Admin { tenant_id, .. } => Some(tenant_id.as_str()),
        PrincipalKind::Operator => None,
    };
    let record = NewAuditRecord::new(
        tenant,
        &principal.id,
        "console.sign-in",
        None,
        json!({"expires_at": session.expires_at}),
    );
    if let Err(error) = state.store.append_audit(record, at).await {
        tracing::error!(%error, "writing the sign-in audit record failed");
    }
    let to = next.unwrap_or_else(|| "/console?signed_in=1".to_string());
    let mut response = Redirect::to(&to).into_response();
    set_cookie(
        &mut response,
        secure_cookie(
            SESSION_COOKIE,
            value.expose_secret().to_string(),
            SESSION_SECONDS,
        ),
    );
    set_cookie(
        &mut response,
        secure_cookie(SIGN_IN_COOKIE, String::new(), 0),
    );
    response
}

/// `POST /console/sign-out`: ends the session here and in the database.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(value) = cookie_value(&headers, SESSION_COOKIE)
        && let Err(error) = state.store.end_console_session(&value).await
    {
        return WebError::internal(error).into_response();
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    set_cookie(
        &mut response,
        secure_cookie(SESSION_COOKIE, String::new(), 0),
    );
    response
}

/// `GET /console/tenants`: the tenants the principal may open (an operator's tenant switch).
pub async fn tenants(State(state): State<AppState>, console: Console) -> WebResult<Response> {
    tenants_page(&state, &console, None).await
}

async fn tenants_page(
    state: &AppState,
    console: &Console,
    error: Option<String>,
) -> WebResult<Response> {
    let mut data = console.get(state, "/api/v1/tenants").await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    data["error"] = json!(error);
    render::page_with_status(
        status,
        state,
        console,
        None,
        "tenants",
        "tenants.html",
        data,
    )
    .await
}

#[derive(Deserialize)]
pub struct NewTenantForm {
    name: String,
}

/// `POST /console/tenants`: an operator creates a tenant and opens it.
pub async fn create_tenant(
    State(state): State<AppState>,
    console: Console,
    axum::Form(form): axum::Form<NewTenantForm>,
) -> WebResult<Response> {
    let reply = console
        .api(
            &state,
            Method::POST,
            "/api/v1/tenants",
            Some(&json!({"name": form.name.trim()})),
        )
        .await;
    if reply.is_success() {
        let id = reply.body["id"].as_str().unwrap_or_default();
        return Ok(Redirect::to(&format!("/console/t/{id}/employees")).into_response());
    }
    if let Some(refusal) = reply.refusal() {
        return Err(refusal);
    }
    tenants_page(&state, &console, Some(reply.detail())).await
}
