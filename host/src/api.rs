//! The HTTP API (DESIGN: "The HTTP API"): the operator and admin API under
//! `/api/v1/tenants`, the workstation client API under `/api/v1/client`, and operations
//! (`/healthz`, `/readyz`, `/metrics`, `/api/v1/openapi.json`). Every error is problem+json
//! (`error`); every response carries an `x-request-id`; every request is counted and timed.
//!
//! `ROUTES` lists every route with who may call it; the OpenAPI document and the tenant
//! isolation tests are generated from it, and a test checks the router serves exactly it.
//!
//! Only `api` and `web` speak HTTP to users. Errors never show internals.

pub mod admin;
pub mod auth;
pub mod client;
mod config_check;
pub mod error;
pub mod limiter;
pub mod ops;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderName;
use axum::routing::{get, patch, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::delivery::Waker;
use crate::store::Store;
use crate::workflow::{Connectors, Workflow};

pub use ops::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub connectors: Arc<Connectors>,
    pub workflow: Workflow,
    pub waker: Arc<Waker>,
    pub metrics: Arc<Metrics>,
    /// How long a pulled delivery stays leased to its workstation, seconds.
    pub lease_seconds: i64,
    /// Failed authentications by client address (brute-force protection).
    pub auth_limiter: Arc<limiter::AuthLimiter>,
}

impl AppState {
    /// The state for `store` and the plugins of `registry`.
    pub fn new(store: Store, registry: Arc<crate::runtime::PluginRegistry>) -> AppState {
        let connectors = Arc::new(Connectors::new(store.clone(), registry));
        let waker = Waker::new();
        waker.listen(&store);
        AppState {
            workflow: Workflow {
                store: store.clone(),
                connectors: connectors.clone(),
                waker: waker.clone(),
            },
            store,
            connectors,
            waker,
            metrics: Metrics::new(),
            lease_seconds: 60,
            auth_limiter: Arc::new(limiter::AuthLimiter::new(Default::default())),
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (operations, enrolment with a code).
    Public,
    /// An operator.
    Operator,
    /// An operator, or an admin of the path's tenant with at least this role.
    Tenant(auth::Need),
    /// A workstation's token.
    Workstation,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Operator => "operator",
            Access::Tenant(need) => need.as_str(),
            Access::Workstation => "workstation",
        }
    }
}

/// One route, for the OpenAPI document and the generated tests.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    /// The status of success.
    pub success: u16,
    pub summary: &'static str,
    /// The JSON body it takes, as a JSON Schema of the struct its handler deserializes.
    pub body: Option<BodySchema>,
    /// Whether the body may be left out (its fields all have defaults).
    pub body_optional: bool,
    /// The media type of a successful answer.
    pub content_type: &'static str,
}

/// Writes a request body's JSON Schema (its named parts go to the generator's definitions).
pub type BodySchema = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The [`BodySchema`] of `T`.
fn schema<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

impl RouteDoc {
    /// This route with a JSON body deserialized as `T`.
    const fn body(mut self, body: BodySchema) -> RouteDoc {
        self.body = Some(body);
        self
    }

    /// This route with a JSON body deserialized as `T` that may be left out.
    const fn optional_body(mut self, body: BodySchema) -> RouteDoc {
        self.body = Some(body);
        self.body_optional = true;
        self
    }

    /// This route answering `content_type` instead of JSON.
    const fn answers(mut self, content_type: &'static str) -> RouteDoc {
        self.content_type = content_type;
        self
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    success: u16,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        access,
        success,
        summary,
        body: None,
        body_optional: false,
        content_type: "application/json",
    }
}

use auth::Need::{Manage, Owner, Read, Reset};

/// Every route the API serves.
pub const ROUTES: &[RouteDoc] = &[
    route(
        "GET",
        "/healthz",
        Access::Public,
        200,
        "The process answers",
    ),
    route(
        "GET",
        "/readyz",
        Access::Public,
        200,
        "The database answers and plugins are loaded",
    ),
    route("GET", "/metrics", Access::Public, 200, "Prometheus metrics")
        .answers("application/openmetrics-text; version=1.0.0"),
    route(
        "GET",
        "/api/v1/openapi.json",
        Access::Public,
        200,
        "This document",
    ),
    route(
        "POST",
        "/api/v1/tenants",
        Access::Operator,
        201,
        "Create a tenant",
    )
    .body(schema::<admin::NewTenantBody>),
    route(
        "GET",
        "/api/v1/tenants",
        Access::Tenant(Read),
        200,
        "The tenants the caller may see",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/admins",
        Access::Tenant(Owner),
        201,
        "Create an admin; its token is shown once",
    )
    .body(schema::<admin::NewAdminBody>),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/admins",
        Access::Tenant(Manage),
        200,
        "The tenant's admins",
    ),
    route(
        "DELETE",
        "/api/v1/tenants/{tenant}/admins/{id}",
        Access::Tenant(Owner),
        204,
        "Revoke an admin",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/connectors",
        Access::Tenant(Manage),
        201,
        "Add a connector (secrets are write-only)",
    )
    .body(schema::<admin::NewConnectorBody>),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/connectors",
        Access::Tenant(Read),
        200,
        "The tenant's connectors (secret names only)",
    ),
    route(
        "PATCH",
        "/api/v1/tenants/{tenant}/connectors/{id}",
        Access::Tenant(Manage),
        200,
        "Change a connector: role, order, config, enabled, grant, secrets",
    )
    .body(schema::<admin::ConnectorPatch>),
    route(
        "DELETE",
        "/api/v1/tenants/{tenant}/connectors/{id}",
        Access::Tenant(Manage),
        204,
        "Remove a connector",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/connectors/{id}/test",
        Access::Tenant(Manage),
        200,
        "Test the connection and the service account's rights",
    ),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/employees",
        Access::Tenant(Read),
        200,
        "Search employees (?q=)",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/employees",
        Access::Tenant(Manage),
        201,
        "Add an employee by account (username, UPN or id)",
    )
    .body(schema::<admin::NewEmployeeBody>),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/employees/import",
        Access::Tenant(Manage),
        200,
        "Import a connector's accounts as employees",
    )
    .body(schema::<admin::ImportBody>),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/employees/{employee}",
        Access::Tenant(Read),
        200,
        "An employee with keys and recent changes",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/employees/{employee}/password/check",
        Access::Tenant(Reset),
        200,
        "Check a candidate against every connector's policy and the history",
    )
    .body(schema::<admin::CheckBody>),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/employees/{employee}/password",
        Access::Tenant(Reset),
        202,
        "Reset the password (manual or generate); never answers with it",
    )
    .body(schema::<admin::PasswordBody>),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/password-changes",
        Access::Tenant(Read),
        200,
        "Recent password changes (?employee=)",
    ),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/password-changes/{id}",
        Access::Tenant(Read),
        200,
        "A change: state, each connector's outcome, the delivery's state",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/keys",
        Access::Tenant(Manage),
        201,
        "Register a hardware key (status ready)",
    )
    .body(schema::<admin::NewKeyBody>),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/keys",
        Access::Tenant(Read),
        200,
        "The tenant's keys",
    ),
    route(
        "PATCH",
        "/api/v1/tenants/{tenant}/keys/{id}",
        Access::Tenant(Manage),
        200,
        "Change a key's status or employee",
    )
    .body(schema::<admin::KeyPatch>),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/enrollment-codes",
        Access::Tenant(Manage),
        201,
        "A one-time code a workstation enrolls with",
    )
    .optional_body(schema::<admin::NewCodeBody>),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/workstations",
        Access::Tenant(Read),
        200,
        "The tenant's workstations",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/workstations/{id}/approve",
        Access::Tenant(Manage),
        200,
        "Approve a workstation",
    ),
    route(
        "POST",
        "/api/v1/tenants/{tenant}/workstations/{id}/revoke",
        Access::Tenant(Manage),
        200,
        "Revoke a workstation",
    ),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/audit",
        Access::Tenant(Read),
        200,
        "Audit records (?after=&limit=&action=)",
    ),
    route(
        "GET",
        "/api/v1/tenants/{tenant}/audit/verify",
        Access::Tenant(Read),
        200,
        "Verify the audit hash chain",
    ),
    route(
        "POST",
        "/api/v1/client/enroll",
        Access::Public,
        201,
        "Enroll a workstation with a code",
    )
    .body(schema::<client::EnrollBody>),
    route(
        "GET",
        "/api/v1/client/me",
        Access::Workstation,
        200,
        "This workstation and its status",
    ),
    route(
        "GET",
        "/api/v1/client/keys/{key}/deliveries",
        Access::Workstation,
        200,
        "Lease a key's due deliveries (?wait=SECONDS long poll)",
    ),
    route(
        "POST",
        "/api/v1/client/keys/{key}/acks",
        Access::Workstation,
        200,
        "Post the key's signed ack of a delivery",
    )
    .body(schema::<client::AckBody>),
    route(
        "POST",
        "/api/v1/client/keys/{key}/password-change",
        Access::Workstation,
        202,
        "The user changes their own password",
    )
    .body(schema::<client::UserChangeBody>),
];

/// The router, without a socket: tests call it directly. It serves the API and the admin
/// console (`web`).
pub fn app(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    routes()
        .merge(crate::web::routes(state.clone()))
        // axum's own 405 has an empty body; every error here is problem+json (found by the
        // `api_request` fuzz target). Set after the merge: it applies to the routes present.
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this path does not take this method; the Allow header lists those it takes",
            )
        })
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The API's routes alone, without layers: what `app` serves under `/api/v1` and operations,
/// and what the console calls in-process.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route(
            "/api/v1/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route(
            "/api/v1/tenants/{tenant}/admins",
            post(admin::create_admin).get(admin::list_admins),
        )
        .route(
            "/api/v1/tenants/{tenant}/admins/{id}",
            axum::routing::delete(admin::revoke_admin),
        )
        .route(
            "/api/v1/tenants/{tenant}/connectors",
            post(admin::create_connector).get(admin::list_connectors),
        )
        .route(
            "/api/v1/tenants/{tenant}/connectors/{id}",
            patch(admin::update_connector).delete(admin::delete_connector),
        )
        .route(
            "/api/v1/tenants/{tenant}/connectors/{id}/test",
            post(admin::test_connector),
        )
        .route(
            "/api/v1/tenants/{tenant}/employees",
            get(admin::list_employees).post(admin::create_employee),
        )
        .route(
            "/api/v1/tenants/{tenant}/employees/import",
            post(admin::import_employees),
        )
        .route(
            "/api/v1/tenants/{tenant}/employees/{employee}",
            get(admin::get_employee),
        )
        .route(
            "/api/v1/tenants/{tenant}/employees/{employee}/password/check",
            post(admin::check_password),
        )
        .route(
            "/api/v1/tenants/{tenant}/employees/{employee}/password",
            post(admin::set_password),
        )
        .route(
            "/api/v1/tenants/{tenant}/password-changes",
            get(admin::list_changes),
        )
        .route(
            "/api/v1/tenants/{tenant}/password-changes/{id}",
            get(admin::get_change),
        )
        .route(
            "/api/v1/tenants/{tenant}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route(
            "/api/v1/tenants/{tenant}/keys/{id}",
            patch(admin::update_key),
        )
        .route(
            "/api/v1/tenants/{tenant}/enrollment-codes",
            post(admin::create_enrollment_code),
        )
        .route(
            "/api/v1/tenants/{tenant}/workstations",
            get(admin::list_workstations),
        )
        .route(
            "/api/v1/tenants/{tenant}/workstations/{id}/approve",
            post(admin::approve_workstation),
        )
        .route(
            "/api/v1/tenants/{tenant}/workstations/{id}/revoke",
            post(admin::revoke_workstation),
        )
        .route("/api/v1/tenants/{tenant}/audit", get(admin::list_audit))
        .route(
            "/api/v1/tenants/{tenant}/audit/verify",
            get(admin::verify_audit),
        )
        .route("/api/v1/client/enroll", post(client::enroll))
        .route("/api/v1/client/me", get(client::me))
        .route(
            "/api/v1/client/keys/{key}/deliveries",
            get(client::deliveries),
        )
        .route("/api/v1/client/keys/{key}/acks", post(client::ack))
        .route(
            "/api/v1/client/keys/{key}/password-change",
            post(client::password_change),
        )
}
