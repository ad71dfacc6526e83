//! This connector's configuration: the JSON Schemas an administrator's form is rendered from,
//! and the keys the plugin itself reads. The host reads the connection keys (`url`,
//! `starttls`, `bind_dn`, `ca_file`, `tls_verify`, `timeout_ms`, `pool_size`) and the
//! `bind_password` secret to open its sessions; the plugin reads where users live and how the
//! directory names things ([`Settings`]), and, for messages only, `url` and `bind_dn`.

pub use latchkey_plugin_sdk::optional_config as optional;
use latchkey_plugin_sdk::{ConnectorError, ErrorInfo, require_config};

/// The tenant configuration (JSON Schema draft 2020-12).
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OpenLDAP (ppolicy)",
  "type": "object",
  "required": ["url", "base_dn", "bind_dn"],
  "properties": {
    "url": {
      "type": "string",
      "title": "Server URL",
      "description": "The LDAP server: ldaps://ldap.corp.example:636, or ldap://ldap.corp.example:389 with StartTLS turned on. Unencrypted LDAP is refused.",
      "pattern": "^ldaps?://",
      "examples": ["ldaps://ldap.corp.example:636"]
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
      "description": "Where users are searched, with everything below it, e.g. ou=people,dc=corp,dc=example.",
      "minLength": 1,
      "examples": ["ou=people,dc=corp,dc=example"]
    },
    "bind_dn": {
      "type": "string",
      "title": "Service account DN",
      "description": "The DN Latchkey binds as, e.g. cn=svc-latchkey,ou=services,dc=corp,dc=example. It needs write access to users' userPassword and pwdReset (and pwdAccountLockedTime for unlocking), and read access to users and to the password policy entries. With write (not manage) access, ppolicy applies its rules to Latchkey's resets.",
      "minLength": 1,
      "examples": ["cn=svc-latchkey,ou=services,dc=corp,dc=example"]
    },
    "ca_file": {
      "type": "string",
      "title": "CA certificate file",
      "description": "Path, on the Latchkey server, of a PEM file with the certificate authority that issued the LDAP server's certificate. Without it, the server's own trusted authorities are used."
    },
    "tls_verify": {
      "type": "boolean",
      "title": "Verify the server's certificate",
      "description": "Check that the LDAP server's certificate is issued by a trusted authority and names the host in the URL. Turning this off is insecure: anyone on the network path could pose as the server and receive every password Latchkey sets. Use it only for a short test.",
      "default": true
    },
    "timeout_ms": {
      "type": "integer",
      "title": "Timeout (milliseconds)",
      "description": "How long to wait for the server to connect or answer one operation.",
      "minimum": 1
    },
    "pool_size": {
      "type": "integer",
      "title": "Connections kept open",
      "description": "How many bound LDAP connections Latchkey keeps open to the server for this connector.",
      "minimum": 1
    },
    "user_filter": {
      "type": "string",
      "title": "Users filter",
      "description": "An RFC 4515 filter selecting the entries that are people, combined with every search.",
      "default": "(objectClass=inetOrgPerson)"
    },
    "policy_dn": {
      "type": "string",
      "title": "Default password policy DN",
      "description": "The pwdPolicy entry the server's ppolicy_default names, e.g. cn=default,ou=policies,dc=corp,dc=example. A user's own pwdPolicySubentry takes precedence. Without either, the connector reports that no policy applies."
    },
    "username_attribute": {
      "type": "string",
      "title": "Username attribute",
      "description": "The attribute holding the logon name.",
      "default": "uid"
    },
    "display_name_attribute": {
      "type": "string",
      "title": "Display name attribute",
      "description": "The attribute holding the person's name (cn or displayName).",
      "default": "cn"
    },
    "mail_attribute": {
      "type": "string",
      "title": "E-mail attribute",
      "description": "The attribute holding the primary e-mail address.",
      "default": "mail"
    },
    "id_attribute": {
      "type": "string",
      "title": "Stable identifier attribute",
      "description": "The attribute that identifies an account for good, even when it is renamed or moved (entryUUID on OpenLDAP, nsUniqueId on 389 Directory Server).",
      "default": "entryUUID"
    },
    "must_change_sets_pwd_reset": {
      "type": "boolean",
      "title": "\"Must change at next logon\" sets pwdReset",
      "description": "Set pwdReset: TRUE on the user after a reset that must be changed at next logon (ppolicy honours it when the policy has pwdMustChange: TRUE).",
      "default": true
    },
    "user_change_method": {
      "type": "string",
      "title": "How users change their own password",
      "description": "password-modify: the Password Modify extended operation (RFC 3062), bound as the user. delete-add: a modify that deletes the old value and adds the new one, bound as the user.",
      "enum": ["password-modify", "delete-add"],
      "default": "password-modify"
    }
  }
}"#;

/// The secrets the host attaches; they never reach the plugin.
pub const SECRETS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OpenLDAP (ppolicy) secrets",
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

/// How a user changes their own password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeMethod {
    /// The Password Modify extended operation (RFC 3062).
    PasswordModify,
    /// A modify deleting the old value and adding the new one.
    DeleteAdd,
}

/// What the plugin reads from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub base_dn: String,
    pub user_filter: String,
    pub policy_dn: Option<String>,
    pub username_attribute: String,
    pub display_name_attribute: String,
    pub mail_attribute: String,
    pub id_attribute: String,
    pub must_change_sets_pwd_reset: bool,
    pub change_method: ChangeMethod,
}

fn invalid(message: String) -> ConnectorError {
    ConnectorError::InvalidConfig(ErrorInfo {
        message,
        directory_text: None,
    })
}

/// Whether `name` is an LDAP attribute description without options: a name (letter, then
/// letters, digits, hyphens) or a numeric OID. Anything else could change a filter's meaning.
pub fn is_attribute_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() => bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-'),
        Some(b) if b.is_ascii_digit() => name
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

fn attribute(key: &str, value: Option<String>, default: &str) -> Result<String, ConnectorError> {
    let name = value.unwrap_or_else(|| default.to_string());
    if is_attribute_name(&name) {
        Ok(name)
    } else {
        Err(invalid(format!(
            "`{key}` is {name:?}, which is not an LDAP attribute name (letters, digits and \
             hyphens, starting with a letter); correct it in the connector's configuration"
        )))
    }
}

fn boolean(key: &str, value: Option<String>, default: bool) -> Result<bool, ConnectorError> {
    match value.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(invalid(format!(
            "`{key}` must be true or false, not {other}"
        ))),
    }
}

impl Settings {
    /// The settings from the tenant's configuration.
    pub fn from_config() -> Result<Self, ConnectorError> {
        Self::parse(require_config("base_dn")?, optional)
    }

    /// The settings from `base_dn` and a lookup of the other keys (trimmed, blank = absent).
    pub fn parse(
        base_dn: String,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectorError> {
        let base_dn = base_dn.trim().to_string();
        if base_dn.is_empty() {
            return Err(invalid(
                "`base_dn` is empty; set it to the DN under which users live".into(),
            ));
        }
        let user_filter =
            get("user_filter").unwrap_or_else(|| "(objectClass=inetOrgPerson)".to_string());
        if !(user_filter.starts_with('(') && user_filter.ends_with(')')) {
            return Err(invalid(format!(
                "`user_filter` {user_filter:?} is not an LDAP filter: it must be enclosed in \
                 parentheses, e.g. (objectClass=inetOrgPerson)"
            )));
        }
        let change_method = match get("user_change_method").as_deref() {
            None | Some("password-modify") => ChangeMethod::PasswordModify,
            Some("delete-add") => ChangeMethod::DeleteAdd,
            Some(other) => {
                return Err(invalid(format!(
                    "`user_change_method` is {other:?}; use \"password-modify\" or \"delete-add\""
                )));
            }
        };
        Ok(Self {
            base_dn,
            user_filter,
            policy_dn: get("policy_dn"),
            username_attribute: attribute("username_attribute", get("username_attribute"), "uid")?,
            display_name_attribute: attribute(
                "display_name_attribute",
                get("display_name_attribute"),
                "cn",
            )?,
            mail_attribute: attribute("mail_attribute", get("mail_attribute"), "mail")?,
            id_attribute: attribute("id_attribute", get("id_attribute"), "entryUUID")?,
            must_change_sets_pwd_reset: boolean(
                "must_change_sets_pwd_reset",
                get("must_change_sets_pwd_reset"),
                true,
            )?,
            change_method,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, ConnectorError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::parse("ou=people,dc=example,dc=test".into(), |key| {
            map.get(key).cloned()
        })
    }

    #[test]
    fn the_config_schema_names_every_key() {
        let schema: serde_json::Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "base_dn",
                "bind_dn",
                "ca_file",
                "display_name_attribute",
                "id_attribute",
                "mail_attribute",
                "must_change_sets_pwd_reset",
                "policy_dn",
                "pool_size",
                "starttls",
                "timeout_ms",
                "tls_verify",
                "url",
                "user_change_method",
                "user_filter",
                "username_attribute",
            ]
        );
        for (key, property) in properties {
            assert!(property["title"].is_string(), "{key} has a title");
            assert!(
                property["description"].is_string(),
                "{key} has a description"
            );
        }
        let secrets: serde_json::Value = serde_json::from_str(SECRETS_SCHEMA).unwrap();
        assert_eq!(secrets["properties"]["bind_password"]["writeOnly"], true);
    }

    #[test]
    fn defaults() {
        let settings = parse(&[]).unwrap();
        assert_eq!(
            settings,
            Settings {
                base_dn: "ou=people,dc=example,dc=test".into(),
                user_filter: "(objectClass=inetOrgPerson)".into(),
                policy_dn: None,
                username_attribute: "uid".into(),
                display_name_attribute: "cn".into(),
                mail_attribute: "mail".into(),
                id_attribute: "entryUUID".into(),
                must_change_sets_pwd_reset: true,
                change_method: ChangeMethod::PasswordModify,
            }
        );
    }

    #[test]
    fn overrides_and_refusals() {
        let settings = parse(&[
            ("display_name_attribute", "displayName"),
            ("must_change_sets_pwd_reset", "false"),
            ("user_change_method", "delete-add"),
            ("id_attribute", "1.3.6.1.1.16.4"),
        ])
        .unwrap();
        assert_eq!(settings.display_name_attribute, "displayName");
        assert!(!settings.must_change_sets_pwd_reset);
        assert_eq!(settings.change_method, ChangeMethod::DeleteAdd);
        assert_eq!(settings.id_attribute, "1.3.6.1.1.16.4");

        for bad in [
            ("username_attribute", "uid)(objectClass=*"),
            ("mail_attribute", "mail;binary"),
            ("id_attribute", "1..2"),
            ("must_change_sets_pwd_reset", "yes"),
            ("user_change_method", "modify"),
            ("user_filter", "objectClass=person"),
        ] {
            let Err(ConnectorError::InvalidConfig(info)) = parse(&[bad]) else {
                panic!("{bad:?} must be refused")
            };
            assert!(info.message.contains(bad.0), "{}", info.message);
        }
    }
}
