//! The suite's configuration file (TOML): what a tenant would set for the connector, the
//! secrets the host would attach, the capabilities to grant and what the suite may touch.
//!
//! ```toml
//! grant = ["log", "config", "ldap"]      # optional; default: what the manifest requests
//!
//! [connector]                            # the tenant configuration (any TOML values)
//! url = "ldaps://dc.corp.example:636"
//!
//! [secrets]                              # strings, or NAME_file = "path" (read, never printed)
//! bind_password_file = "/run/secrets/bind-password"
//!
//! [test]
//! account = "latchkey-test"              # optional: without it the writes are skipped
//! deadline_ms = 10000                    # optional limits of every call
//! memory_mib = 64
//! max_pages = 20                         # how many pages the paging check follows
//! ```
//!
//! It owns reading and checking that file. Secret values go straight into [`Secrets`]; they
//! are never printed, and errors name the secret, never its value.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::capabilities::secrets::Secrets;
use crate::capabilities::{Capability, CapabilitySet};
use crate::runtime::Limits;

/// The suffix of a secret read from a file.
const FILE_SUFFIX: &str = "_file";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    grant: Option<Vec<Capability>>,
    #[serde(default)]
    connector: toml::Table,
    #[serde(default)]
    secrets: toml::Table,
    #[serde(default)]
    test: RawTest,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTest {
    account: Option<String>,
    deadline_ms: Option<u64>,
    memory_mib: Option<usize>,
    max_pages: Option<u32>,
}

/// A checked configuration file.
pub struct SuiteConfig {
    /// The connector's non-secret configuration, as JSON (what the `config` capability serves).
    pub connector: Map<String, Value>,
    /// The secrets by name.
    pub secrets: Secrets,
    /// The capabilities to grant; none means what the manifest requests.
    pub grant: Option<CapabilitySet>,
    /// The account the suite may search for and reset.
    pub account: Option<String>,
    /// The limits of every call.
    pub limits: Limits,
    /// How many pages the paging check follows before it stops.
    pub max_pages: u32,
}

impl SuiteConfig {
    /// Read and check the file at `path`; relative `*_file` paths are taken from its directory.
    pub fn read(path: &Path) -> anyhow::Result<SuiteConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        SuiteConfig::parse(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// Parse `text`; relative `*_file` paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<SuiteConfig> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let connector = match serde_json::to_value(&raw.connector)? {
            Value::Object(map) => map,
            _ => unreachable!("a TOML table is a JSON object"),
        };
        let mut secrets = Secrets::new();
        for (key, value) in &raw.secrets {
            let Value::String(value) = serde_json::to_value(value)? else {
                anyhow::bail!("[secrets] {key} must be a string");
            };
            let (name, secret) = match key.strip_suffix(FILE_SUFFIX) {
                Some(name) => (name, read_secret_file(&base.join(&value), key)?),
                None => (key.as_str(), SecretString::from(value)),
            };
            anyhow::ensure!(
                secrets.get(name).is_none(),
                "[secrets] gives `{name}` twice (as a value and as `{name}{FILE_SUFFIX}`)"
            );
            secrets.insert(name, secret);
        }
        let defaults = Limits::default();
        let limits = Limits {
            deadline: raw
                .test
                .deadline_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.deadline),
            memory_bytes: raw
                .test
                .memory_mib
                .map(|mib| mib << 20)
                .unwrap_or(defaults.memory_bytes),
        };
        anyhow::ensure!(
            !limits.deadline.is_zero(),
            "[test] deadline_ms must be above 0"
        );
        let account = raw.test.account.map(|a| a.trim().to_string());
        anyhow::ensure!(
            account.as_deref() != Some(""),
            "[test] account is empty: name an account, or leave the key out to skip the writes"
        );
        Ok(SuiteConfig {
            connector,
            secrets,
            grant: raw.grant.map(|g| g.into_iter().collect()),
            account,
            limits,
            max_pages: raw.test.max_pages.unwrap_or(20).max(1),
        })
    }
}

/// A secret read from a file, without the line end an editor leaves.
fn read_secret_file(path: &Path, key: &str) -> anyhow::Result<SecretString> {
    let mut text = std::fs::read_to_string(path)
        .with_context(|| format!("[secrets] {key}: reading {}", path.display()))?;
    let kept = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(kept);
    Ok(SecretString::from(text))
}

/// Every capability, for a component tested without a manifest and without a grant.
pub fn everything() -> CapabilitySet {
    Capability::ALL.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn a_full_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret-Value\n").unwrap();
        let config = SuiteConfig::parse(
            r#"
            grant = ["log", "ldap"]
            [connector]
            url = "ldaps://dc:636"
            timeout_ms = 5000
            [secrets]
            bind_password_file = "pw"
            other = "inline"
            [test]
            account = " jdoe "
            deadline_ms = 2500
            "#,
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.connector["url"], "ldaps://dc:636");
        assert_eq!(config.connector["timeout_ms"], 5000);
        let password = config.secrets.get("bind_password").unwrap();
        assert_eq!(password.expose_secret(), "s3cret-Value");
        assert_eq!(
            config.secrets.get("other").unwrap().expose_secret(),
            "inline"
        );
        assert_eq!(config.grant.unwrap().to_string(), "log, ldap");
        assert_eq!(config.account.as_deref(), Some("jdoe"));
        assert_eq!(config.limits.deadline, Duration::from_millis(2500));
        assert_eq!(config.max_pages, 20);
    }

    #[test]
    fn an_empty_file_is_a_read_only_run_with_defaults() {
        let config = SuiteConfig::parse("", Path::new(".")).unwrap();
        assert!(config.connector.is_empty());
        assert!(config.grant.is_none());
        assert!(config.account.is_none());
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn mistakes_are_named_and_secrets_never_shown() {
        let error = SuiteConfig::parse("[tset]\naccount = \"x\"", Path::new("."))
            .err()
            .unwrap();
        assert!(format!("{error:#}").contains("tset"), "{error:#}");
        let error = SuiteConfig::parse("grant = [\"files\"]", Path::new("."))
            .err()
            .unwrap();
        assert!(format!("{error:#}").contains("files"), "{error:#}");
        let error = SuiteConfig::parse(
            "[secrets]\nbind_password = \"hunter2\"\nbind_password_file = \"/nonexistent\"",
            Path::new("."),
        )
        .err()
        .unwrap();
        let text = format!("{error:#}");
        assert!(text.contains("bind_password_file"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
