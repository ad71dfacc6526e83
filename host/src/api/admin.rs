//! The admin API: tenants and admins (operators), connectors, employees, password checks and
//! resets, password changes, keys, enrolment codes, workstations and the audit log, each under
//! `/api/v1/tenants/{tenant}/…` and each checked against the caller's tenant and role.
//!
//! It owns turning requests into workflow and store calls and domain values into JSON. It must
//! never answer with a password, a token (except the one just issued, once) or a secret value.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemars::JsonSchema;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::{
    Body, Caller, ManageRole, OperatorCaller, OwnerRole, ReadRole, ResetRole, TenantAdmin,
};
use super::config_check::{config_problems, refuse_problems, secret_problems};
use super::error::{ApiError, ApiResult};
use crate::capabilities::Capability;
use crate::capabilities::secrets::Secrets;
use crate::runtime::wit::types::{AccountQuery, CheckStatus, MatchMode};
use crate::store::{
    AuditRecord, Connector, ConnectorRole, ConnectorUpdate, Delivery, Employee, Key, KeyStatus,
    NewAuditRecord, NewConnector, NewEmployee, NewKey, PasswordChange, Principal, PrincipalKind,
    Role, Tenant, Workstation, now,
};
use crate::workflow::describe;
use crate::workflow::{Candidate, ResetRequest};

// ---- JSON views -------------------------------------------------------------------------

fn tenant_json(t: &Tenant) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": t.created_at})
}

fn principal_json(p: &Principal) -> Value {
    match &p.kind {
        PrincipalKind::Operator => json!({"id": p.id, "name": p.name, "kind": "operator"}),
        PrincipalKind::Admin { tenant_id, role } => json!({
            "id": p.id, "name": p.name, "kind": "admin", "tenant": tenant_id,
            "role": role.as_str(), "created_at": p.created_at,
        }),
    }
}

fn connector_json(c: &Connector, secrets: &[String]) -> Value {
    json!({
        "id": c.id, "plugin": c.plugin, "role": c.role.as_str(), "position": c.position,
        "enabled": c.enabled, "config": c.config, "granted": c.granted,
        "secrets": secrets, "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

fn employee_json(e: &Employee) -> Value {
    json!({
        "id": e.id, "connector": e.connector_id, "account_id": e.account_id,
        "username": e.username, "display_name": e.display_name, "account": e.account,
        "created_at": e.created_at,
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key_json(k: &Key) -> Value {
    json!({
        "id": k.id, "serial": k.serial, "status": k.status.as_str(), "employee": k.employee_id,
        "kem_public_key": b64(&k.kem_public_key), "sig_public_key": b64(&k.sig_public_key),
        "created_at": k.created_at, "updated_at": k.updated_at,
    })
}

pub(super) fn workstation_json(w: &Workstation) -> Value {
    json!({
        "id": w.id, "name": w.name, "status": w.status.as_str(), "enrolled_at": w.enrolled_at,
        "approved_at": w.approved_at, "revoked_at": w.revoked_at,
    })
}

/// A delivery's state for people and clients (never its ciphertext).
pub(super) fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id, "key": d.key_id, "slot": d.slot, "state": d.state.as_str(),
        "sequence": d.sequence, "created_at": d.created_at, "released_at": d.released_at,
        "not_after": d.not_after, "lease_expires_at": d.lease_expires_at,
        "attempts": d.attempts, "finished_at": d.finished_at, "failure": d.failure,
    })
}

fn change_json(c: &PasswordChange, delivery: Option<&Delivery>) -> Value {
    json!({
        "id": c.id, "employee": c.employee_id, "key": c.key_id, "actor": c.actor,
        "mode": c.mode.as_str(), "options": c.options, "state": c.state.as_str(),
        "connectors": c.outcomes, "sync": crate::workflow::sync::summary(&c.outcomes),
        "failure": c.failure, "started_at": c.started_at,
        "updated_at": c.updated_at, "finished_at": c.finished_at,
        "delivery": delivery.map(delivery_json),
    })
}

fn audit_json(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq, "tenant": r.tenant_id, "actor": r.actor, "action": r.action,
        "subject": r.subject, "details": r.details, "at": r.at, "hash": r.hash,
    })
}

async fn audit(
    state: &AppState,
    tenant: Option<&str>,
    caller: &Caller,
    action: &str,
    subject: Option<&str>,
    details: Value,
) {
    let record = NewAuditRecord::new(tenant, caller.id(), action, subject, details);
    if let Err(error) = state.store.append_audit(record, now()).await {
        tracing::error!(%error, action, "writing the audit record failed");
    }
}

fn created(value: Value) -> impl IntoResponse {
    (StatusCode::CREATED, Json(value))
}

// ---- tenants and admins -----------------------------------------------------------------

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    #[schemars(regex(pattern = r"\S"))]
    name: String,
}

pub async fn create_tenant(
    State(state): State<AppState>,
    OperatorCaller(caller): OperatorCaller,
    Body(body): Body<NewTenantBody>,
) -> ApiResult<impl IntoResponse> {
    if body.name.trim().is_empty() {
        return Err(ApiError::field("name", "a tenant needs a name"));
    }
    let tenant = state.store.create_tenant(body.name.trim()).await?;
    state.store.tenant_signing_key(&tenant.id).await?;
    audit(
        &state,
        Some(&tenant.id),
        &caller,
        "tenant.create",
        Some(&tenant.id),
        json!({"name": tenant.name}),
    )
    .await;
    Ok(created(tenant_json(&tenant)))
}

pub async fn list_tenants(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let tenants = match &caller.0.kind {
        PrincipalKind::Operator => state.store.tenants().await?,
        PrincipalKind::Admin { tenant_id, .. } => vec![state.store.tenant(tenant_id).await?],
    };
    Ok(Json(
        json!({"tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdminBody {
    #[schemars(regex(pattern = r"\S"))]
    name: String,
    #[schemars(extend("enum" = ["owner", "admin", "helpdesk", "auditor"]))]
    role: String,
}

pub async fn create_admin(
    State(state): State<AppState>,
    caller: TenantAdmin<OwnerRole>,
    Path(tenant): Path<String>,
    Body(body): Body<NewAdminBody>,
) -> ApiResult<impl IntoResponse> {
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::field("role", "must be one of owner, admin, helpdesk, auditor"))?;
    if body.name.trim().is_empty() {
        return Err(ApiError::field("name", "an admin needs a name"));
    }
    let issued = state.store.create_admin(&tenant, &body.name, role).await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "admin.create",
        Some(&issued.value.id),
        json!({"name": body.name, "role": role.as_str()}),
    )
    .await;
    let mut value = principal_json(&issued.value);
    value["token"] = json!(issued.token.expose_secret());
    Ok(created(value))
}

pub async fn list_admins(
    State(state): State<AppState>,
    _: TenantAdmin<ManageRole>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    let admins = state.store.admins(&tenant).await?;
    Ok(Json(
        json!({"admins": admins.iter().map(principal_json).collect::<Vec<_>>()}),
    ))
}

pub async fn revoke_admin(
    State(state): State<AppState>,
    caller: TenantAdmin<OwnerRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.revoke_admin(&tenant, &id).await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "admin.revoke",
        Some(&id),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- connectors -------------------------------------------------------------------------

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnectorBody {
    plugin: String,
    #[schemars(extend("enum" = ["primary", "secondary"]))]
    role: String,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default)]
    secrets: Map<String, Value>,
    #[serde(default = "yes")]
    enabled: bool,
    /// Capabilities granted; by default what the plugin's manifest requests.
    #[serde(default)]
    granted: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

fn parse_role(text: &str) -> Result<ConnectorRole, ApiError> {
    ConnectorRole::parse(text)
        .ok_or_else(|| ApiError::field("role", "must be primary or secondary"))
}

fn parse_secrets(values: Map<String, Value>) -> Result<Secrets, ApiError> {
    let mut secrets = Secrets::new();
    for (name, value) in values {
        match value {
            Value::String(text) => secrets.insert(name, SecretString::from(text)),
            _ => {
                return Err(ApiError::field(
                    &format!("secrets.{name}"),
                    "must be a string",
                ));
            }
        }
    }
    Ok(secrets)
}

fn parse_grant(names: &[String]) -> Result<Vec<String>, ApiError> {
    for name in names {
        name.parse::<Capability>()
            .map_err(|e| ApiError::field("granted", e.to_string()))?;
    }
    Ok(names.to_vec())
}

pub async fn create_connector(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path(tenant): Path<String>,
    Body(body): Body<NewConnectorBody>,
) -> ApiResult<impl IntoResponse> {
    state.store.tenant(&tenant).await?;
    let role = parse_role(&body.role)?;
    let plugin = state
        .connectors
        .registry()
        .get(&body.plugin)
        .ok_or_else(|| {
            let installed: Vec<String> = state
                .connectors
                .registry()
                .list()
                .iter()
                .map(|p| p.manifest().id.to_string())
                .collect();
            ApiError::field(
                "plugin",
                format!(
                    "no plugin `{}` is installed (installed: {})",
                    body.plugin,
                    installed.join(", ")
                ),
            )
        })?;
    let granted = match &body.granted {
        Some(names) => parse_grant(names)?,
        None => plugin
            .manifest()
            .requested()
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
    };
    let mut problems = config_problems(&plugin, &body.config);
    problems.extend(secret_problems(&plugin, &body.secrets, true));
    refuse_problems(problems)?;
    let secrets = parse_secrets(body.secrets)?;
    let connector = state
        .store
        .create_connector(
            &tenant,
            NewConnector {
                plugin: body.plugin.clone(),
                role,
                config: body.config,
                enabled: body.enabled,
                granted,
            },
            &secrets,
        )
        .await?;
    let names: Vec<String> = secrets.names().map(str::to_string).collect();
    audit(
        &state,
        Some(&tenant),
        &caller,
        "connector.create",
        Some(&connector.id),
        json!({"plugin": connector.plugin, "role": connector.role.as_str(), "secrets": names}),
    )
    .await;
    Ok(created(connector_json(&connector, &names)))
}

pub async fn list_connectors(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    state.store.tenant(&tenant).await?;
    let mut list = Vec::new();
    for connector in state.store.connectors(&tenant).await? {
        let names = state
            .store
            .connector_secret_names(&tenant, &connector.id)
            .await?;
        list.push(connector_json(&connector, &names));
    }
    Ok(Json(json!({"connectors": list})))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPatch {
    #[schemars(extend("enum" = ["primary", "secondary", null]))]
    role: Option<String>,
    position: Option<i64>,
    config: Option<Map<String, Value>>,
    enabled: Option<bool>,
    granted: Option<Vec<String>>,
    /// Secrets to set (a string) or remove (null); the others stay.
    #[serde(default)]
    secrets: Map<String, Value>,
}

pub async fn update_connector(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path((tenant, id)): Path<(String, String)>,
    Body(body): Body<ConnectorPatch>,
) -> ApiResult<Json<Value>> {
    let existing = state.store.connector(&tenant, &id).await?;
    // A connector whose plugin is not installed (any more) cannot be checked; it is refused
    // where it is used.
    if let Some(plugin) = state.connectors.registry().get(&existing.plugin) {
        let mut problems = match &body.config {
            Some(config) => config_problems(&plugin, config),
            None => Vec::new(),
        };
        problems.extend(secret_problems(&plugin, &body.secrets, false));
        refuse_problems(problems)?;
    }
    let update = ConnectorUpdate {
        role: body.role.as_deref().map(parse_role).transpose()?,
        position: body.position,
        config: body.config,
        enabled: body.enabled,
        granted: body.granted.as_deref().map(parse_grant).transpose()?,
    };
    let mut changed_secrets = Vec::new();
    for (name, value) in body.secrets {
        match value {
            Value::String(text) => {
                state
                    .store
                    .set_connector_secret(&tenant, &id, &name, &SecretString::from(text))
                    .await?
            }
            Value::Null => {
                state
                    .store
                    .delete_connector_secret(&tenant, &id, &name)
                    .await?
            }
            _ => {
                return Err(ApiError::field(
                    &format!("secrets.{name}"),
                    "must be a string (to set) or null (to remove)",
                ));
            }
        }
        changed_secrets.push(name);
    }
    // Always touches updated_at, so cached instances (and their connections) are rebuilt.
    let connector = state.store.update_connector(&tenant, &id, update).await?;
    state.connectors.forget(&id);
    let names = state.store.connector_secret_names(&tenant, &id).await?;
    audit(&state, Some(&tenant), &caller, "connector.update", Some(&id), json!({"secrets_changed": changed_secrets, "enabled": connector.enabled, "role": connector.role.as_str()})).await;
    Ok(Json(connector_json(&connector, &names)))
}

pub async fn delete_connector(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.store.delete_connector(&tenant, &id).await?;
    state.connectors.forget(&id);
    audit(
        &state,
        Some(&tenant),
        &caller,
        "connector.delete",
        Some(&id),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test_connector(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let connector = state.connectors.get(&tenant, &id).await?;
    let body = match connector.instance.test_connection().await {
        Ok(report) => {
            let checks: Vec<Value> = report
                .checks
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "status": match c.status {
                            CheckStatus::Ok => "ok",
                            CheckStatus::Warning => "warning",
                            CheckStatus::Failed => "failed",
                        },
                        "detail": c.detail, "advice": c.advice,
                    })
                })
                .collect();
            let ok = report
                .checks
                .iter()
                .all(|c| c.status != CheckStatus::Failed);
            json!({"ok": ok, "checks": checks})
        }
        Err(error) => {
            let (detail, _) = describe::call_error(&error);
            json!({"ok": false, "checks": [], "error": detail})
        }
    };
    audit(
        &state,
        Some(&tenant),
        &caller,
        "connector.test",
        Some(&id),
        json!({"ok": body["ok"]}),
    )
    .await;
    Ok(Json(body))
}

// ---- employees --------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct EmployeeQuery {
    #[serde(default)]
    q: String,
}

pub async fn list_employees(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path(tenant): Path<String>,
    Query(query): Query<EmployeeQuery>,
) -> ApiResult<Json<Value>> {
    state.store.tenant(&tenant).await?;
    let employees = state.store.employees(&tenant, &query.q).await?;
    // Three queries whatever the number of employees: their keys and latest changes are read
    // for the whole tenant and matched here.
    let mut keys: HashMap<String, Vec<Value>> = HashMap::new();
    for key in state.store.keys(&tenant, None).await? {
        if let Some(employee) = key.employee_id {
            keys.entry(employee)
                .or_default()
                .push(json!({"id": key.id, "serial": key.serial, "status": key.status.as_str()}));
        }
    }
    let mut latest: HashMap<String, Value> = state
        .store
        .latest_changes(&tenant)
        .await?
        .into_iter()
        .map(|c| {
            let summary =
                json!({"id": c.id, "state": c.state.as_str(), "started_at": c.started_at});
            (c.employee_id, summary)
        })
        .collect();
    let mut list = Vec::new();
    for employee in &employees {
        let mut value = employee_json(employee);
        value["keys"] = json!(keys.remove(&employee.id).unwrap_or_default());
        value["last_change"] = latest.remove(&employee.id).unwrap_or(Value::Null);
        list.push(value);
    }
    Ok(Json(json!({"employees": list})))
}

pub async fn get_employee(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let employee = state.store.employee(&tenant, &id).await?;
    let keys = state.store.keys(&tenant, Some(&id)).await?;
    let changes = state.store.password_changes(&tenant, Some(&id), 20).await?;
    let mut value = employee_json(&employee);
    value["keys"] = json!(keys.iter().map(key_json).collect::<Vec<_>>());
    value["changes"] = json!(
        changes
            .iter()
            .map(|c| change_json(c, None))
            .collect::<Vec<_>>()
    );
    Ok(Json(value))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmployeeBody {
    connector: String,
    #[schemars(regex(pattern = r"\S"))]
    account: String,
}

pub async fn create_employee(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path(tenant): Path<String>,
    Body(body): Body<NewEmployeeBody>,
) -> ApiResult<impl IntoResponse> {
    if body.account.trim().is_empty() {
        return Err(ApiError::field(
            "account",
            "name the account: its username, UPN or id",
        ));
    }
    let connector = state.connectors.get(&tenant, &body.connector).await?;
    let query = AccountQuery {
        text: body.account.trim().to_string(),
        mode: MatchMode::Exact,
    };
    let page = connector
        .instance
        .find_accounts(&query, None, 2)
        .await
        .map_err(|error| {
            let (detail, kind) = describe::call_error(&error);
            ApiError::from(crate::workflow::ChangeError::Directory {
                connector: connector.record.id.clone(),
                plugin: connector.record.plugin.clone(),
                kind,
                message: format!(
                    "{}: {}",
                    connector.record.id,
                    detail["message"].as_str().unwrap_or("failed")
                ),
                detail,
                change_id: None,
            })
        })?;
    let account = match page.accounts.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(ApiError::field(
                "account",
                format!("no account `{}` in this directory", body.account.trim()),
            ));
        }
        _ => {
            return Err(ApiError::field(
                "account",
                "more than one account matches; give the exact username, UPN or id",
            ));
        }
    };
    let employee = state
        .store
        .create_employee(
            &tenant,
            NewEmployee {
                connector_id: connector.record.id.clone(),
                account_id: account.id.clone(),
                username: account.username.clone(),
                display_name: account.display_name.clone(),
                account: describe::account_to_json(&account),
            },
        )
        .await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "employee.create",
        Some(&employee.id),
        json!({"username": employee.username, "connector": connector.record.id}),
    )
    .await;
    Ok(created(employee_json(&employee)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    connector: String,
    /// Text to search for (empty: every account in the connector's scope).
    #[serde(default)]
    query: String,
    /// The most accounts to import (default 1,000).
    limit: Option<u32>,
}

pub async fn import_employees(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path(tenant): Path<String>,
    Body(body): Body<ImportBody>,
) -> ApiResult<Json<Value>> {
    let connector = state.connectors.get(&tenant, &body.connector).await?;
    let limit = body.limit.unwrap_or(1000).min(100_000) as usize;
    let query = AccountQuery {
        text: body.query.clone(),
        mode: MatchMode::Prefix,
    };
    let (mut imported, mut existing) = (0u64, 0u64);
    let mut cursor: Option<String> = None;
    let mut seen = 0usize;
    loop {
        let page = connector
            .instance
            .find_accounts(&query, cursor.as_deref(), 200)
            .await
            .map_err(|error| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "directory-failed",
                    "A directory refused or failed",
                    error.to_string(),
                )
            })?;
        for account in &page.accounts {
            if seen >= limit {
                break;
            }
            seen += 1;
            let created = state
                .store
                .create_employee(
                    &tenant,
                    NewEmployee {
                        connector_id: connector.record.id.clone(),
                        account_id: account.id.clone(),
                        username: account.username.clone(),
                        display_name: account.display_name.clone(),
                        account: describe::account_to_json(account),
                    },
                )
                .await;
            match created {
                Ok(_) => imported += 1,
                Err(crate::store::StoreError::Conflict(_)) => existing += 1,
                Err(other) => return Err(other.into()),
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() || seen >= limit {
            break;
        }
    }
    audit(
        &state,
        Some(&tenant),
        &caller,
        "employee.import",
        None,
        json!({"connector": connector.record.id, "imported": imported, "existing": existing}),
    )
    .await;
    Ok(Json(
        json!({"imported": imported, "already_employees": existing}),
    ))
}

// ---- passwords --------------------------------------------------------------------------

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    password: String,
}

pub async fn check_password(
    State(state): State<AppState>,
    _: TenantAdmin<ResetRole>,
    Path((tenant, employee)): Path<(String, String)>,
    Body(body): Body<CheckBody>,
) -> ApiResult<Json<Value>> {
    let candidate = SecretString::from(body.password);
    let violations = state.workflow.check(&tenant, &employee, &candidate).await?;
    Ok(Json(json!({
        "ok": violations.is_empty(),
        "violations": violations.iter().map(|v| v.to_json()).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// The manual mode takes the password twice and no length; the generate mode no password.
#[schemars(extend("allOf" = [
    {
        "if": {"properties": {"mode": {"const": "manual"}}},
        "then": {
            "required": ["password", "confirm"],
            "properties": {"password": {"type": "string"}, "confirm": {"type": "string"},
                           "length": {"type": "null"}}
        }
    },
    {
        "if": {"properties": {"mode": {"const": "generate"}}},
        "then": {"properties": {"password": {"type": "null"}, "confirm": {"type": "null"}}}
    }
]))]
pub struct PasswordBody {
    #[schemars(extend("enum" = ["generate", "manual"]))]
    mode: String,
    password: Option<String>,
    confirm: Option<String>,
    length: Option<u32>,
    #[serde(default)]
    must_change_at_next_logon: bool,
    #[serde(default)]
    unlock: bool,
}

pub async fn set_password(
    State(state): State<AppState>,
    caller: TenantAdmin<ResetRole>,
    Path((tenant, employee)): Path<(String, String)>,
    Body(body): Body<PasswordBody>,
) -> ApiResult<impl IntoResponse> {
    let candidate = match body.mode.as_str() {
        "manual" => {
            if body.length.is_some() {
                return Err(ApiError::field(
                    "length",
                    "only the generate mode takes a length",
                ));
            }
            Candidate::Manual {
                password: SecretString::from(
                    body.password
                        .ok_or_else(|| ApiError::field("password", "type the new password"))?,
                ),
                confirm: SecretString::from(
                    body.confirm
                        .ok_or_else(|| ApiError::field("confirm", "type the new password again"))?,
                ),
            }
        }
        "generate" => {
            if body.password.is_some() || body.confirm.is_some() {
                return Err(ApiError::field(
                    "password",
                    "the generate mode takes no password: Latchkey draws one nobody sees",
                ));
            }
            Candidate::Generate {
                length: body.length,
            }
        }
        _ => return Err(ApiError::field("mode", "must be manual or generate")),
    };
    let accepted = state
        .workflow
        .reset(ResetRequest {
            tenant_id: tenant.clone(),
            employee_id: employee,
            actor: caller.id().to_string(),
            candidate,
            must_change_at_next_logon: body.must_change_at_next_logon,
            unlock: body.unlock,
        })
        .await;
    state.metrics.change(match &accepted {
        Ok(_) => "accepted",
        Err(_) => "refused",
    });
    let accepted = accepted?;
    Ok((
        StatusCode::ACCEPTED,
        [(
            axum::http::header::LOCATION,
            format!(
                "/api/v1/tenants/{tenant}/password-changes/{}",
                accepted.change_id
            ),
        )],
        Json(json!({"change_id": accepted.change_id, "state": accepted.state.as_str()})),
    ))
}

pub async fn get_change(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let change = state.store.password_change(&tenant, &id).await?;
    let delivery = state.store.delivery_of_change(&tenant, &id).await.ok();
    Ok(Json(change_json(&change, delivery.as_ref())))
}

#[derive(Deserialize)]
pub struct ChangesQuery {
    employee: Option<String>,
    limit: Option<u32>,
}

pub async fn list_changes(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path(tenant): Path<String>,
    Query(query): Query<ChangesQuery>,
) -> ApiResult<Json<Value>> {
    state.store.tenant(&tenant).await?;
    let changes = state
        .store
        .password_changes(
            &tenant,
            query.employee.as_deref(),
            query.limit.unwrap_or(50).min(500),
        )
        .await?;
    Ok(Json(
        json!({"changes": changes.iter().map(|c| change_json(c, None)).collect::<Vec<_>>()}),
    ))
}

// ---- keys -------------------------------------------------------------------------------

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    serial: String,
    kem_public_key: String,
    sig_public_key: String,
}

fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| ApiError::field(field, "must be base64url"))
}

pub async fn create_key(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path(tenant): Path<String>,
    Body(body): Body<NewKeyBody>,
) -> ApiResult<impl IntoResponse> {
    let kem = decode_b64("kem_public_key", &body.kem_public_key)?;
    let sig = decode_b64("sig_public_key", &body.sig_public_key)?;
    keyproto::identity::KeyIdentity::from_public_keys(&kem, &sig)
        .map_err(|e| ApiError::field("kem_public_key", format!("not a usable key: {e}")))?;
    let key = state
        .store
        .create_key(
            &tenant,
            NewKey {
                serial: body.serial,
                kem_public_key: kem,
                sig_public_key: sig,
            },
        )
        .await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "key.create",
        Some(&key.id),
        json!({"serial": key.serial}),
    )
    .await;
    Ok(created(key_json(&key)))
}

pub async fn list_keys(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    state.store.tenant(&tenant).await?;
    let keys = state.store.keys(&tenant, None).await?;
    Ok(Json(
        json!({"keys": keys.iter().map(key_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[schemars(extend("enum" = ["ready", "reserved", "active", "locked", "suspended", "deactivated", "compromised", null]))]
    status: Option<String>,
    /// An employee id to assign the key to, or null to unassign.
    #[serde(default, deserialize_with = "double_option")]
    employee: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub async fn update_key(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path((tenant, id)): Path<(String, String)>,
    Body(body): Body<KeyPatch>,
) -> ApiResult<Json<Value>> {
    let mut key = state.store.key(&tenant, &id).await?;
    if let Some(employee) = &body.employee {
        key = state
            .store
            .assign_key(&tenant, &id, employee.as_deref())
            .await?;
    }
    if let Some(status) = &body.status {
        let status = KeyStatus::parse(status).ok_or_else(|| {
            ApiError::field(
                "status",
                "must be one of ready, reserved, active, locked, suspended, deactivated, compromised",
            )
        })?;
        key = state.store.set_key_status(&tenant, &id, status).await?;
    }
    audit(
        &state,
        Some(&tenant),
        &caller,
        "key.update",
        Some(&id),
        json!({"status": key.status.as_str(), "employee": key.employee_id}),
    )
    .await;
    Ok(Json(key_json(&key)))
}

// ---- enrolment codes and workstations ---------------------------------------------------

#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewCodeBody {
    /// How long the code is valid (default 24 hours, at most 30 days).
    #[schemars(range(min = 60, max = 2_592_000))]
    valid_seconds: Option<i64>,
}

pub async fn create_enrollment_code(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    // The body is optional: no body means the defaults.
    let body: NewCodeBody = if body.iter().all(u8::is_ascii_whitespace) {
        NewCodeBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid: {e}")))?
    };
    let valid = body.valid_seconds.unwrap_or(24 * 3600);
    if !(60..=30 * 24 * 3600).contains(&valid) {
        return Err(ApiError::field(
            "valid_seconds",
            "must be between 60 and 2592000 (30 days)",
        ));
    }
    let at = now();
    let issued = state
        .store
        .create_enrollment_code(&tenant, caller.id(), at, at + valid)
        .await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "workstation.code.create",
        Some(&issued.value.id),
        json!({"expires_at": issued.value.expires_at}),
    )
    .await;
    Ok(created(json!({
        "id": issued.value.id,
        "code": issued.token.expose_secret(),
        "expires_at": issued.value.expires_at,
    })))
}

pub async fn list_workstations(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    state.store.tenant(&tenant).await?;
    let list = state.store.workstations(&tenant).await?;
    Ok(Json(
        json!({"workstations": list.iter().map(workstation_json).collect::<Vec<_>>()}),
    ))
}

pub async fn approve_workstation(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let workstation = state.store.approve_workstation(&tenant, &id).await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "workstation.approve",
        Some(&id),
        json!({"name": workstation.name}),
    )
    .await;
    Ok(Json(workstation_json(&workstation)))
}

pub async fn revoke_workstation(
    State(state): State<AppState>,
    caller: TenantAdmin<ManageRole>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let workstation = state.store.revoke_workstation(&tenant, &id).await?;
    audit(
        &state,
        Some(&tenant),
        &caller,
        "workstation.revoke",
        Some(&id),
        json!({"name": workstation.name}),
    )
    .await;
    Ok(Json(workstation_json(&workstation)))
}

// ---- audit ------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<u32>,
    action: Option<String>,
}

pub async fn list_audit(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
    Path(tenant): Path<String>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    state.store.tenant(&tenant).await?;
    let records: Vec<Value> = state
        .store
        .audit_records_matching(
            &tenant,
            query.after.unwrap_or(0),
            query.limit.unwrap_or(100).min(1000),
            query.action.as_deref(),
        )
        .await?
        .iter()
        .map(audit_json)
        .collect();
    Ok(Json(json!({"records": records})))
}

/// The chain is one for the whole server (its order is what proves nothing was removed), so
/// this verifies all of it; the answer says only whether it is whole and where it breaks.
pub async fn verify_audit(
    State(state): State<AppState>,
    _: TenantAdmin<ReadRole>,
) -> ApiResult<Json<Value>> {
    let report = state.store.verify_audit().await?;
    Ok(Json(json!({
        "ok": report.problem.is_none(),
        "records": report.records,
        "head": report.head_seq,
        "problem": report.problem.map(|p| p.to_string()),
    })))
}
