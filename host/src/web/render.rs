//! Templates and assets: every console page is a minijinja template (in
//! `host/templates/console/`, compiled into the binary, HTML autoescaped) rendered from the JSON
//! the API answered plus the page frame (who is signed in, the tenant, the CSRF token, what the
//! role may open).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde_json::{Value, json};

use super::session::Console;
use super::{WebError, WebResult};
use crate::api::AppState;
use crate::api::auth::Need;
use crate::store::PrincipalKind;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/console/", $name)))),*]
    };
}

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = templates![
    "layout.html",
    "macros.html",
    "sign_in.html",
    "error.html",
    "tenants.html",
    "employees.html",
    "employee.html",
    "change.html",
    "change_status.html",
    "admins.html",
    "connectors.html",
    "keys.html",
    "workstations.html",
    "audit.html",
    "connector_form.html",
    "connector_diagnostics.html",
    "enrollment_code.html",
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            // A template that does not parse is a build mistake the tests catch at once.
            panic!("console template {name} does not parse: {error:#}");
        }
    }
    env.add_filter("time", format_time);
    env
});

/// Unix seconds as `2026-11-30 12:34 UTC` (empty for null).
fn format_time(value: minijinja::Value) -> String {
    let Some(seconds) = value.as_i64() else {
        return String::new();
    };
    match cookie::time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => seconds.to_string(),
    }
}

/// Renders `template` with `context`, or the error page when the template fails.
pub fn render(template: &str, context: &Value) -> Result<String, WebError> {
    ENVIRONMENT
        .get_template(template)
        .and_then(|t| t.render(context))
        .map_err(|error| WebError::internal(format!("template {template}: {error:#}")))
}

/// A page outside the signed-in frame (sign-in).
pub fn standalone(status: StatusCode, template: &str, context: Value) -> Response {
    match render(template, &context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The error page: what went wrong and what to do next.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let context = json!({"title": title, "message": message, "status": status.as_u16()});
    match render("error.html", &context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{title}: {message}")).into_response(),
    }
}

/// A signed-in page: `data` (usually what the API answered) plus the frame — `me`, `csrf`,
/// `tenant` (when the page is a tenant's), `can` (what the role may do there) and `active` (the
/// navigation entry to mark).
pub async fn page(
    state: &AppState,
    console: &Console,
    tenant: Option<&str>,
    active: &str,
    template: &str,
    data: Value,
) -> WebResult<Response> {
    let context = frame(state, console, tenant, active, data).await?;
    Ok(Html(render(template, &context)?).into_response())
}

/// Like [`page`], answered with `status` (a refused form is a 422 showing its errors, a
/// created admin a 201).
pub async fn page_with_status(
    status: StatusCode,
    state: &AppState,
    console: &Console,
    tenant: Option<&str>,
    active: &str,
    template: &str,
    data: Value,
) -> WebResult<Response> {
    let page = page(state, console, tenant, active, template, data).await?;
    Ok((status, page).into_response())
}

/// The context of a signed-in page (see [`page`]).
pub async fn frame(
    state: &AppState,
    console: &Console,
    tenant: Option<&str>,
    active: &str,
    data: Value,
) -> WebResult<Value> {
    let principal = console.principal();
    let (role, own_tenant) = match &principal.kind {
        PrincipalKind::Operator => ("operator", None),
        PrincipalKind::Admin { tenant_id, role } => (role.as_str(), Some(tenant_id.as_str())),
    };
    let tenant_json = match tenant {
        Some(id) => {
            console.require(id, Need::Read)?;
            let tenant = state
                .store
                .tenant(id)
                .await
                .map_err(|_| WebError::not_found("tenant"))?;
            json!({"id": tenant.id, "name": tenant.name})
        }
        None => Value::Null,
    };
    let can = |need| tenant.is_some_and(|t| console.can(t, need));
    let mut context = json!({
        "me": {"id": principal.id, "name": principal.name, "role": role,
               "operator": console.is_operator(), "tenant": own_tenant},
        "csrf": console.csrf(),
        "tenant": tenant_json,
        "can": {"read": can(Need::Read), "reset": can(Need::Reset),
                "manage": can(Need::Manage), "own": can(Need::Owner)},
        "active": active,
    });
    if let (Value::Object(into), Value::Object(from)) = (&mut context, data) {
        for (key, value) in from {
            into.entry(key).or_insert(value);
        }
    }
    Ok(context)
}

/// `GET /console/static/{file}`: the stylesheet and the script (no inline script or style is
/// allowed by the console's CSP).
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("../../templates/console/static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("../../templates/console/static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such file."),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
