//! A connector's configuration and secrets checked against its plugin's schemas (the
//! `config-schema` and `secrets-schema` of `describe`, JSON Schema draft 2020-12) before
//! anything is stored: one `{field, message}` per problem, `field` being `config.<key>` or
//! `secrets.<name>`, in plain words that never quote a value (a secret must not leave).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// A plugin's schema (its `describe` text), compiled; `None` when it is not a usable schema
/// (logged: the conformance suite reports it to the plugin's author, and nothing is checked).
fn compile_schema(
    plugin: &crate::runtime::LoadedPlugin,
    which: &str,
    text: &str,
) -> Option<jsonschema::Validator> {
    let compiled = serde_json::from_str::<Value>(text)
        .map_err(|e| e.to_string())
        .and_then(|value| jsonschema::draft202012::new(&value).map_err(|e| e.to_string()));
    match compiled {
        Ok(validator) => Some(validator),
        Err(error) => {
            tracing::warn!(plugin = %plugin.manifest().id, which, %error,
                "a plugin's schema does not compile; values are not checked against it");
            None
        }
    }
}

fn json_type_name(kind: jsonschema::JsonType) -> &'static str {
    use jsonschema::JsonType as T;
    match kind {
        T::Null => "empty",
        T::Boolean => "true or false",
        T::Integer => "a whole number",
        T::Number => "a number",
        T::String => "text",
        T::Array => "a list",
        T::Object => "a set of named values (an object)",
    }
}

fn limit_text(limit: &Value) -> String {
    match limit {
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// A plain message for one way a value breaks its schema, to read after the field's name
/// ("… must be a whole number"). It never quotes the value (a secret's value must not leave).
fn schema_message(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::{TypeKind, ValidationErrorKind as Kind};
    match error.kind() {
        Kind::Type { kind } => {
            let names: Vec<&str> = match kind {
                TypeKind::Single(t) => vec![json_type_name(*t)],
                TypeKind::Multiple(set) => set.iter().map(json_type_name).collect(),
            };
            format!("must be {}", names.join(" or "))
        }
        Kind::Required { .. } => "is required".into(),
        Kind::Minimum { limit } => format!("must be at least {}", limit_text(limit)),
        Kind::Maximum { limit } => format!("must be at most {}", limit_text(limit)),
        Kind::ExclusiveMinimum { limit } => format!("must be more than {}", limit_text(limit)),
        Kind::ExclusiveMaximum { limit } => format!("must be less than {}", limit_text(limit)),
        Kind::MinLength { limit: 1 } => "must not be empty".into(),
        Kind::MinLength { limit } => format!("must be at least {limit} characters long"),
        Kind::MaxLength { limit } => format!("must be at most {limit} characters long"),
        Kind::MinItems { limit } => format!("must have at least {limit} entries"),
        Kind::MaxItems { limit } => format!("must have at most {limit} entries"),
        Kind::UniqueItems => "must not list the same entry twice".into(),
        Kind::Pattern { pattern } => {
            format!("is not in the expected form (it must match the pattern {pattern})")
        }
        Kind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            format!("must be one of: {}", options.join(", "))
        }
        Kind::Constant { expected_value } => format!("must be {expected_value}"),
        Kind::Format { format } if format == "uri" => {
            "must be a full URL, such as https://host.example/".into()
        }
        Kind::Format { format } => format!("must be a valid {format}"),
        Kind::MultipleOf { .. } => "is not a multiple of the step the schema asks for".into(),
        _ => {
            let keyword = error
                .schema_path()
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            format!("is not valid (it breaks the schema's `{keyword}` rule)")
        }
    }
}

/// The first segment of a JSON pointer, unescaped.
fn pointer_key(pointer: &str) -> Option<String> {
    let first = pointer.strip_prefix('/')?.split('/').next()?;
    Some(first.replace("~1", "/").replace("~0", "~"))
}

/// Every way `values` breaks `validator`, as `{field, message}` with `field` = `{prefix}.{key}`
/// (`required` names the missing key; an unknown key of a closed schema names itself).
fn schema_problems(
    validator: &jsonschema::Validator,
    prefix: &str,
    values: &Value,
    skip_required: bool,
) -> Vec<Value> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let mut problems = Vec::new();
    for error in validator.iter_errors(values).take(64) {
        let keys: Vec<String> = match error.kind() {
            Kind::Required { property } => {
                if skip_required {
                    continue;
                }
                vec![property.as_str().unwrap_or_default().to_string()]
            }
            Kind::AdditionalProperties { unexpected }
            | Kind::UnevaluatedProperties { unexpected } => {
                for key in unexpected {
                    problems.push(json!({"field": format!("{prefix}.{key}"),
                        "message": "is not a setting this plugin knows"}));
                }
                continue;
            }
            _ => vec![pointer_key(error.instance_path().as_str()).unwrap_or_default()],
        };
        for key in keys {
            let field = if key.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            let problem = json!({"field": field, "message": schema_message(&error)});
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// What is wrong with `config` under the plugin's config schema.
pub(super) fn config_problems(
    plugin: &crate::runtime::LoadedPlugin,
    config: &Map<String, Value>,
) -> Vec<Value> {
    match compile_schema(plugin, "config-schema", &plugin.info().config_schema) {
        Some(validator) => {
            schema_problems(&validator, "config", &Value::Object(config.clone()), false)
        }
        None => Vec::new(),
    }
}

/// What is wrong with the secrets given (`null` removes one, when updating): a name the
/// secrets schema does not list, a required one missing (creating) or removed (updating), or
/// a value breaking its rules. Messages never quote a value.
pub(super) fn secret_problems(
    plugin: &crate::runtime::LoadedPlugin,
    given: &Map<String, Value>,
    creating: bool,
) -> Vec<Value> {
    let text = &plugin.info().secrets_schema;
    let Ok(schema) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut problems = Vec::new();
    for (name, value) in given {
        let known = properties.is_some_and(|p| p.contains_key(name));
        if !known && (closed || properties.is_some()) {
            let names: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let takes = if names.is_empty() {
                "it takes no secrets".to_string()
            } else {
                format!("it takes: {}", names.join(", "))
            };
            problems.push(json!({"field": format!("secrets.{name}"),
                "message": format!("is not a secret this plugin takes ({takes})")}));
        } else if value.is_null() && required.contains(&name.as_str()) {
            problems.push(json!({"field": format!("secrets.{name}"),
                "message": "is required: it can be replaced, not removed"}));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let Some(validator) = compile_schema(plugin, "secrets-schema", text) else {
        return problems;
    };
    let values: Map<String, Value> = given
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    schema_problems(&validator, "secrets", &Value::Object(values), !creating)
}

/// 422 with one `errors` entry per problem, or nothing when there is none.
pub(super) fn refuse_problems(problems: Vec<Value>) -> Result<(), ApiError> {
    if problems.is_empty() {
        return Ok(());
    }
    let detail: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["field"].as_str().unwrap_or_default(),
                p["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "A field is not valid",
        detail.join("; "),
    )
    .with(json!({"errors": problems})))
}
