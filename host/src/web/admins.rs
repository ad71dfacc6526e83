//! The tenant's admins: who may sign in and with which role. Admins and up see the list; an
//! owner (or an operator) adds an admin — whose token is shown once, on the page that answers
//! the form, and never again — or revokes one, which ends their sessions at once.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebResult;
use super::render;
use super::session::Console;
use crate::api::AppState;
use crate::api::auth::Need;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/t/{tenant}/admins", get(list).post(create))
        .route("/console/t/{tenant}/admins/{id}/revoke", post(revoke))
}

async fn page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    extra: Value,
    status: StatusCode,
) -> WebResult<Response> {
    console.require(tenant, Need::Manage)?;
    let mut data = console
        .get(state, &format!("/api/v1/tenants/{tenant}/admins"))
        .await?;
    if let (Value::Object(into), Value::Object(from)) = (&mut data, extra) {
        into.extend(from);
    }
    render::page_with_status(
        status,
        state,
        console,
        Some(tenant),
        "admins",
        "admins.html",
        data,
    )
    .await
}

/// `GET /console/t/{tenant}/admins`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
) -> WebResult<Response> {
    page(&state, &console, &tenant, json!({}), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct NewAdminForm {
    name: String,
    role: String,
}

/// `POST /console/t/{tenant}/admins`: the new admin's token, shown this once.
pub async fn create(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<NewAdminForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Owner)?;
    let reply = console
        .api(
            &state,
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/admins"),
            Some(&json!({"name": form.name.trim(), "role": form.role})),
        )
        .await;
    if reply.is_success() {
        let created = json!({
            "name": reply.body["name"], "role": reply.body["role"], "token": reply.body["token"],
        });
        return page(
            &state,
            &console,
            &tenant,
            json!({"created": created}),
            StatusCode::CREATED,
        )
        .await;
    }
    let error = json!({
        "name": reply.field_error("name"), "role": reply.field_error("role"),
        "other": (reply.field_error("name").is_none() && reply.field_error("role").is_none())
            .then(|| reply.detail()),
    });
    page(
        &state,
        &console,
        &tenant,
        json!({"error": error, "form": {"name": form.name, "role": form.role}}),
        reply.status,
    )
    .await
}

/// `POST /console/t/{tenant}/admins/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, id)): Path<(String, String)>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Owner)?;
    let reply = console
        .api(
            &state,
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/admins/{id}"),
            None,
        )
        .await;
    if reply.is_success() {
        return Ok(Redirect::to(&format!("/console/t/{tenant}/admins")).into_response());
    }
    Err(reply.page_error())
}
