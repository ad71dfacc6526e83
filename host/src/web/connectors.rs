//! Connectors: the tenant's directories (list, enable/disable, test the connection, delete)
//! and the form that adds or edits one, generated from the plugin's config and secrets
//! schemas (the JSON Schemas its `describe` returned).
//!
//! The whole area needs the admin role or higher. The form is a client of the connectors API
//! like every console page: the API checks the config against the plugin's schema and answers
//! one error per field, shown beside that field (a value that is not even a number is caught
//! here first, since it cannot be sent typed). Secrets are write-only: the form has empty
//! password inputs, an edit shows only whether each is set, and a refused form never shows a
//! typed secret again.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::call::ApiReply;
use super::render;
use super::session::Console;
use super::{WebError, WebResult};
use crate::api::AppState;
use crate::api::auth::Need;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/t/{tenant}/connectors", get(list).post(create))
        .route("/console/t/{tenant}/connectors/new", get(new_form))
        .route(
            "/console/t/{tenant}/connectors/{id}",
            get(show).post(update),
        )
        .route(
            "/console/t/{tenant}/connectors/{id}/enabled",
            post(set_enabled),
        )
        .route("/console/t/{tenant}/connectors/{id}/test", post(test))
        .route("/console/t/{tenant}/connectors/{id}/delete", post(delete))
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn connectors_uri(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/connectors")
}

// ---- plugins and their schemas ------------------------------------------------------------

/// An installed plugin, as the pages show it.
struct PluginView {
    id: String,
    version: String,
    name: String,
    description: String,
    config_schema: String,
    secrets_schema: String,
}

fn plugin_view(state: &AppState, id: &str) -> Option<PluginView> {
    let plugin = state.connectors.registry().get(id)?;
    let info = plugin.info();
    let manifest = plugin.manifest();
    Some(PluginView {
        id: manifest.id.clone(),
        version: manifest.version.to_string(),
        name: if info.name.is_empty() {
            manifest.name.clone()
        } else {
            info.name.clone()
        },
        description: if info.description.is_empty() {
            manifest.description.clone()
        } else {
            info.description.clone()
        },
        config_schema: info.config_schema.clone(),
        secrets_schema: info.secrets_schema.clone(),
    })
}

impl PluginView {
    fn to_json(&self) -> Value {
        json!({"id": self.id, "version": self.version, "name": self.name,
               "description": self.description, "query": encode(&self.id)})
    }
}

/// The installed plugins, by name.
fn plugins_json(state: &AppState) -> Vec<Value> {
    let mut list: Vec<PluginView> = state
        .connectors
        .registry()
        .list()
        .iter()
        .filter_map(|p| plugin_view(state, &p.manifest().id))
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    list.iter().map(PluginView::to_json).collect()
}

/// An object's properties in the order the schema text lists them (serde_json's map sorts
/// them, and a form should follow the order its author chose).
#[derive(Default)]
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Deserialize, Default)]
struct SchemaShape {
    #[serde(default)]
    properties: Option<Ordered>,
    #[serde(default)]
    required: Vec<Value>,
}

/// What input a property gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Url,
    Select,
    Integer,
    Number,
    Checkbox,
    /// An array of strings: one per line.
    Lines,
    /// Anything else: its JSON text.
    Json,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Url => "url",
            Kind::Select => "select",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::Checkbox => "checkbox",
            Kind::Lines => "lines",
            Kind::Json => "json",
        }
    }
}

/// One property of a schema, as a form field.
struct FieldSpec {
    key: String,
    kind: Kind,
    title: String,
    description: Option<String>,
    required: bool,
    options: Vec<String>,
    minimum: Option<Value>,
    maximum: Option<Value>,
    default: Option<Value>,
    placeholder: Option<String>,
}

/// The first non-null `type` of a property.
fn type_of(property: &Value) -> Option<&str> {
    match property.get("type")? {
        Value::String(t) => Some(t.as_str()),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

fn kind_of(property: &Value) -> Kind {
    let strings = property
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty() && o.iter().all(Value::is_string));
    match type_of(property) {
        Some("string") if strings => Kind::Select,
        Some("string") if property.get("format").and_then(Value::as_str) == Some("uri") => {
            Kind::Url
        }
        Some("string") => Kind::Text,
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Checkbox,
        Some("array")
            if property
                .get("items")
                .and_then(type_of)
                .is_none_or(|t| t == "string") =>
        {
            Kind::Lines
        }
        None if strings => Kind::Select,
        _ => Kind::Json,
    }
}

/// The fields of a schema (its text, as `describe` gave it), in the schema's order.
fn fields_of(schema: &str) -> Vec<FieldSpec> {
    let shape: SchemaShape = serde_json::from_str(schema).unwrap_or_default();
    let required: Vec<&str> = shape.required.iter().filter_map(Value::as_str).collect();
    let properties = shape.properties.unwrap_or_default().0;
    properties
        .into_iter()
        .map(|(key, property)| {
            let text = |name: &str| {
                property
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|t| !t.trim().is_empty())
                    .map(str::to_string)
            };
            let placeholder = property
                .get("examples")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
                .and_then(Value::as_str)
                .map(str::to_string);
            FieldSpec {
                kind: kind_of(&property),
                title: text("title").unwrap_or_else(|| key.clone()),
                description: text("description"),
                required: required.contains(&key.as_str()),
                options: property
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|o| {
                        o.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                minimum: property.get("minimum").cloned(),
                maximum: property.get("maximum").cloned(),
                default: property.get("default").cloned(),
                placeholder,
                key,
            }
        })
        .collect()
}

/// A safe HTML id for a key.
fn id_for(prefix: &str, key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{safe}")
}

/// A configured value as the text of its input.
fn value_text(kind: Kind, value: &Value) -> String {
    match (kind, value) {
        (_, Value::Null) => String::new(),
        (Kind::Lines, Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("\n"),
        (_, Value::String(text)) if kind != Kind::Json => text.clone(),
        (Kind::Json, other) => other.to_string(),
        (_, other) => other.to_string(),
    }
}

fn truthy(value: &Value) -> bool {
    matches!(value, Value::Bool(true))
}

// ---- the submitted form ------------------------------------------------------------------

/// A submitted form's fields (the last of a name wins). Secrets are in it, so it is wiped when
/// dropped and never logged.
struct Submitted(HashMap<String, String>);

impl Drop for Submitted {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for value in self.0.values_mut() {
            value.zeroize();
        }
    }
}

impl Submitted {
    fn from_pairs(pairs: Vec<(String, String)>) -> Submitted {
        Submitted(pairs.into_iter().collect())
    }

    fn text(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or_default()
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// What the form shows again: the config as typed (text per key, never a secret), the other
/// settings, and each error beside its field.
#[derive(Default)]
struct FormState {
    /// Config key → the text typed (checkboxes: "true"/"false").
    values: BTreeMap<String, String>,
    role: String,
    enabled: bool,
    position: String,
    /// Secrets ticked for removal.
    remove: Vec<String>,
    /// `config.<key>`, `secrets.<name>`, `role`, `position`… → message.
    errors: BTreeMap<String, String>,
    /// Errors that name no field on the form.
    alert: Option<String>,
}

/// The typed config from the submitted text, by the schema; errors for text that cannot be
/// the type the schema asks for, or a required value left empty.
fn typed_config(
    fields: &[FieldSpec],
    form: &Submitted,
    state: &mut FormState,
    keep: &Map<String, Value>,
) -> Map<String, Value> {
    let mut config = Map::new();
    // Keys the schema does not list (a connector configured through the API) stay as they are.
    for (key, value) in keep {
        if !fields.iter().any(|f| &f.key == key) {
            config.insert(key.clone(), value.clone());
        }
    }
    for field in fields {
        let name = format!("config.{}", field.key);
        let error_key = name.clone();
        if field.kind == Kind::Checkbox {
            let on = form.has(&name);
            state.values.insert(field.key.clone(), on.to_string());
            config.insert(field.key.clone(), Value::Bool(on));
            continue;
        }
        let raw = form.text(&name).to_string();
        state.values.insert(field.key.clone(), raw.clone());
        let text = raw.trim();
        let empty = match field.kind {
            Kind::Lines => text.lines().all(|l| l.trim().is_empty()),
            _ => text.is_empty(),
        };
        if empty {
            if field.required {
                state.errors.insert(error_key, "is required".into());
            }
            continue;
        }
        let value = match field.kind {
            Kind::Text | Kind::Url | Kind::Select => Ok(Value::String(text.to_string())),
            Kind::Integer => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| "must be a whole number".to_string()),
            Kind::Number => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| "must be a number".to_string()),
            Kind::Lines => Ok(Value::Array(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect(),
            )),
            Kind::Json => serde_json::from_str::<Value>(text)
                .map_err(|_| "must be JSON (as the schema describes it)".to_string()),
            Kind::Checkbox => unreachable!("handled above"),
        };
        match value {
            Ok(value) => {
                config.insert(field.key.clone(), value);
            }
            Err(message) => {
                state.errors.insert(error_key, message);
            }
        }
    }
    config
}

/// The secrets to send: each typed one (set), each ticked for removal (null); empty ones are
/// left as they are (creating: not given).
fn secrets_to_send(
    secrets: &[FieldSpec],
    form: &Submitted,
    state: &mut FormState,
    editing: bool,
) -> Map<String, Value> {
    let mut out = Map::new();
    for secret in secrets {
        let typed = form.text(&format!("secret.{}", secret.key));
        let remove = editing && form.has(&format!("remove_secret.{}", secret.key));
        if remove {
            state.remove.push(secret.key.clone());
        }
        match (typed.is_empty(), remove) {
            (false, true) => {
                state.errors.insert(
                    format!("secrets.{}", secret.key),
                    "was both typed and ticked for removal: do one or the other".into(),
                );
            }
            (false, false) => {
                out.insert(secret.key.clone(), Value::String(typed.to_string()));
            }
            (true, true) => {
                out.insert(secret.key.clone(), Value::Null);
            }
            (true, false) => {}
        }
    }
    out
}

/// Takes the API's field errors into the form; what names no field becomes the alert.
fn take_errors(reply: &ApiReply, state: &mut FormState, placed: &[String]) {
    let mut unplaced = Vec::new();
    for error in reply.body["errors"].as_array().into_iter().flatten() {
        let field = error["field"].as_str().unwrap_or_default().to_string();
        let message = error["message"].as_str().unwrap_or_default().to_string();
        if placed.contains(&field) {
            state.errors.entry(field).or_insert(message);
        } else {
            unplaced.push(format!("{field}: {message}"));
        }
    }
    if !unplaced.is_empty() {
        state.alert = Some(unplaced.join("; "));
    } else if state.errors.is_empty() {
        state.alert = Some(capitalise(&reply.detail()));
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "Timeout (milliseconds) must be at least 1." from a field's title and the API's message.
fn sentence(title: &str, message: &str) -> String {
    let title = title.strip_suffix(" (optional)").unwrap_or(title);
    let message = message.trim_end_matches('.');
    format!("{title} {message}.")
}

// ---- the pages ---------------------------------------------------------------------------

/// The tenant's connectors, from the API, each with its plugin's name.
async fn connectors(state: &AppState, console: &Console, tenant: &str) -> WebResult<Vec<Value>> {
    let data = console.get(state, &connectors_uri(tenant)).await?;
    let mut list = data["connectors"].as_array().cloned().unwrap_or_default();
    for connector in &mut list {
        let plugin = connector["plugin"].as_str().unwrap_or_default().to_string();
        match plugin_view(state, &plugin) {
            Some(view) => {
                connector["plugin_name"] = json!(view.name);
                connector["installed"] = json!(true);
            }
            None => {
                connector["plugin_name"] = json!(plugin);
                connector["installed"] = json!(false);
            }
        }
    }
    Ok(list)
}

async fn one_connector(
    state: &AppState,
    console: &Console,
    tenant: &str,
    id: &str,
) -> WebResult<Value> {
    connectors(state, console, tenant)
        .await?
        .into_iter()
        .find(|c| c["id"] == id)
        .ok_or_else(|| WebError::not_found("connector"))
}

/// A test's diagnostics with how many checks warned.
fn with_warnings(mut diagnostics: Value) -> Value {
    let warnings = diagnostics["checks"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["status"] == "warning").count())
        .unwrap_or_default();
    diagnostics["warnings"] = json!(warnings);
    diagnostics
}

/// What the list page shows besides the connectors.
#[derive(Default)]
struct ListExtras {
    notice: Option<String>,
    alert: Option<String>,
    /// The connector an alert or a test result is about.
    subject: Option<String>,
    diagnostics: Option<Value>,
}

async fn list_page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    extras: ListExtras,
    status: StatusCode,
) -> WebResult<Response> {
    console.require(tenant, Need::Manage)?;
    let list = connectors(state, console, tenant).await?;
    let subject_connector = extras
        .subject
        .as_ref()
        .and_then(|id| list.iter().find(|c| c["id"] == id.as_str()).cloned());
    let diagnostics = extras.diagnostics.map(with_warnings);
    let data = json!({
        "subject_connector": subject_connector,
        "connectors": list,
        "plugins": plugins_json(state),
        "notice": extras.notice,
        "alert": extras.alert,
        "subject": extras.subject,
        "diagnostics": diagnostics,
    });
    render::page_with_status(
        status,
        state,
        console,
        Some(tenant),
        "connectors",
        "connectors.html",
        data,
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/t/{tenant}/connectors`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let notice = match query.done.as_deref() {
        Some("created") => {
            Some("The connector was added. Test its connection to be sure it works.")
        }
        Some("updated") => Some("The connector was saved."),
        Some("deleted") => Some("The connector was deleted."),
        Some("enabled") => Some("The connector is enabled: it takes part in password changes."),
        Some("disabled") => {
            Some("The connector is disabled: password changes leave its directory alone.")
        }
        _ => None,
    };
    let extras = ListExtras {
        notice: notice.map(str::to_string),
        ..ListExtras::default()
    };
    list_page(&state, &console, &tenant, extras, StatusCode::OK).await
}

/// Everything the form page needs.
struct FormPage<'a> {
    tenant: &'a str,
    plugin_id: &'a str,
    plugin: Option<&'a PluginView>,
    /// The connector being edited (as the API answered it), or none when adding.
    connector: Option<&'a Value>,
    state: FormState,
    diagnostics: Option<Value>,
}

fn form_context(page: FormPage<'_>) -> Value {
    let FormPage {
        tenant,
        plugin_id,
        plugin,
        connector,
        state,
        diagnostics,
    } = page;
    let editing = connector.is_some();
    let config_fields = plugin
        .map(|p| fields_of(&p.config_schema))
        .unwrap_or_default();
    let secret_fields = plugin
        .map(|p| fields_of(&p.secrets_schema))
        .unwrap_or_default();
    let set_secrets: Vec<&str> = connector
        .and_then(|c| c["secrets"].as_array())
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<Value> = config_fields
        .iter()
        .map(|f| {
            let id = id_for("config", &f.key);
            let value = state.values.get(&f.key).cloned().unwrap_or_default();
            let error = state
                .errors
                .get(&format!("config.{}", f.key))
                .map(|m| sentence(&f.title, m));
            let mut options: Vec<Value> = f
                .options
                .iter()
                .map(|o| json!({"value": o, "selected": *o == value}))
                .collect();
            if !f.required || !f.options.contains(&value) {
                options.insert(
                    0,
                    json!({"value": "", "selected": value.is_empty(),
                                         "label": "(not set)"}),
                );
            }
            let mut described = Vec::new();
            if f.description.is_some() || matches!(f.kind, Kind::Lines | Kind::Json) {
                described.push(format!("{id}-hint"));
            }
            if error.is_some() {
                described.push(format!("{id}-error"));
            }
            json!({
                "describedby": described.join(" "),
                "key": f.key, "name": format!("config.{}", f.key), "id": id,
                "kind": f.kind.as_str(), "label": f.title, "hint": f.description,
                "required": f.required, "value": value, "checked": value == "true",
                "options": options, "min": f.minimum, "max": f.maximum,
                "placeholder": f.placeholder, "error": error,
            })
        })
        .collect();
    let secrets: Vec<Value> = secret_fields
        .iter()
        .map(|s| {
            let set = set_secrets.contains(&s.key.as_str());
            let error = state
                .errors
                .get(&format!("secrets.{}", s.key))
                .map(|m| sentence(&s.title, m));
            let id = id_for("secret", &s.key);
            let mut described = Vec::new();
            if editing {
                described.push(format!("{id}-state"));
            }
            if s.description.is_some() {
                described.push(format!("{id}-hint"));
            }
            if error.is_some() {
                described.push(format!("{id}-error"));
            }
            json!({
                "describedby": described.join(" "),
                "key": s.key, "name": format!("secret.{}", s.key), "id": id,
                "remove_name": format!("remove_secret.{}", s.key),
                "remove_id": id_for("remove-secret", &s.key),
                "label": s.title, "hint": s.description, "required": s.required,
                "set": set, "removable": editing && set && !s.required,
                "remove_checked": state.remove.contains(&s.key),
                // A required secret must be typed when it is not stored yet.
                "must_type": s.required && !set,
                "error": error,
            })
        })
        .collect();
    let problem_count = state.errors.len();
    let role_error = state.errors.get("role").map(|m| sentence("The role", m));
    let position_error = state
        .errors
        .get("position")
        .map(|m| sentence("The position", m));
    let enabled_error = state.errors.get("enabled").map(|m| sentence("Enabled", m));
    let action = match connector {
        Some(c) => format!(
            "/console/t/{tenant}/connectors/{}",
            c["id"].as_str().unwrap_or_default()
        ),
        None => format!("/console/t/{tenant}/connectors"),
    };
    json!({
        "editing": editing,
        "action": action,
        "plugin_id": plugin_id,
        "plugin": plugin.map(PluginView::to_json),
        "connector": connector,
        "fields": fields,
        "secrets": secrets,
        "role": state.role,
        "enabled": state.enabled,
        "position": state.position,
        "role_error": role_error,
        "position_error": position_error,
        "enabled_error": enabled_error,
        "problem_count": problem_count,
        "alert": state.alert,
        "diagnostics": diagnostics.map(with_warnings),
    })
}

async fn form_page(
    state: &AppState,
    console: &Console,
    page: FormPage<'_>,
    status: StatusCode,
) -> WebResult<Response> {
    let tenant = page.tenant.to_string();
    let context = form_context(page);
    render::page_with_status(
        status,
        state,
        console,
        Some(&tenant),
        "connectors",
        "connector_form.html",
        context,
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    plugin: String,
}

/// `GET /console/t/{tenant}/connectors/new?plugin=ID`: the form for a new connector of that
/// plugin, with the schema's defaults.
pub async fn new_form(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    Query(query): Query<NewQuery>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let Some(plugin) = plugin_view(&state, &query.plugin) else {
        return Err(WebError::page(
            StatusCode::NOT_FOUND,
            "No such plugin",
            format!(
                "No plugin “{}” is installed on this server. Choose one under Add a connector.",
                query.plugin
            ),
        ));
    };
    let existing = connectors(&state, &console, &tenant).await?;
    let mut form = FormState {
        role: if existing.iter().any(|c| c["role"] == "primary") {
            "secondary".into()
        } else {
            "primary".into()
        },
        enabled: true,
        ..FormState::default()
    };
    for field in fields_of(&plugin.config_schema) {
        if let Some(default) = &field.default {
            let text = match (field.kind, default) {
                (Kind::Checkbox, value) => truthy(value).to_string(),
                (kind, value) => value_text(kind, value),
            };
            form.values.insert(field.key.clone(), text);
        }
    }
    let page = FormPage {
        tenant: &tenant,
        plugin_id: &plugin.id,
        plugin: Some(&plugin),
        connector: None,
        state: form,
        diagnostics: None,
    };
    form_page(&state, &console, page, StatusCode::OK).await
}

/// The names the form places errors beside.
fn placed_fields(plugin: Option<&PluginView>) -> Vec<String> {
    let mut placed = vec!["role".to_string(), "position".into(), "enabled".into()];
    if let Some(plugin) = plugin {
        placed.extend(
            fields_of(&plugin.config_schema)
                .iter()
                .map(|f| format!("config.{}", f.key)),
        );
        placed.extend(
            fields_of(&plugin.secrets_schema)
                .iter()
                .map(|f| format!("secrets.{}", f.key)),
        );
    }
    placed
}

/// `POST /console/t/{tenant}/connectors`: add a connector from the generated form.
pub async fn create(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let form = Submitted::from_pairs(pairs);
    let plugin_id = form.text("plugin").to_string();
    let Some(plugin) = plugin_view(&state, &plugin_id) else {
        let extras = ListExtras {
            alert: Some(format!(
                "No plugin “{plugin_id}” is installed on this server: choose one below."
            )),
            ..ListExtras::default()
        };
        return list_page(
            &state,
            &console,
            &tenant,
            extras,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let mut form_state = FormState {
        role: form.text("role").to_string(),
        enabled: form.has("enabled"),
        ..FormState::default()
    };
    let config = typed_config(
        &fields_of(&plugin.config_schema),
        &form,
        &mut form_state,
        &Map::new(),
    );
    let secrets = secrets_to_send(
        &fields_of(&plugin.secrets_schema),
        &form,
        &mut form_state,
        false,
    );
    drop(form);
    if form_state.errors.is_empty() {
        let body = json!({
            "plugin": plugin.id, "role": form_state.role, "enabled": form_state.enabled,
            "config": config, "secrets": secrets,
        });
        drop(secrets);
        let reply = console
            .api(&state, Method::POST, &connectors_uri(&tenant), Some(&body))
            .await;
        // The JSON that carried the secrets is dropped here; only names remain.
        drop(body);
        if reply.is_success() {
            return Ok(
                Redirect::to(&format!("/console/t/{tenant}/connectors?done=created"))
                    .into_response(),
            );
        }
        if let Some(refusal) = reply.refusal() {
            return Err(refusal);
        }
        take_errors(&reply, &mut form_state, &placed_fields(Some(&plugin)));
    }
    let page = FormPage {
        tenant: &tenant,
        plugin_id: &plugin.id,
        plugin: Some(&plugin),
        connector: None,
        state: form_state,
        diagnostics: None,
    };
    form_page(&state, &console, page, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// The form state of a connector as it is stored.
fn stored_state(plugin: Option<&PluginView>, connector: &Value) -> FormState {
    let mut form = FormState {
        role: connector["role"].as_str().unwrap_or_default().to_string(),
        enabled: truthy(&connector["enabled"]),
        position: connector["position"]
            .as_i64()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        ..FormState::default()
    };
    if let Some(plugin) = plugin {
        for field in fields_of(&plugin.config_schema) {
            let value = &connector["config"][&field.key];
            let text = match field.kind {
                Kind::Checkbox => match value {
                    Value::Bool(b) => b.to_string(),
                    _ => field.default.as_ref().is_some_and(truthy).to_string(),
                },
                kind => value_text(kind, value),
            };
            form.values.insert(field.key.clone(), text);
        }
    }
    form
}

/// The connector's page: its form prefilled, maybe with a test's diagnostics.
async fn connector_page(
    state: &AppState,
    console: &Console,
    tenant: &str,
    id: &str,
    diagnostics: Option<Value>,
) -> WebResult<Response> {
    let connector = one_connector(state, console, tenant, id).await?;
    let plugin_id = connector["plugin"].as_str().unwrap_or_default().to_string();
    let plugin = plugin_view(state, &plugin_id);
    let form = stored_state(plugin.as_ref(), &connector);
    let page = FormPage {
        tenant,
        plugin_id: &plugin_id,
        plugin: plugin.as_ref(),
        connector: Some(&connector),
        state: form,
        diagnostics,
    };
    form_page(state, console, page, StatusCode::OK).await
}

/// `GET /console/t/{tenant}/connectors/{id}`: the connector's form, prefilled.
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, id)): Path<(String, String)>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    connector_page(&state, &console, &tenant, &id, None).await
}

/// `POST /console/t/{tenant}/connectors/{id}`: save the form (PATCH): the whole config, the
/// role, order and state, and only the secrets typed or ticked for removal.
pub async fn update(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, id)): Path<(String, String)>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let form = Submitted::from_pairs(pairs);
    let connector = one_connector(&state, &console, &tenant, &id).await?;
    let plugin_id = connector["plugin"].as_str().unwrap_or_default().to_string();
    let plugin = plugin_view(&state, &plugin_id);
    let mut form_state = FormState {
        role: form.text("role").to_string(),
        enabled: form.has("enabled"),
        position: form.text("position").trim().to_string(),
        ..FormState::default()
    };
    let stored = connector["config"].as_object().cloned().unwrap_or_default();
    let config_fields = plugin
        .as_ref()
        .map(|p| fields_of(&p.config_schema))
        .unwrap_or_default();
    let config = typed_config(&config_fields, &form, &mut form_state, &stored);
    let secret_fields = plugin
        .as_ref()
        .map(|p| fields_of(&p.secrets_schema))
        .unwrap_or_default();
    let secrets = secrets_to_send(&secret_fields, &form, &mut form_state, true);
    drop(form);
    let position = if form_state.position.is_empty() {
        None
    } else {
        match form_state.position.parse::<i64>() {
            Ok(p) => Some(p),
            Err(_) => {
                form_state
                    .errors
                    .insert("position".into(), "must be a whole number".into());
                None
            }
        }
    };
    if form_state.errors.is_empty() {
        let mut body = json!({
            "role": form_state.role, "enabled": form_state.enabled,
            "config": config, "secrets": secrets,
        });
        drop(secrets);
        if let Some(position) = position {
            body["position"] = json!(position);
        }
        let reply = console
            .api(
                &state,
                Method::PATCH,
                &format!("{}/{id}", connectors_uri(&tenant)),
                Some(&body),
            )
            .await;
        drop(body);
        if reply.is_success() {
            return Ok(
                Redirect::to(&format!("/console/t/{tenant}/connectors?done=updated"))
                    .into_response(),
            );
        }
        if let Some(refusal) = reply.refusal() {
            return Err(refusal);
        }
        take_errors(&reply, &mut form_state, &placed_fields(plugin.as_ref()));
    }
    let page = FormPage {
        tenant: &tenant,
        plugin_id: &plugin_id,
        plugin: plugin.as_ref(),
        connector: Some(&connector),
        state: form_state,
        diagnostics: None,
    };
    form_page(&state, &console, page, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

/// `POST /console/t/{tenant}/connectors/{id}/enabled` (`enabled=true|false`).
pub async fn set_enabled(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, id)): Path<(String, String)>,
    axum::Form(form): axum::Form<EnabledForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let enabled = match form.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            let extras = ListExtras {
                alert: Some("Choose Enable or Disable: nothing was changed.".into()),
                subject: Some(id),
                ..ListExtras::default()
            };
            return list_page(
                &state,
                &console,
                &tenant,
                extras,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let reply = console
        .api(
            &state,
            Method::PATCH,
            &format!("{}/{id}", connectors_uri(&tenant)),
            Some(&json!({"enabled": enabled})),
        )
        .await;
    if reply.is_success() {
        let done = if enabled { "enabled" } else { "disabled" };
        return Ok(
            Redirect::to(&format!("/console/t/{tenant}/connectors?done={done}")).into_response(),
        );
    }
    action_failed(&state, &console, &tenant, &id, reply).await
}

/// The list again with what the API said, or the error page for a connector that is gone.
async fn action_failed(
    state: &AppState,
    console: &Console,
    tenant: &str,
    id: &str,
    reply: ApiReply,
) -> WebResult<Response> {
    if let Some(refusal) = reply.refusal() {
        return Err(refusal);
    }
    let status = reply.status;
    let extras = ListExtras {
        alert: Some(format!(
            "{}.",
            capitalise(&reply.detail()).trim_end_matches('.')
        )),
        subject: Some(id.to_string()),
        ..ListExtras::default()
    };
    list_page(state, console, tenant, extras, status).await
}

#[derive(Deserialize, Default)]
pub struct TestForm {
    /// `edit`: show the result on the connector's page (the default is the list).
    #[serde(default)]
    back: String,
}

/// `POST /console/t/{tenant}/connectors/{id}/test`: test the connection and show each check.
pub async fn test(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, id)): Path<(String, String)>,
    axum::Form(form): axum::Form<TestForm>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let reply = console
        .api(
            &state,
            Method::POST,
            &format!("{}/{id}/test", connectors_uri(&tenant)),
            None,
        )
        .await;
    if let Some(refusal) = reply.refusal() {
        return Err(refusal);
    }
    let diagnostics = if reply.is_success() {
        let mut body = reply.body;
        body["connector"] = json!(id);
        body
    } else {
        json!({"connector": id, "ok": false, "checks": [],
               "error": format!("{}.", capitalise(&reply.detail()).trim_end_matches('.'))})
    };
    if form.back == "edit" {
        return connector_page(&state, &console, &tenant, &id, Some(diagnostics)).await;
    }
    let extras = ListExtras {
        subject: Some(id),
        diagnostics: Some(diagnostics),
        ..ListExtras::default()
    };
    list_page(&state, &console, &tenant, extras, StatusCode::OK).await
}

/// `POST /console/t/{tenant}/connectors/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    console: Console,
    Path((tenant, id)): Path<(String, String)>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Manage)?;
    let reply = console
        .api(
            &state,
            Method::DELETE,
            &format!("{}/{id}", connectors_uri(&tenant)),
            None,
        )
        .await;
    if reply.is_success() {
        return Ok(
            Redirect::to(&format!("/console/t/{tenant}/connectors?done=deleted")).into_response(),
        );
    }
    action_failed(&state, &console, &tenant, &id, reply).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"object","required":["url","tags"],"properties":{
        "url":{"type":"string","format":"uri","title":"URL"},
        "mode":{"type":"string","enum":["a","b"],"default":"a"},
        "timeout_ms":{"type":"integer","minimum":1,"maximum":10},
        "ratio":{"type":"number"},
        "on":{"type":"boolean","default":true},
        "tags":{"type":"array","items":{"type":"string"}},
        "extra":{"type":"object"}}}"#;

    #[test]
    fn fields_follow_the_schema_order_and_types() {
        let fields = fields_of(SCHEMA);
        let kinds: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.key.as_str(), f.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("url", "url"),
                ("mode", "select"),
                ("timeout_ms", "integer"),
                ("ratio", "number"),
                ("on", "checkbox"),
                ("tags", "lines"),
                ("extra", "json"),
            ]
        );
        assert!(fields[0].required && fields[5].required && !fields[1].required);
        assert_eq!(fields[0].title, "URL");
        assert_eq!(fields[1].title, "mode");
    }

    #[test]
    fn text_becomes_typed_json_by_the_schema() {
        let fields = fields_of(SCHEMA);
        let form = Submitted::from_pairs(vec![
            ("config.url".into(), " https://x.example ".into()),
            ("config.mode".into(), "".into()),
            ("config.timeout_ms".into(), "7".into()),
            ("config.ratio".into(), "0.5".into()),
            ("config.tags".into(), "one\n\n two \n".into()),
            ("config.extra".into(), r#"{"k":1}"#.into()),
        ]);
        let mut state = FormState::default();
        let keep = json!({"legacy": 1, "url": "old"});
        let config = typed_config(&fields, &form, &mut state, keep.as_object().unwrap());
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        assert_eq!(
            Value::Object(config),
            json!({"url": "https://x.example", "timeout_ms": 7, "ratio": 0.5, "on": false,
                   "tags": ["one", "two"], "extra": {"k": 1}, "legacy": 1})
        );
    }

    #[test]
    fn text_that_cannot_be_typed_is_an_error_beside_its_field() {
        let fields = fields_of(SCHEMA);
        let form = Submitted::from_pairs(vec![
            ("config.timeout_ms".into(), "soon".into()),
            ("config.ratio".into(), "half".into()),
        ]);
        let mut state = FormState::default();
        typed_config(&fields, &form, &mut state, &Map::new());
        assert_eq!(state.errors["config.timeout_ms"], "must be a whole number");
        assert_eq!(state.errors["config.ratio"], "must be a number");
        assert_eq!(state.errors["config.url"], "is required");
        assert_eq!(state.errors["config.tags"], "is required");
        assert_eq!(state.values["timeout_ms"], "soon", "shown again as typed");
    }

    #[test]
    fn secrets_are_set_kept_or_removed() {
        let fields = fields_of(
            r#"{"properties":{"a":{"type":"string"},"b":{"type":"string"},"c":{"type":"string"}}}"#,
        );
        let form = Submitted::from_pairs(vec![
            ("secret.a".into(), "s3cret".into()),
            ("secret.b".into(), "".into()),
            ("remove_secret.c".into(), "on".into()),
        ]);
        let mut state = FormState::default();
        let sent = secrets_to_send(&fields, &form, &mut state, true);
        assert_eq!(Value::Object(sent), json!({"a": "s3cret", "c": null}));
        let mut state = FormState::default();
        let sent = secrets_to_send(&fields, &form, &mut state, false);
        assert_eq!(
            Value::Object(sent),
            json!({"a": "s3cret"}),
            "no removal when adding"
        );
    }
}
