//! This connector's configuration: the JSON Schemas an administrator's form is rendered from,
//! and the few keys the plugin itself reads. The host reads the connection keys (`url`,
//! `starttls`, `bind_dn`, `ca_file`, `tls_verify`, `timeout_ms`, `pool_size`) and the
//! `bind_password` secret to open its sessions; the plugin reads where users live
//! (`base_dn`, `group_dn`) and, for messages only, `url` and `bind_dn`.

pub use latchkey_plugin_sdk::optional_config as optional;
use latchkey_plugin_sdk::{ConnectorError, require_config};

/// The tenant configuration (JSON Schema draft 2020-12).
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Active Directory (LDAP)",
  "type": "object",
  "required": ["url", "base_dn", "bind_dn"],
  "properties": {
    "url": {
      "type": "string",
      "title": "Domain controller URL",
      "description": "The domain controller (or the domain's DNS name) to connect to: ldaps://dc.corp.example:636, or ldap://dc.corp.example:389 with StartTLS turned on. Unencrypted LDAP is refused.",
      "pattern": "^ldaps?://",
      "examples": ["ldaps://dc.corp.example:636"]
    },
    "starttls": {
      "type": "boolean",
      "title": "Use StartTLS",
      "description": "Upgrade an ldap:// connection to TLS with StartTLS before binding. Leave off for ldaps:// URLs.",
      "default": false
    },
    "base_dn": {
      "type": "string",
      "title": "Users' base DN",
      "description": "Where users are searched, with everything below it: the OU holding the people whose passwords Latchkey manages, e.g. OU=Staff,DC=corp,DC=example.",
      "minLength": 1,
      "examples": ["OU=Staff,DC=corp,DC=example"]
    },
    "bind_dn": {
      "type": "string",
      "title": "Service account DN",
      "description": "The distinguished name of the service account Latchkey binds as, e.g. CN=svc-latchkey,OU=Service Accounts,DC=corp,DC=example. It needs Reset Password on the users' OU, and write access to lockoutTime and pwdLastSet for unlocking and forcing a change at next logon.",
      "minLength": 1,
      "examples": ["CN=svc-latchkey,OU=Service Accounts,DC=corp,DC=example"]
    },
    "ca_file": {
      "type": "string",
      "title": "CA certificate file",
      "description": "Path, on the Latchkey server, of a PEM file with the certificate authority that issued the domain controller's certificate (your enterprise CA). Without it, the server's own trusted authorities are used."
    },
    "tls_verify": {
      "type": "boolean",
      "title": "Verify the DC's certificate",
      "description": "Check that the domain controller's certificate is issued by a trusted authority and names the host in the URL. Turning this off is insecure: anyone on the network path could pose as the DC and receive every password Latchkey sets. Use it only for a short test.",
      "default": true
    },
    "group_dn": {
      "type": "string",
      "title": "Restrict to group (optional)",
      "description": "When set, only members of this group, directly or through nested groups, are in scope: found, imported and managed. E.g. CN=Latchkey Users,OU=Groups,DC=corp,DC=example."
    },
    "timeout_ms": {
      "type": "integer",
      "title": "Timeout (milliseconds)",
      "description": "How long to wait for the domain controller to connect or answer one operation.",
      "minimum": 1
    },
    "pool_size": {
      "type": "integer",
      "title": "Connections kept open",
      "description": "How many bound LDAP connections Latchkey keeps open to the domain controller for this connector.",
      "minimum": 1
    }
  }
}"#;

/// The secrets the host attaches; they never reach the plugin.
pub const SECRETS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Active Directory (LDAP) secrets",
  "type": "object",
  "required": ["bind_password"],
  "properties": {
    "bind_password": {
      "type": "string",
      "title": "Service account password",
      "description": "The password of the service account in bind_dn. Latchkey stores it encrypted and uses it only to bind; it cannot be read back.",
      "writeOnly": true,
      "minLength": 1
    }
  }
}"#;

/// Which users are in scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// Only members (nested) of this group, when set.
    pub group_dn: Option<String>,
}

impl Scope {
    /// The scope from the tenant's configuration.
    pub fn from_config() -> Result<Self, ConnectorError> {
        Ok(Self {
            base_dn: require_config("base_dn")?.trim().to_string(),
            group_dn: optional("group_dn"),
        })
    }

    /// "under <base_dn>" or "under <base_dn> in group <group_dn>", for messages.
    pub fn describe(&self) -> String {
        match &self.group_dn {
            Some(group) => format!("under {} in group {group}", self.base_dn),
            None => format!("under {}", self.base_dn),
        }
    }
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
                "base_dn",
                "bind_dn",
                "ca_file",
                "group_dn",
                "pool_size",
                "starttls",
                "timeout_ms",
                "tls_verify",
                "url"
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
            serde_json::json!(["url", "base_dn", "bind_dn"])
        );
        assert_eq!(properties["tls_verify"]["default"], true);
        assert!(
            properties["tls_verify"]["description"]
                .as_str()
                .unwrap()
                .contains("insecure")
        );
        assert_eq!(properties["timeout_ms"]["type"], "integer");
        assert_eq!(properties["starttls"]["type"], "boolean");
    }

    #[test]
    fn the_secrets_schema_has_a_write_only_bind_password() {
        let schema: serde_json::Value = serde_json::from_str(SECRETS_SCHEMA).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["bind_password"]));
        assert_eq!(schema["properties"]["bind_password"]["writeOnly"], true);
    }

    #[test]
    fn scope_in_words() {
        let mut scope = Scope {
            base_dn: "OU=Staff,DC=corp,DC=test".into(),
            group_dn: None,
        };
        assert_eq!(scope.describe(), "under OU=Staff,DC=corp,DC=test");
        scope.group_dn = Some("CN=G,DC=corp,DC=test".into());
        assert_eq!(
            scope.describe(),
            "under OU=Staff,DC=corp,DC=test in group CN=G,DC=corp,DC=test"
        );
    }
}
