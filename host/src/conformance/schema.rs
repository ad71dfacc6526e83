//! The JSON Schemas a plugin describes itself with: each must be JSON, a valid JSON Schema
//! (draft 2020-12), and compile; the configuration under test must satisfy the config schema,
//! and the secrets schema must name the secrets given.

use serde_json::Value;

/// A schema that is valid and compiled.
pub struct Schema {
    value: Value,
    validator: jsonschema::Validator,
}

/// Parse, check and compile `text`; the reason it is not a usable schema otherwise.
pub fn compile(text: &str) -> Result<Schema, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("it is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("it is JSON, but not an object".into());
    }
    jsonschema::draft202012::meta::validate(&value)
        .map_err(|e| format!("it is not a valid JSON Schema (draft 2020-12): {e}"))?;
    let validator = jsonschema::draft202012::new(&value)
        .map_err(|e| format!("it does not compile as a JSON Schema: {e}"))?;
    Ok(Schema { value, validator })
}

impl Schema {
    /// Every way `instance` breaks the schema (at most `max`), each with where.
    pub fn errors(&self, instance: &Value, max: usize) -> Vec<String> {
        self.validator
            .iter_errors(instance)
            .take(max)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at {at}: {e}")
                }
            })
            .collect()
    }

    /// What is wrong with giving secrets called `given` under this (secrets) schema: a name
    /// the schema does not know (when it lists its properties), or one it requires that is
    /// missing. Only names are compared; values never leave the secrets.
    pub fn secret_problems(&self, given: &[&str]) -> Vec<String> {
        let properties = self.value.get("properties").and_then(Value::as_object);
        let closed = self.value.get("additionalProperties") == Some(&Value::Bool(false));
        let mut problems = Vec::new();
        for &name in given {
            let named = properties.is_some_and(|p| p.contains_key(name));
            if !named && (closed || properties.is_some()) {
                problems.push(format!(
                    "the secrets schema does not name `{name}`, which [secrets] gives"
                ));
            }
        }
        let required = self.value.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !given.contains(&name) {
                problems.push(format!(
                    "the secrets schema requires `{name}`, which [secrets] does not give"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schema_must_be_json_and_a_valid_schema() {
        assert!(
            compile("{ url: string }")
                .err()
                .unwrap()
                .contains("not JSON")
        );
        assert!(compile("[1]").err().unwrap().contains("not an object"));
        let error = compile(r#"{"type":"objekt"}"#).err().unwrap();
        assert!(error.contains("not a valid JSON Schema"), "{error}");
        assert!(compile(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#).is_ok());
    }

    #[test]
    fn a_configuration_is_checked_with_where() {
        let schema = compile(
            r#"{"type":"object","required":["url"],
                "properties":{"url":{"type":"string","pattern":"^ldaps?://"},
                              "timeout_ms":{"type":"integer","minimum":1}}}"#,
        )
        .unwrap();
        assert!(
            schema
                .errors(&json!({"url": "ldaps://dc", "timeout_ms": 5}), 5)
                .is_empty()
        );
        let errors = schema.errors(&json!({"url": "http://dc", "timeout_ms": 0}), 5);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("at /url")),
            "{errors:?}"
        );
        let errors = schema.errors(&json!({}), 5);
        assert!(errors[0].contains("url"), "{errors:?}");
    }

    #[test]
    fn secrets_are_compared_by_name() {
        let schema = compile(
            r#"{"type":"object","required":["bind_password"],
                "properties":{"bind_password":{"type":"string"}}}"#,
        )
        .unwrap();
        assert!(schema.secret_problems(&["bind_password"]).is_empty());
        let problems = schema.secret_problems(&["bind_pasword"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("does not name `bind_pasword`"));
        assert!(problems[1].contains("requires `bind_password`"));
        let open = compile(r#"{"type":"object"}"#).unwrap();
        assert!(open.secret_problems(&["anything"]).is_empty());
    }
}
