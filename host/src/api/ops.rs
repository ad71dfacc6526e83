//! Operations: `/healthz` (the process answers), `/readyz` (the database answers and plugins
//! are loaded), `/metrics` (Prometheus text), `/api/v1/openapi.json` (generated from the route
//! table), and the middleware that counts and times every request.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::{AppState, ROUTES, RouteDoc};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    changes: Family<OutcomeLabels, Counter>,
    acks: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("latchkey");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let changes = Family::<OutcomeLabels, Counter>::default();
        let acks = Family::<OutcomeLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (long polls included)",
            durations.clone(),
        );
        registry.register(
            "password_changes",
            "Password change requests by outcome",
            changes.clone(),
        );
        registry.register("delivery_acks", "Key acks by outcome", acks.clone());
        Arc::new(Metrics {
            registry,
            requests,
            durations,
            changes,
            acks,
        })
    }

    pub fn change(&self, outcome: &str) {
        self.changes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn ack(&self, outcome: &str) {
        self.acks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Counts and times every request by method, matched route (never the raw path: ids would
/// make unbounded label sets) and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let plugins: Vec<Value> = state
        .connectors
        .registry()
        .list()
        .iter()
        .map(|p| json!({"id": p.manifest().id, "version": p.manifest().version.to_string()}))
        .collect();
    match state.store.operator_count().await {
        Ok(_) => Json(json!({"status": "ready", "plugins": plugins})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "the database does not answer"})),
            )
                .into_response()
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 document, one operation per entry of the route table.
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        item[route.method.to_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Latchkey",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Reset a domain password, set it in every directory, deliver it to \
                            the user's hardware key. Errors are RFC 9457 problem+json.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An operator's, admin's or workstation's token"}
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer"}, "detail": {"type": "string"},
                        "errors": {"type": "array"}, "violations": {"type": "array"},
                        "precondition": {"type": "string"},
                    },
                    "required": ["type", "title", "status", "detail"]
                }
            }
        }
    })
}

fn operation(route: &RouteDoc) -> Value {
    let parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let problem = json!({"description": "problem+json",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut op = json!({
        "summary": route.summary,
        "operationId": format!("{}_{}", route.method.to_lowercase(),
            route.path.trim_start_matches('/').replace(['/', '{', '}', '-'], "_")),
        "parameters": parameters,
        "responses": {
            route.success.to_string(): {"description": "success", "content": {"application/json": {}}},
            "4XX": problem.clone(),
            "5XX": problem,
        },
        "x-latchkey-access": route.access.as_str(),
    });
    if route.access != super::Access::Public {
        op["security"] = json!([{"bearer": []}]);
    }
    if matches!(route.method, "POST" | "PATCH") {
        op["requestBody"] =
            json!({"content": {"application/json": {"schema": {"type": "object"}}}});
    }
    op
}
