//! Employees, the Edit password dialog and a change's live status.
//!
//! The dialog posts once; the answer is a redirect to the change's page (so a reload cannot
//! post it again, and the password is gone from the browser's page), or the employee's page
//! again with the dialog open and each error beside its field — the password fields are never
//! filled back in. Live policy feedback is `password/check`, called by the script as the admin
//! types; live status is a server-sent event stream of the status fragment.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebResult;
use super::render;
use super::session::Console;
use crate::api::AppState;
use crate::api::auth::Need;

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// How the tenant's connectors are named on pages: id → "Active Directory (LDAP), primary" (the
/// plugin's own name and the connector's role), so nobody reads a UUID.
async fn connector_labels(state: &AppState, console: &Console, tenant: &str) -> Value {
    let reply = console
        .api(
            state,
            Method::GET,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            None,
        )
        .await;
    let mut labels = serde_json::Map::new();
    for connector in reply.body["connectors"].as_array().into_iter().flatten() {
        let (Some(id), Some(plugin)) = (connector["id"].as_str(), connector["plugin"].as_str())
        else {
            continue;
        };
        let name = state
            .connectors
            .registry()
            .get(plugin)
            .map(|p| p.info().name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| plugin.to_string());
        let role = connector["role"].as_str().unwrap_or_default();
        labels.insert(id.to_string(), json!(format!("{name}, {role}")));
    }
    Value::Object(labels)
}

/// Gives each violation the `label` of its connector.
fn label_violations(violations: &mut Value, labels: &Value) {
    for violation in violations.as_array_mut().into_iter().flatten() {
        let label = violation["connector"]
            .as_str()
            .and_then(|id| labels[id].as_str())
            .map(str::to_string);
        violation["label"] =
            json!(label.or_else(|| violation["connector"].as_str().map(str::to_string)));
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
}

async fn list_page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    q: &str,
    add_error: Option<String>,
) -> WebResult<Response> {
    console.require(tenant, Need::Read)?;
    let mut data = console
        .get(
            state,
            &format!("/api/v1/tenants/{tenant}/employees?q={}", encode(q)),
        )
        .await?;
    data["q"] = json!(q);
    data["add_error"] = json!(add_error);
    if console.can(tenant, Need::Manage) {
        let connectors = console
            .get(state, &format!("/api/v1/tenants/{tenant}/connectors"))
            .await?;
        data["connectors"] = connectors["connectors"].clone();
    }
    let status = if data["add_error"].is_null() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render::page_with_status(
        status,
        state,
        console,
        Some(tenant),
        "employees",
        "employees.html",
        data,
    )
    .await
}

/// `GET /console/t/{tenant}/employees?q=`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    list_page(&state, &console, &tenant, &query.q, None).await
}

#[derive(Deserialize)]
pub struct AddForm {
    connector: String,
    account: String,
}

/// `POST /console/t/{tenant}/employees`: add an employee found in a directory.
pub async fn add(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    axum::Form(form): axum::Form<AddForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let reply = console
        .api(
            &state,
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/employees"),
            Some(&json!({"connector": form.connector, "account": form.account.trim()})),
        )
        .await;
    if reply.is_success() {
        let id = reply.body["id"].as_str().unwrap_or_default();
        return Ok(Redirect::to(&format!("/console/t/{tenant}/employees/{id}")).into_response());
    }
    list_page(&state, &console, &tenant, "", Some(reply.detail())).await
}

/// What the dialog shows again after a refused Save (never the password).
#[derive(Default)]
struct DialogState {
    mode: String,
    length: Option<String>,
    must_change: bool,
    unlock: bool,
    error: Option<String>,
    errors: serde_json::Map<String, Value>,
    violations: Vec<Value>,
}

async fn employee_page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    employee: &str,
    dialog: Option<DialogState>,
    status: StatusCode,
) -> WebResult<Response> {
    console.require(tenant, Need::Read)?;
    let employee_data = console
        .get(
            state,
            &format!("/api/v1/tenants/{tenant}/employees/{employee}"),
        )
        .await?;
    let form = dialog.map(|d| {
        json!({
            "mode": d.mode, "length": d.length, "must_change": d.must_change,
            "unlock": d.unlock, "error": d.error, "errors": d.errors,
            "violations": d.violations,
        })
    });
    let data = json!({"employee": employee_data, "form": form});
    render::page_with_status(
        status,
        state,
        console,
        Some(tenant),
        "employees",
        "employee.html",
        data,
    )
    .await
}

/// `GET /console/t/{tenant}/employees/{employee}`.
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, employee)): Path<(String, String)>,
) -> WebResult<Response> {
    employee_page(&state, &console, &tenant, &employee, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    length: String,
    #[serde(default)]
    must_change_at_next_logon: Option<String>,
    #[serde(default)]
    unlock: Option<String>,
}

impl Drop for PasswordForm {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.password.zeroize();
        self.confirm.zeroize();
    }
}

/// `POST /console/t/{tenant}/employees/{employee}/password`: the dialog's Save.
pub async fn set_password(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, employee)): Path<(String, String)>,
    axum::Form(form): axum::Form<PasswordForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Reset)?;
    let mut dialog = DialogState {
        mode: form.mode.clone(),
        length: (!form.length.trim().is_empty()).then(|| form.length.trim().to_string()),
        must_change: form.must_change_at_next_logon.is_some(),
        unlock: form.unlock.is_some(),
        ..DialogState::default()
    };
    let mut body = json!({
        "mode": form.mode,
        "must_change_at_next_logon": dialog.must_change,
        "unlock": dialog.unlock,
    });
    match form.mode.as_str() {
        "manual" => {
            if form.password.is_empty() {
                dialog
                    .errors
                    .insert("password".into(), json!("Type the new password."));
            } else if form.confirm != form.password {
                dialog.errors.insert(
                    "confirm".into(),
                    json!("The two passwords are not the same. Type the new password again."),
                );
            }
            if !dialog.errors.is_empty() {
                return employee_page(
                    &state,
                    &console,
                    &tenant,
                    &employee,
                    Some(dialog),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            body["password"] = json!(form.password);
            body["confirm"] = json!(form.confirm);
        }
        "generate" => {
            if let Some(length) = &dialog.length {
                match length.parse::<u32>() {
                    Ok(n) => body["length"] = json!(n),
                    Err(_) => {
                        dialog.errors.insert(
                            "length".into(),
                            json!("Type a whole number, or leave it empty."),
                        );
                        return employee_page(
                            &state,
                            &console,
                            &tenant,
                            &employee,
                            Some(dialog),
                            StatusCode::UNPROCESSABLE_ENTITY,
                        )
                        .await;
                    }
                }
            }
        }
        _ => {
            dialog.error = Some("Choose Generate or Type a password.".into());
            return employee_page(
                &state,
                &console,
                &tenant,
                &employee,
                Some(dialog),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    }
    let reply = console
        .api(
            &state,
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/employees/{employee}/password"),
            Some(&body),
        )
        .await;
    // The JSON that carried the password is dropped here; only ids remain.
    drop(body);
    if reply.is_success() {
        let id = reply.body["change_id"].as_str().unwrap_or_default();
        return Ok(Redirect::to(&format!("/console/t/{tenant}/changes/{id}")).into_response());
    }
    if let Some(refusal) = reply.refusal() {
        return Err(refusal);
    }
    for field in ["password", "confirm", "length", "mode"] {
        if let Some(message) = reply.field_error(field) {
            dialog.errors.insert(field.into(), json!(message));
        }
    }
    let mut violations = reply.body["violations"].clone();
    label_violations(
        &mut violations,
        &connector_labels(&state, &console, &tenant).await,
    );
    dialog.violations = violations.as_array().cloned().unwrap_or_default();
    if dialog.errors.is_empty() && dialog.violations.is_empty() {
        dialog.error = Some(reply.detail());
    }
    employee_page(
        &state,
        &console,
        &tenant,
        &employee,
        Some(dialog),
        reply.status,
    )
    .await
}

#[derive(Deserialize)]
pub struct CheckRequest {
    password: String,
}

impl Drop for CheckRequest {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.password.zeroize();
    }
}

/// `POST /console/t/{tenant}/employees/{employee}/password/check` (the script, as the admin
/// types): every unmet rule of every connector, as the API answers it.
pub async fn check_password(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, employee)): Path<(String, String)>,
    axum::Json(request): axum::Json<CheckRequest>,
) -> Response {
    let reply = console
        .api(
            &state,
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/employees/{employee}/password/check"),
            Some(&json!({"password": request.password})),
        )
        .await;
    let mut body = reply.body;
    if body["violations"].is_array() {
        let labels = connector_labels(&state, &console, &tenant).await;
        label_violations(&mut body["violations"], &labels);
    }
    (reply.status, Json(body)).into_response()
}

async fn change_data(
    state: &AppState,
    console: &Console,
    tenant: &str,
    change: &str,
) -> WebResult<Value> {
    console
        .get(
            state,
            &format!("/api/v1/tenants/{tenant}/password-changes/{change}"),
        )
        .await
}

/// `GET /console/t/{tenant}/changes/{change}`.
pub async fn change(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, change)): Path<(String, String)>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Read)?;
    let change = change_data(&state, &console, &tenant, &change).await?;
    let employee = match change["employee"].as_str() {
        Some(id) => console
            .get(&state, &format!("/api/v1/tenants/{tenant}/employees/{id}"))
            .await
            .ok(),
        None => None,
    };
    render::page(
        &state,
        &console,
        Some(&tenant),
        "employees",
        "change.html",
        json!({
            "change": change, "employee": employee,
            "connector_labels": connector_labels(&state, &console, &tenant).await,
        }),
    )
    .await
}

/// Whether nothing about the change will move any more.
fn settled(change: &Value) -> bool {
    let change_done = matches!(
        change["state"].as_str(),
        Some("applied" | "partially_applied" | "failed")
    );
    let delivery_done = match change["delivery"]["state"].as_str() {
        None => true,
        Some(state) => !matches!(state, "held" | "pending" | "leased"),
    };
    let sync_done = !matches!(change["sync"].as_str(), Some("awaiting"));
    change_done && delivery_done && sync_done
}

/// How often the event stream looks at the change, and for how long at most.
const POLL: Duration = Duration::from_millis(500);
const STREAM_FOR: Duration = Duration::from_secs(15 * 60);

/// `GET /console/t/{tenant}/changes/{change}/events`: the status fragment, sent again whenever
/// it changes, until the change and its delivery are settled.
pub async fn change_events(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, change)): Path<(String, String)>,
) -> WebResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    console.require(&tenant, Need::Read)?;
    change_data(&state, &console, &tenant, &change).await?;
    let labels = connector_labels(&state, &console, &tenant).await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(4);
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut last = String::new();
        while started.elapsed() < STREAM_FOR {
            let data = match change_data(&state, &console, &tenant, &change).await {
                Ok(data) => data,
                Err(_) => break,
            };
            let Ok(context) = render::frame(
                &state,
                &console,
                Some(&tenant),
                "employees",
                json!({"change": data, "connector_labels": labels}),
            )
            .await
            else {
                break;
            };
            let Ok(html) = render::render("change_status.html", &context) else {
                break;
            };
            if html != last {
                let event = Event::default().event("status").data(html.clone());
                if sender.send(event).await.is_err() {
                    return;
                }
                last = html;
            }
            if settled(&data) {
                let _ = sender
                    .send(Event::default().event("settled").data(""))
                    .await;
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
