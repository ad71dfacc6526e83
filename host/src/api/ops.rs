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
    // Request bodies are JSON Schemas (draft 2020-12, OpenAPI 3.1's own) derived from the
    // handlers' structs; the types they share go to components/schemas.
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas/".into())
        .into_generator();
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        item[route.method.to_lowercase()] = operation(route, &mut generator);
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Problem".into(), problem_schema());
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
            "schemas": schemas,
        }
    })
}

/// RFC 9457 problem details, as every error is answered.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"},
            "errors": {"type": "array"}, "violations": {"type": "array"},
            "precondition": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"]
    })
}

fn operation(route: &RouteDoc, generator: &mut schemars::SchemaGenerator) -> Value {
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
            route.success.to_string(): {"description": "success",
                                        "content": {route.content_type: {}}},
            "4XX": problem.clone(),
            "5XX": problem,
        },
        "x-latchkey-access": route.access.as_str(),
    });
    if route.access != super::Access::Public {
        op["security"] = json!([{"bearer": []}]);
    }
    if let Some(body) = route.body {
        op["requestBody"] = json!({
            "required": !route.body_optional,
            "content": {"application/json": {"schema": body(generator)}},
        });
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A validator for the request body of `method path`, resolving its references in the
    /// document's components.
    fn body_validator(document: &Value, method: &str, path: &str) -> jsonschema::Validator {
        let body = &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        assert!(body.is_object(), "{method} {path} documents its body");
        let mut schema = body.clone();
        schema["components"] = document["components"].clone();
        jsonschema::draft202012::new(&schema).expect("a valid JSON Schema")
    }

    #[test]
    fn every_body_a_handler_reads_is_documented_as_the_handler_reads_it() {
        let document = openapi_document();
        // Routes without a body: the ones that act on the path alone.
        for route in ROUTES {
            let documented = document["paths"][route.path][route.method.to_lowercase()]
                .get("requestBody")
                .is_some();
            assert_eq!(
                documented,
                route.body.is_some(),
                "{} {}",
                route.method,
                route.path
            );
        }
        let tenant = body_validator(&document, "post", "/api/v1/tenants");
        assert!(tenant.is_valid(&json!({"name": "acme"})));
        assert!(!tenant.is_valid(&json!({})), "name is required");
        assert!(
            !tenant.is_valid(&json!({"name": "  "})),
            "a blank name is refused"
        );
        assert!(
            !tenant.is_valid(&json!({"name": "acme", "x": 1})),
            "unknown fields refused"
        );

        let password = body_validator(
            &document,
            "post",
            "/api/v1/tenants/{tenant}/employees/{employee}/password",
        );
        assert!(password.is_valid(&json!({"mode": "generate", "unlock": true})));
        assert!(password.is_valid(&json!({"mode": "manual", "password": "a", "confirm": "a"})));
        assert!(
            !password.is_valid(&json!({"mode": "guess"})),
            "mode is one of two"
        );
        assert!(
            !password.is_valid(&json!({"mode": "manual", "password": "a", "confirm": "a",
                                       "length": 12})),
            "only the generate mode takes a length"
        );
        assert!(password.is_valid(&json!({"mode": "generate", "length": 24})));
        assert!(
            !password.is_valid(&json!({"mode": "generate", "password": "a"})),
            "the generate mode takes no password"
        );
        assert!(
            !password.is_valid(&json!({"mode": "manual", "password": "a"})),
            "the manual mode takes it twice"
        );

        let admin = body_validator(&document, "post", "/api/v1/tenants/{tenant}/admins");
        assert!(admin.is_valid(&json!({"name": "Ann", "role": "helpdesk"})));
        assert!(!admin.is_valid(&json!({"name": "Ann", "role": "root"})));

        let key = body_validator(&document, "patch", "/api/v1/tenants/{tenant}/keys/{id}");
        assert!(!key.is_valid(&json!({"status": "lost"})));
        assert!(key.is_valid(&json!({"status": "suspended", "employee": null})));

        let acks = body_validator(&document, "post", "/api/v1/client/keys/{key}/acks");
        assert!(acks.is_valid(&json!({"acks": [{"delivery": "d", "ack": "a"}]})));
        assert!(!acks.is_valid(&json!({"acks": [{"delivery": "d"}]})));

        let codes = &document["paths"]["/api/v1/tenants/{tenant}/enrollment-codes"]["post"];
        assert_eq!(
            codes["requestBody"]["required"], false,
            "an empty body is allowed"
        );
        let code = body_validator(
            &document,
            "post",
            "/api/v1/tenants/{tenant}/enrollment-codes",
        );
        assert!(code.is_valid(&json!({"valid_seconds": 3600})));
        assert!(
            !code.is_valid(&json!({"valid_seconds": 59})),
            "the handler's own bounds"
        );
        assert_eq!(
            document["paths"]["/api/v1/tenants"]["post"]["requestBody"]["required"],
            true
        );
        let metrics = &document["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(
            metrics
                .get("application/openmetrics-text; version=1.0.0")
                .is_some(),
            "{metrics}"
        );
    }
}
