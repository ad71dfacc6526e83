//! This connector's configuration: the JSON Schemas an administrator's form is rendered from,
//! and the few keys the plugin itself reads.
//!
//! The host reads the connection keys (`tenant_id`, `client_id`, `cloud`, `graph_endpoint`,
//! `authority`, `timeout_ms`, `retry_budget_seconds`), the `client_secret` secret to acquire the
//! app's token, and `sync_timeout_seconds` to decide when a synced password is overdue. The
//! plugin reads `user_filter` (ANDed into searches) and, for messages only, `tenant_id`,
//! `client_id` and `sync_timeout_seconds`.

pub use latchkey_plugin_sdk::optional_config as optional;

/// The tenant configuration (JSON Schema draft 2020-12).
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Entra ID (Microsoft Graph)",
  "type": "object",
  "required": ["tenant_id", "client_id"],
  "properties": {
    "tenant_id": {
      "type": "string",
      "title": "Tenant",
      "description": "The Entra ID tenant whose users Latchkey manages: its tenant ID (a GUID, on the tenant's Overview page in the Entra admin center) or one of its verified domains, e.g. corp.example or contoso.onmicrosoft.com.",
      "pattern": "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+)$",
      "examples": ["72f988bf-86f1-41af-91ab-2d7cd011db47", "contoso.onmicrosoft.com"]
    },
    "client_id": {
      "type": "string",
      "title": "Application (client) ID",
      "description": "The application (client) ID of the app registration Latchkey signs in as, a GUID. The app needs the application permissions User.Read.All and User-PasswordProfile.ReadWrite.All (and Organization.Read.All for the directory-sync check) with admin consent, and the User Administrator role (Privileged Authentication Administrator to reset administrators' passwords).",
      "pattern": "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
      "examples": ["00000000-0000-0000-0000-000000000000"]
    },
    "cloud": {
      "type": "string",
      "title": "Cloud",
      "description": "The Microsoft cloud the tenant lives in: global (graph.microsoft.com, login.microsoftonline.com), us-gov (GCC High: graph.microsoft.us, login.microsoftonline.us), us-gov-dod (DoD: dod-graph.microsoft.us, login.microsoftonline.us) or china (operated by 21Vianet: microsoftgraph.chinacloudapi.cn, login.chinacloudapi.cn).",
      "enum": ["global", "us-gov", "us-gov-dod", "china"],
      "default": "global"
    },
    "graph_endpoint": {
      "type": "string",
      "title": "Graph endpoint override",
      "description": "For testing only: a Microsoft Graph endpoint to use instead of the cloud's (e.g. a local Graph emulator). Leave empty in production.",
      "format": "uri"
    },
    "authority": {
      "type": "string",
      "title": "Authority override",
      "description": "For testing only: the token authority to use instead of the cloud's; tokens are requested from {authority}/{tenant_id}/oauth2/v2.0/token. Leave empty in production.",
      "format": "uri"
    },
    "timeout_ms": {
      "type": "integer",
      "title": "Timeout (milliseconds)",
      "description": "How long to wait for Microsoft Graph (or the token endpoint) to answer one request.",
      "minimum": 100,
      "maximum": 60000,
      "default": 5000
    },
    "retry_budget_seconds": {
      "type": "integer",
      "title": "Throttling budget (seconds)",
      "description": "When Graph throttles (HTTP 429 with Retry-After), how many seconds in total Latchkey may wait and retry one call before reporting Graph as busy. Password writes are never retried blindly.",
      "minimum": 0,
      "maximum": 60,
      "default": 6
    },
    "sync_timeout_seconds": {
      "type": "integer",
      "title": "Password hash sync deadline (seconds)",
      "description": "For users synced from on-premises Active Directory: how long Latchkey waits for password hash sync to carry a password set on-premises into Entra ID before it reports the change as overdue.",
      "minimum": 1,
      "maximum": 604800,
      "default": 1800
    },
    "user_filter": {
      "type": "string",
      "title": "Extra user filter (optional)",
      "description": "An OData filter ANDed into every search for users, to narrow who is found and imported, e.g. accountEnabled eq true, or endsWith(mail,'@corp.example'). It narrows searches only; it does not restrict resets of accounts already imported.",
      "examples": ["accountEnabled eq true"]
    }
  }
}"#;

/// The secrets the host attaches; they never reach the plugin.
pub const SECRETS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Entra ID (Microsoft Graph) secrets",
  "type": "object",
  "required": ["client_secret"],
  "properties": {
    "client_secret": {
      "type": "string",
      "title": "Client secret",
      "description": "A client secret of the app registration in client_id (Certificates & secrets → New client secret; copy its Value, not its ID). Latchkey stores it encrypted and uses it only to acquire tokens; it cannot be read back, and the connector plugin never sees it.",
      "writeOnly": true,
      "minLength": 1
    }
  }
}"#;

/// How long the host waits for password hash sync when `sync_timeout_seconds` is not set.
pub const DEFAULT_SYNC_TIMEOUT_SECONDS: u64 = 1800;

/// The values of `sync_timeout_seconds` the host accepts (up to a week); others mean the
/// default, there and here.
pub const SYNC_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=7 * 86_400;

/// The administrator's extra search filter, if any.
pub fn user_filter() -> Option<String> {
    optional("user_filter")
}

/// `sync_timeout_seconds` as configured (a JSON number), or the default.
pub fn sync_timeout_seconds() -> u64 {
    sync_timeout_from(optional("sync_timeout_seconds").as_deref())
}

/// `sync_timeout_seconds` from its configured JSON text, as the host reads it.
pub fn sync_timeout_from(value: Option<&str>) -> u64 {
    value
        .and_then(|v| v.parse().ok())
        .filter(|seconds| SYNC_TIMEOUT_RANGE.contains(seconds))
        .unwrap_or(DEFAULT_SYNC_TIMEOUT_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_schema_names_every_key() {
        let schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        let properties = schema["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "authority",
                "client_id",
                "cloud",
                "graph_endpoint",
                "retry_budget_seconds",
                "sync_timeout_seconds",
                "tenant_id",
                "timeout_ms",
                "user_filter"
            ]
        );
        for (key, property) in properties {
            assert!(property["title"].is_string(), "{key} has a title");
            assert!(
                property["description"].is_string(),
                "{key} has a description"
            );
        }
        assert_eq!(
            schema["required"],
            serde_json::json!(["tenant_id", "client_id"])
        );
        assert_eq!(
            properties["cloud"]["enum"],
            serde_json::json!(["global", "us-gov", "us-gov-dod", "china"])
        );
        assert_eq!(properties["cloud"]["default"], "global");
        assert_eq!(
            properties["sync_timeout_seconds"]["default"],
            DEFAULT_SYNC_TIMEOUT_SECONDS
        );
        for key in ["graph_endpoint", "authority"] {
            assert_eq!(properties[key]["format"], "uri");
            assert!(
                properties[key]["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("For testing only"),
                "{key}"
            );
        }
        for key in ["timeout_ms", "retry_budget_seconds", "sync_timeout_seconds"] {
            assert_eq!(properties[key]["type"], "integer", "{key}");
        }
        assert_eq!(
            properties["sync_timeout_seconds"]["maximum"],
            *SYNC_TIMEOUT_RANGE.end()
        );
    }

    #[test]
    fn the_sync_timeout() {
        assert_eq!(sync_timeout_from(None), 1800);
        assert_eq!(sync_timeout_from(Some("600")), 600);
        for odd in ["0", "-5", "soon", "1.5", "604801"] {
            assert_eq!(sync_timeout_from(Some(odd)), 1800, "{odd}");
        }
    }

    #[test]
    fn the_id_patterns_accept_guids_and_domains() {
        let schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        let tenant = schema["properties"]["tenant_id"]["pattern"]
            .as_str()
            .unwrap();
        // The JSON unescaped the regex's backslashes: what a validator sees.
        assert!(tenant.contains(r"(\.[A-Za-z0-9]"));
        let client = schema["properties"]["client_id"]["pattern"]
            .as_str()
            .unwrap();
        assert!(client.starts_with("^[0-9A-Fa-f]{8}-"));
    }

    #[test]
    fn the_secrets_schema_has_a_write_only_client_secret() {
        let schema: serde_json::Value = serde_json::from_str(SECRETS_SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["client_secret"]));
        let secret = &schema["properties"]["client_secret"];
        assert_eq!(secret["writeOnly"], true);
        assert!(secret["description"].is_string());
    }
}
