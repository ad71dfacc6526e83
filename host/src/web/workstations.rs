//! The Workstations page: the machines keys connect through, approving and revoking them, and
//! issuing an enrolment code.
//!
//! Every read and change is the API's. An enrolment code is shown once, on the answer to the
//! POST that asked for it (never in a URL, a redirect, a later page or the log), beside the
//! command that uses it with this server's address.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebResult;
use super::keys::refused_form;
use super::render;
use super::session::Console;
use crate::api::AppState;
use crate::api::auth::Need;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/t/{tenant}/workstations", get(list))
        .route(
            "/console/t/{tenant}/workstations/{workstation}/approve",
            post(approve),
        )
        .route(
            "/console/t/{tenant}/workstations/{workstation}/revoke",
            post(revoke),
        )
        .route("/console/t/{tenant}/enrollment-codes", post(new_code))
}

/// The hours a code is valid by default, and at most (the API's limits: a minute to 30 days).
const DEFAULT_HOURS: i64 = 24;
const MAX_HOURS: i64 = 30 * 24;

/// What a refused form shows again.
#[derive(Default)]
struct Refused {
    /// The API's words on a refused approve or revoke.
    error: Option<String>,
    /// The hours typed in the code form, and why they were refused.
    hours: Option<(String, String)>,
}

async fn workstations_page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    refused: Refused,
) -> WebResult<Response> {
    console.require(tenant, Need::Read)?;
    let mut data = console
        .get(state, &format!("/api/v1/tenants/{tenant}/workstations"))
        .await?;
    let status = if refused.error.is_some() || refused.hours.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    data["error"] = json!(refused.error);
    let (hours, hours_error) = refused.hours.unzip();
    data["hours"] = json!(hours.unwrap_or_else(|| DEFAULT_HOURS.to_string()));
    data["hours_error"] = json!(hours_error);
    data["max_hours"] = json!(MAX_HOURS);
    render::page_with_status(
        status,
        state,
        console,
        Some(tenant),
        "workstations",
        "workstations.html",
        data,
    )
    .await
}

/// `GET /console/t/{tenant}/workstations`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
) -> WebResult<Response> {
    workstations_page(&state, &console, &tenant, Refused::default()).await
}

async fn act(
    state: &AppState,
    console: &Console,
    tenant: &str,
    workstation: &str,
    action: &str,
) -> WebResult<Response> {
    console.require(tenant, Need::Manage)?;
    let reply = console
        .api(
            state,
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/workstations/{workstation}/{action}"),
            None,
        )
        .await;
    if reply.is_success() {
        return Ok(Redirect::to(&format!("/console/t/{tenant}/workstations")).into_response());
    }
    let reply = refused_form(reply)?;
    let refused = Refused {
        error: Some(format!(
            "The workstation was not changed: {}",
            reply.detail()
        )),
        ..Refused::default()
    };
    workstations_page(state, console, tenant, refused).await
}

/// `POST /console/t/{tenant}/workstations/{workstation}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, workstation)): Path<(String, String)>,
) -> WebResult<Response> {
    act(&state, &console, &tenant, &workstation, "approve").await
}

/// `POST /console/t/{tenant}/workstations/{workstation}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, workstation)): Path<(String, String)>,
) -> WebResult<Response> {
    act(&state, &console, &tenant, &workstation, "revoke").await
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    hours: String,
}

/// This server's address as the browser reached it: the Host header, over HTTPS unless it is a
/// loopback address (the console's Secure cookie works over plain HTTP only there) or a proxy
/// says otherwise.
fn server_url(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !valid {
        return None;
    }
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| matches!(*v, "http" | "https"));
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let loopback = name == "localhost" || name.starts_with("127.") || name == "[::1]";
    let scheme = forwarded.unwrap_or(if loopback { "http" } else { "https" });
    Some(format!("{scheme}://{host}"))
}

/// `POST /console/t/{tenant}/enrollment-codes`: a new code, shown on this answer only.
pub async fn new_code(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CodeForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let typed = form.hours.trim();
    let hours = if typed.is_empty() {
        Ok(DEFAULT_HOURS)
    } else {
        typed
            .parse::<i64>()
            .ok()
            .filter(|h| (1..=MAX_HOURS).contains(h))
            .ok_or_else(|| format!("Type a whole number of hours from 1 to {MAX_HOURS}."))
    };
    let hours = match hours {
        Ok(hours) => hours,
        Err(message) => {
            let refused = Refused {
                hours: Some((typed.to_string(), message)),
                ..Refused::default()
            };
            return workstations_page(&state, &console, &tenant, refused).await;
        }
    };
    let reply = console
        .api(
            &state,
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/enrollment-codes"),
            Some(&json!({"valid_seconds": hours * 3600})),
        )
        .await;
    if !reply.is_success() {
        let reply = refused_form(reply)?;
        let message = reply
            .field_error("valid_seconds")
            .unwrap_or_else(|| reply.detail());
        let refused = Refused {
            hours: Some((typed.to_string(), message)),
            ..Refused::default()
        };
        return workstations_page(&state, &console, &tenant, refused).await;
    }
    let code = reply.body["code"].as_str().unwrap_or_default();
    let data: Value = json!({
        "code": code,
        "expires_at": reply.body["expires_at"],
        "hours": hours,
        "server_url": server_url(&headers),
    });
    render::page(
        &state,
        &console,
        Some(&tenant),
        "workstations",
        "enrollment_code.html",
        data,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, proto: Option<&str>) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(proto) = proto {
            headers.insert("x-forwarded-proto", proto.parse().unwrap());
        }
        server_url(&headers)
    }

    #[test]
    fn the_server_url_comes_from_the_host_header() {
        assert_eq!(
            url("127.0.0.1:8080", None).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(url("localhost", None).unwrap(), "http://localhost");
        assert_eq!(url("[::1]:9", None).unwrap(), "http://[::1]:9");
        assert_eq!(
            url("keys.example.com", None).unwrap(),
            "https://keys.example.com"
        );
        assert_eq!(
            url("10.0.0.5:80", Some("http")).unwrap(),
            "http://10.0.0.5:80"
        );
        assert_eq!(url("a.test", Some("gopher")).unwrap(), "https://a.test");
        assert_eq!(url("evil.test/\"x", None), None);
    }
}
