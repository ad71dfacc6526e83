//! The Keys page: the tenant's hardware keys, their status and the employee each belongs to;
//! for admins, changing a key's status or assignment and registering a key.
//!
//! Every read and change is the API's (`/api/v1/tenants/{t}/keys`), so the status rules (a
//! compromised key stays so, taking a key out of service fails its queued deliveries) and the
//! audit are the store's and the API's own; a refused change is shown with the API's words on
//! the page again. It never changes a field the admin did not change: a form that only moves
//! the status does not re-assign the key.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::ApiReply;
use super::render;
use super::session::Console;
use super::{WebError, WebResult};
use crate::api::AppState;
use crate::api::auth::Need;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/t/{tenant}/keys", post(register).get(list))
        .route("/console/t/{tenant}/keys/{key}", post(update))
}

/// Every status, with what it means for the passwords sealed to the key and their deliveries
/// (the rules of `store::keys`).
const STATUSES: [(&str, &str); 7] = [
    (
        "ready",
        "New and unused: passwords may be sealed to it, nothing is delivered yet.",
    ),
    (
        "reserved",
        "Set aside for someone: passwords may be sealed to it, nothing is delivered yet.",
    ),
    (
        "active",
        "In use: new passwords are sealed to it and delivered to its workstation.",
    ),
    (
        "locked",
        "Held for now: no new password; queued deliveries wait until it is active again.",
    ),
    (
        "suspended",
        "Paused: no new password; queued deliveries wait until it is active again.",
    ),
    (
        "deactivated",
        "Out of service: its queued deliveries fail and their sealed passwords are deleted.",
    ),
    (
        "compromised",
        "Lost or stolen: its queued deliveries fail and are deleted, and it can never change \
         status again.",
    ),
];

/// What a refused form shows again.
#[derive(Default)]
struct Refused {
    /// A key's change was refused: (key id, the API's words).
    key: Option<(String, String)>,
    /// The register form: its fields as typed (public keys only), its errors.
    register: Option<Value>,
}

async fn keys_page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    refused: Refused,
) -> WebResult<Response> {
    console.require(tenant, Need::Read)?;
    let keys = console
        .get(state, &format!("/api/v1/tenants/{tenant}/keys"))
        .await?;
    let employees = console
        .get(state, &format!("/api/v1/tenants/{tenant}/employees"))
        .await?;
    let employees = employees["employees"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let name_of = |id: &str| {
        employees.iter().find(|e| e["id"] == id).map(|e| {
            e["display_name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(e["username"].as_str())
                .unwrap_or(id)
                .to_string()
        })
    };
    let keys: Vec<Value> = keys["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut key| {
            if let Some(id) = key["employee"].as_str().map(str::to_string) {
                let name = name_of(&id).unwrap_or(id);
                key["employee_name"] = json!(name);
            }
            key
        })
        .collect();
    let choices: Vec<Value> = employees
        .iter()
        .map(|e| {
            let id = e["id"].as_str().unwrap_or_default();
            json!({"id": id, "name": name_of(id), "username": e["username"]})
        })
        .collect();
    let status = if refused.key.is_some() || refused.register.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (error_key, error) = refused.key.unzip();
    let data = json!({
        "keys": keys,
        "employees": choices,
        "statuses": STATUSES.iter().map(|(name, hint)| json!({"name": name, "hint": hint}))
            .collect::<Vec<_>>(),
        "key_error": error.map(|message| json!({"key": error_key, "message": message})),
        "register": refused.register,
    });
    render::page_with_status(
        status,
        state,
        console,
        Some(tenant),
        "keys",
        "keys.html",
        data,
    )
    .await
}

/// `GET /console/t/{tenant}/keys`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
) -> WebResult<Response> {
    keys_page(&state, &console, &tenant, Refused::default()).await
}

/// A 403 or 404 from the API is its error page; any other refusal is shown beside the form.
pub(super) fn refused_form(reply: ApiReply) -> Result<ApiReply, WebError> {
    match reply.status {
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => match reply.into_page_data() {
            Err(error) => Err(error),
            Ok(_) => Err(WebError::internal("a refusal became page data")),
        },
        _ => Ok(reply),
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    employee: String,
}

/// `POST /console/t/{tenant}/keys/{key}`: a key's status and assignment, changing only what
/// the admin changed (the status first, so a refused status leaves the assignment as it was).
pub async fn update(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, key)): Path<(String, String)>,
    axum::Form(form): axum::Form<KeyForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let keys = console
        .get(&state, &format!("/api/v1/tenants/{tenant}/keys"))
        .await?;
    let current = keys["keys"]
        .as_array()
        .and_then(|list| list.iter().find(|k| k["id"] == key.as_str()).cloned())
        .ok_or_else(|| WebError::not_found("key"))?;
    let uri = format!("/api/v1/tenants/{tenant}/keys/{key}");
    let wanted_employee = (!form.employee.is_empty()).then_some(form.employee.as_str());
    let mut changes = Vec::new();
    if !form.status.is_empty() && current["status"] != form.status.as_str() {
        changes.push(json!({"status": form.status}));
    }
    if current["employee"].as_str() != wanted_employee {
        changes.push(json!({"employee": wanted_employee}));
    }
    for change in changes {
        let reply = console
            .api(&state, Method::PATCH, &uri, Some(&change))
            .await;
        if reply.is_success() {
            continue;
        }
        let reply = refused_form(reply)?;
        let message = reply
            .field_error("status")
            .or_else(|| reply.field_error("employee"))
            .unwrap_or_else(|| reply.detail());
        let serial = current["serial"].as_str().unwrap_or(&key);
        let refused = Refused {
            key: Some((
                key.clone(),
                format!("Key {serial} was not changed: {message}"),
            )),
            ..Refused::default()
        };
        return keys_page(&state, &console, &tenant, refused).await;
    }
    Ok(Redirect::to(&format!("/console/t/{tenant}/keys")).into_response())
}

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    kem_public_key: String,
    #[serde(default)]
    sig_public_key: String,
}

/// `POST /console/t/{tenant}/keys`: register a key by its serial and public keys.
pub async fn register(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<RegisterForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let fields = json!({
        "serial": form.serial.trim(),
        "kem_public_key": form.kem_public_key.trim(),
        "sig_public_key": form.sig_public_key.trim(),
    });
    let mut errors = serde_json::Map::new();
    for field in ["serial", "kem_public_key", "sig_public_key"] {
        if fields[field].as_str().is_none_or(str::is_empty) {
            errors.insert(field.into(), json!("This is needed."));
        }
    }
    let mut error = None;
    if errors.is_empty() {
        let reply = console
            .api(
                &state,
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/keys"),
                Some(&fields),
            )
            .await;
        if reply.is_success() {
            return Ok(Redirect::to(&format!("/console/t/{tenant}/keys")).into_response());
        }
        let reply = refused_form(reply)?;
        for field in ["serial", "kem_public_key", "sig_public_key"] {
            if let Some(message) = reply.field_error(field) {
                errors.insert(field.into(), json!(message));
            }
        }
        if errors.is_empty() {
            error = Some(reply.detail());
        }
    }
    let refused = Refused {
        register: Some(json!({"fields": fields, "errors": errors, "error": error})),
        ..Refused::default()
    };
    keys_page(&state, &console, &tenant, refused).await
}
