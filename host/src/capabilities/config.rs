//! `config`: a connector's non-secret configuration, as the tenant's administrator set it.
//! Secrets are kept apart by the store and never appear here.

use serde_json::{Map, Value};

/// One top-level key: a JSON string unquoted, any other value as JSON text.
pub fn get(config: &Map<String, Value>, key: &str) -> Option<String> {
    config.get(key).map(|value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// The whole configuration as a JSON object.
pub fn get_all(config: &Map<String, Value>) -> String {
    Value::Object(config.clone()).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn strings_are_unquoted_and_other_values_are_json() {
        let config = json!({"url": "ldaps://dc:636", "timeout_ms": 500, "tls": {"verify": true}});
        let config = config.as_object().unwrap();
        assert_eq!(super::get(config, "url").as_deref(), Some("ldaps://dc:636"));
        assert_eq!(super::get(config, "timeout_ms").as_deref(), Some("500"));
        assert_eq!(
            super::get(config, "tls").as_deref(),
            Some(r#"{"verify":true}"#)
        );
        assert_eq!(super::get(config, "missing"), None);
        let all: serde_json::Value = serde_json::from_str(&super::get_all(config)).unwrap();
        assert_eq!(all["timeout_ms"], 500);
    }
}
