//! The HTTP API. For now the operations endpoints: `/healthz` (the process answers) and
//! `/readyz` (plugins are loaded, with what was loaded).
//!
//! Only `api` and `web` speak HTTP to users. Errors never show internals.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::runtime::PluginRegistry;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<PluginRegistry>,
}

/// The router, without a socket: tests call it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .registry
        .list()
        .iter()
        .map(|p| json!({"id": p.manifest().id, "version": p.manifest().version.to_string()}))
        .collect();
    Json(json!({"status": "ready", "plugins": plugins}))
}
