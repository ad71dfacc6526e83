//! The LDAP settings of one connector, checked before any connection is made: `url`,
//! `starttls`, `ca_file`, `tls_verify`, `bind_dn`, `timeout_ms` and `pool_size` from its
//! configuration, `bind_password` from its secrets.
//!
//! It owns turning what an administrator typed into a validated [`LdapSettings`], and saying in
//! one sentence which key is wrong and what to do when it is. It must never connect, never
//! allow plain (unencrypted) LDAP, and never put the bind password into an error, a log or a
//! `Debug` output.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::tls;
use crate::capabilities::secrets::Secrets;

/// The timeout when `timeout_ms` is not set.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// The values `timeout_ms` may take.
pub const TIMEOUT_MS_RANGE: RangeInclusive<u64> = 100..=120_000;
/// The pool size when `pool_size` is not set.
pub const DEFAULT_POOL_SIZE: u64 = 4;
/// The values `pool_size` may take.
pub const POOL_SIZE_RANGE: RangeInclusive<u64> = 1..=32;
/// The most entries one search may return to a plugin, whatever it asks for.
pub const MAX_SEARCH_ENTRIES: usize = 10_000;
/// The most bytes (DNs, attribute names and values) one search may return to a plugin.
pub const MAX_SEARCH_BYTES: usize = 16 << 20;

/// Settings that cannot work, with a sentence naming the key and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLdapSettings(String);

impl InvalidLdapSettings {
    pub(super) fn new(sentence: impl Into<String>) -> InvalidLdapSettings {
        InvalidLdapSettings(sentence.into())
    }

    /// The sentence for the administrator.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The host's caps on what one search may bring back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    /// The most entries (default [`MAX_SEARCH_ENTRIES`]).
    pub max_entries: usize,
    /// The most bytes of DNs, attribute names and values (default [`MAX_SEARCH_BYTES`]).
    pub max_bytes: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            max_entries: MAX_SEARCH_ENTRIES,
            max_bytes: MAX_SEARCH_BYTES,
        }
    }
}

/// The server of a connector: `ldaps://host:port`, or `ldap://host:port` upgraded with StartTLS.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    ldaps: bool,
    host: String,
    port: u16,
}

impl ServerUrl {
    fn parse(text: &str, starttls: bool) -> Result<ServerUrl, InvalidLdapSettings> {
        let example = "e.g. \"ldaps://dc1.corp.example:636\"";
        let lower = text.to_ascii_lowercase();
        let (ldaps, rest) = if lower.starts_with("ldaps://") {
            (true, &text["ldaps://".len()..])
        } else if lower.starts_with("ldap://") {
            (false, &text["ldap://".len()..])
        } else {
            return Err(InvalidLdapSettings::new(format!(
                "`url` = {text:?} is not an LDAP address: it must start with ldaps:// \
                 ({example}), or with ldap:// together with `starttls: true`"
            )));
        };
        if ldaps && starttls {
            return Err(InvalidLdapSettings::new(format!(
                "`starttls: true` upgrades a plain ldap:// connection, but `url` = {text:?} \
                 already uses ldaps://: remove `starttls`, or use an ldap:// url"
            )));
        }
        if !ldaps && !starttls {
            return Err(InvalidLdapSettings::new(format!(
                "`url` = {text:?} is plain LDAP, which would send the service account's password \
                 unencrypted (and Active Directory refuses such binds): use ldaps:// ({example}), \
                 or set `starttls: true` to upgrade the ldap:// connection with StartTLS"
            )));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(InvalidLdapSettings::new(format!(
                "`url` = {text:?} must name only the server (scheme, host and optional port), \
                 {example}: put the search base in `base_dn`, not in the url"
            )));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            InvalidLdapSettings::new(format!(
                "`url` = {text:?} has no valid host name: write the DC's name or address after \
                 the scheme, {example}"
            ))
        })?;
        let port = match port {
            None => {
                if ldaps {
                    636
                } else {
                    389
                }
            }
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(InvalidLdapSettings::new(format!(
                        "`url` = {text:?} has an invalid port {port:?}: use a number from 1 to \
                         65535, or leave it out for the default ({})",
                        if ldaps { 636 } else { 389 }
                    )));
                }
            },
        };
        Ok(ServerUrl {
            ldaps,
            host: host.to_string(),
            port,
        })
    }

    /// The URL ldap3 connects to.
    pub(super) fn connect_url(&self) -> String {
        let scheme = if self.ldaps { "ldaps" } else { "ldap" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// The host name or address, as the DC's certificate must name it.
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    /// `host:port`.
    pub(super) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub(super) fn is_ldaps(&self) -> bool {
        self.ldaps
    }
}

/// `host[:port]`, `[v6][:port]`; `None` when the host is empty or has characters no host name
/// or address has.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&authority[..v6.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_name = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    (host.starts_with('[') || valid_name(host)).then_some((host, port))
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.connect_url())?;
        if !self.ldaps {
            f.write_str(" (StartTLS)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What the DC's certificate is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Trust {
    /// The CA certificates in `ca_file`.
    CaFile(PathBuf),
    /// The operating system's trust store (no `ca_file`).
    System,
    /// Nothing: `tls_verify: false`. TLS is still required.
    Unverified,
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::CaFile(path) => write!(f, "a CA in ca_file={}", path.display()),
            Trust::System => {
                f.write_str("a CA in the operating system's trust store (no ca_file is set)")
            }
            Trust::Unverified => f.write_str("anything (tls_verify is false)"),
        }
    }
}

/// A connector's LDAP settings, checked.
#[derive(Clone)]
pub struct LdapSettings {
    pub(super) url: ServerUrl,
    pub(super) trust: Trust,
    pub(super) tls: Arc<rustls::ClientConfig>,
    pub(super) bind_dn: String,
    pub(super) bind_password: SecretString,
    pub(super) timeout: Duration,
    pub(super) pool_size: usize,
    pub(super) limits: SearchLimits,
}

impl LdapSettings {
    /// Checks a connector's configuration and secrets, and loads the CA certificates the DC's
    /// certificate must chain to (`ca_file`, else the operating system's trust store).
    pub fn from_connector(
        config: &Map<String, Value>,
        secrets: &Secrets,
    ) -> Result<LdapSettings, InvalidLdapSettings> {
        let url = required_string(
            config,
            "url",
            "the DC's address, e.g. \"ldaps://dc1.corp.example:636\" (or an ldap:// address \
             with `starttls: true`)",
        )?;
        let starttls = optional_bool(config, "starttls", false)?;
        let url = ServerUrl::parse(&url, starttls)?;
        let tls_verify = optional_bool(config, "tls_verify", true)?;
        let ca_file = optional_string(config, "ca_file")?;
        let trust = match (tls_verify, ca_file) {
            (false, _) => Trust::Unverified,
            (true, None) => Trust::System,
            (true, Some(path)) => {
                let path = PathBuf::from(path);
                if !path.is_absolute() {
                    return Err(InvalidLdapSettings::new(format!(
                        "`ca_file` = {:?} is not an absolute path: give the full path of a PEM \
                         file holding the CA certificate(s) that issued the DC's certificate",
                        path.display().to_string()
                    )));
                }
                Trust::CaFile(path)
            }
        };
        let bind_dn = required_string(
            config,
            "bind_dn",
            "the service account's distinguished name, e.g. \
             \"CN=svc-latchkey,CN=Users,DC=corp,DC=example\"",
        )?;
        let bind_password = match secrets.get("bind_password") {
            Some(password) if !secrecy::ExposeSecret::expose_secret(password).is_empty() => {
                password.clone()
            }
            Some(_) => {
                return Err(InvalidLdapSettings::new(
                    "the secret `bind_password` is empty: set it to the service account's \
                     password (an empty password would bind anonymously)",
                ));
            }
            None => {
                return Err(InvalidLdapSettings::new(
                    "the secret `bind_password` is missing: set the service account's password \
                     as this connector's `bind_password` secret",
                ));
            }
        };
        let timeout_ms = optional_number(
            config,
            "timeout_ms",
            DEFAULT_TIMEOUT_MS,
            TIMEOUT_MS_RANGE,
            "milliseconds",
        )?;
        let pool_size = optional_number(
            config,
            "pool_size",
            DEFAULT_POOL_SIZE,
            POOL_SIZE_RANGE,
            "connections",
        )?;
        let tls = tls::client_config(&trust)?;
        Ok(LdapSettings {
            url,
            trust,
            tls,
            bind_dn,
            bind_password,
            timeout: Duration::from_millis(timeout_ms),
            pool_size: pool_size as usize,
            limits: SearchLimits::default(),
        })
    }

    /// The same settings with other caps on what a search may bring back.
    pub fn with_search_limits(mut self, limits: SearchLimits) -> LdapSettings {
        self.limits = limits;
        self
    }

    /// The server, as messages name it (`ldaps://dc1:636`, `ldap://dc1:389 (StartTLS)`).
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// The connect timeout and each operation's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The most connections bound as the service account at once.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Whether the DC's certificate is verified (`tls_verify`, default true).
    pub fn verifies_certificate(&self) -> bool {
        self.trust != Trust::Unverified
    }

    pub(super) fn timeout_ms(&self) -> u128 {
        self.timeout.as_millis()
    }
}

impl fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("trust", &self.trust)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        other => other.to_string(),
    }
}

fn required_string(
    config: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<String, InvalidLdapSettings> {
    match optional_string(config, key)? {
        Some(value) => Ok(value),
        None => Err(InvalidLdapSettings::new(format!(
            "the LDAP setting `{key}` is missing: set it to {what}"
        ))),
    }
}

/// A non-empty string, or `None` when the key is absent, null or an empty string.
fn optional_string(
    config: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, InvalidLdapSettings> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(InvalidLdapSettings::new(format!(
            "`{key}` must be a string, not {}",
            describe(other)
        ))),
    }
}

fn optional_bool(
    config: &Map<String, Value>,
    key: &str,
    default: bool,
) -> Result<bool, InvalidLdapSettings> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(InvalidLdapSettings::new(format!(
            "`{key}` must be true or false (default {default}), not {}",
            describe(other)
        ))),
    }
}

fn optional_number(
    config: &Map<String, Value>,
    key: &str,
    default: u64,
    range: RangeInclusive<u64>,
    unit: &str,
) -> Result<u64, InvalidLdapSettings> {
    let value = match config.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(value) => value,
    };
    match value.as_u64() {
        Some(n) if range.contains(&n) => Ok(n),
        _ => Err(InvalidLdapSettings::new(format!(
            "`{key}` = {} is not allowed: use a whole number of {unit} from {} to {} \
             (default {default})",
            describe(value),
            range.start(),
            range.end()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    const PASSWORD: &str = "Sup3r-Secret-Bind-Pw";

    fn secrets() -> Secrets {
        [("bind_password", SecretString::from(PASSWORD))]
            .into_iter()
            .collect()
    }

    fn config(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    fn base() -> Value {
        json!({
            "url": "ldaps://dc1.corp.example",
            "bind_dn": "CN=svc-latchkey,CN=Users,DC=corp,DC=example",
            "tls_verify": false,
        })
    }

    fn with(changes: Value) -> Map<String, Value> {
        let mut config = config(base());
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                config.remove(key);
            } else {
                config.insert(key.clone(), value.clone());
            }
        }
        config
    }

    fn error(config: Map<String, Value>) -> String {
        LdapSettings::from_connector(&config, &secrets())
            .expect_err("settings should be refused")
            .to_string()
    }

    fn pem_file(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_apply_and_ports_follow_the_scheme() {
        let s = LdapSettings::from_connector(&with(json!({})), &secrets()).unwrap();
        assert_eq!(s.url.connect_url(), "ldaps://dc1.corp.example:636");
        assert_eq!(s.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(s.pool_size, 4);
        assert_eq!(s.limits, SearchLimits::default());
        assert!(!s.verifies_certificate());

        let s = LdapSettings::from_connector(
            &with(
                json!({"url": "ldap://10.0.0.5/", "starttls": true, "timeout_ms": 100,
                         "pool_size": 32}),
            ),
            &secrets(),
        )
        .unwrap();
        assert_eq!(s.url.connect_url(), "ldap://10.0.0.5:389");
        assert_eq!(s.url.to_string(), "ldap://10.0.0.5:389 (StartTLS)");
        assert_eq!(s.timeout, Duration::from_millis(100));
        assert_eq!(s.pool_size, 32);

        let s =
            LdapSettings::from_connector(&with(json!({"url": "LDAPS://[::1]:3269"})), &secrets())
                .unwrap();
        assert_eq!(s.url.connect_url(), "ldaps://[::1]:3269");
    }

    #[test]
    fn tls_verify_false_parses_and_needs_no_ca_file() {
        let s = LdapSettings::from_connector(
            &with(json!({"tls_verify": false, "ca_file": "/nonexistent/ca.pem"})),
            &secrets(),
        )
        .unwrap();
        assert_eq!(s.trust, Trust::Unverified);
        assert!(
            error(with(json!({"tls_verify": "no"}))).contains("`tls_verify` must be true or false")
        );
    }

    #[test]
    fn a_ca_file_is_loaded_and_checked() {
        let ca = pem_file(include_str!("testdata/ca.pem"));
        let s = LdapSettings::from_connector(
            &with(json!({"tls_verify": true, "ca_file": ca.path()})),
            &secrets(),
        )
        .unwrap();
        assert_eq!(s.trust, Trust::CaFile(ca.path().to_path_buf()));

        let message = error(with(
            json!({"tls_verify": true, "ca_file": "/nonexistent/ca.pem"}),
        ));
        assert!(
            message.contains("`ca_file` = \"/nonexistent/ca.pem\" cannot be read"),
            "{message}"
        );

        let message = error(with(json!({"tls_verify": true, "ca_file": "ca.pem"})));
        assert!(message.contains("not an absolute path"), "{message}");

        let garbage = pem_file("not a certificate\n");
        let message = error(with(json!({"tls_verify": true, "ca_file": garbage.path()})));
        assert!(message.contains("holds no PEM certificate"), "{message}");

        let broken = pem_file("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let message = error(with(json!({"tls_verify": true, "ca_file": broken.path()})));
        assert!(message.contains("`ca_file`"), "{message}");
    }

    #[test]
    fn every_invalid_setting_names_its_key_and_the_fix() {
        let cases = [
            (
                json!({"url": null}),
                "the LDAP setting `url` is missing: set it to",
            ),
            (json!({"url": ""}), "the LDAP setting `url` is missing"),
            (json!({"url": 636}), "`url` must be a string, not 636"),
            (
                json!({"url": "http://dc1"}),
                "is not an LDAP address: it must start with ldaps://",
            ),
            (json!({"url": "dc1.corp.example"}), "is not an LDAP address"),
            (json!({"url": "ldap://dc1"}), "is plain LDAP"),
            (
                json!({"url": "ldap://dc1", "starttls": false}),
                "set `starttls: true`",
            ),
            (json!({"starttls": true}), "already uses ldaps://"),
            (
                json!({"starttls": "yes"}),
                "`starttls` must be true or false",
            ),
            (json!({"url": "ldaps://"}), "has no valid host name"),
            (json!({"url": "ldaps://dc 1"}), "has no valid host name"),
            (json!({"url": "ldaps://dc1:0"}), "has an invalid port \"0\""),
            (json!({"url": "ldaps://dc1:ldaps"}), "has an invalid port"),
            (json!({"url": "ldaps://dc1:70000"}), "has an invalid port"),
            (
                json!({"url": "ldaps://dc1/DC=corp,DC=example"}),
                "put the search base in `base_dn`",
            ),
            (
                json!({"url": "ldaps://user@dc1"}),
                "must name only the server",
            ),
            (
                json!({"bind_dn": null}),
                "the LDAP setting `bind_dn` is missing",
            ),
            (json!({"bind_dn": ["CN=x"]}), "`bind_dn` must be a string"),
            (
                json!({"timeout_ms": 99}),
                "`timeout_ms` = 99 is not allowed: use a whole number of milliseconds from 100 to 120000",
            ),
            (
                json!({"timeout_ms": 120001}),
                "`timeout_ms` = 120001 is not allowed",
            ),
            (
                json!({"timeout_ms": "5000"}),
                "`timeout_ms` = the string \"5000\" is not allowed",
            ),
            (
                json!({"timeout_ms": 1.5}),
                "`timeout_ms` = 1.5 is not allowed",
            ),
            (
                json!({"pool_size": 0}),
                "`pool_size` = 0 is not allowed: use a whole number of connections from 1 to 32",
            ),
            (json!({"pool_size": 33}), "`pool_size` = 33 is not allowed"),
            (json!({"pool_size": -1}), "`pool_size` = -1 is not allowed"),
            (json!({"ca_file": 5}), "`ca_file` must be a string"),
        ];
        for (change, expected) in cases {
            let message = error(with(change.clone()));
            assert!(
                message.contains(expected),
                "for {change}: expected {expected:?} in {message:?}"
            );
            assert!(!message.contains(PASSWORD));
        }
    }

    #[test]
    fn a_missing_or_empty_bind_password_is_refused() {
        let message = LdapSettings::from_connector(&with(json!({})), &Secrets::new())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the secret `bind_password` is missing"),
            "{message}"
        );

        let empty: Secrets = [("bind_password", SecretString::from(""))]
            .into_iter()
            .collect();
        let message = LdapSettings::from_connector(&with(json!({})), &empty)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the secret `bind_password` is empty"),
            "{message}"
        );
    }

    #[test]
    fn no_settings_type_shows_the_password_in_debug() {
        let s = LdapSettings::from_connector(&with(json!({})), &secrets()).unwrap();
        let ca = pem_file(include_str!("testdata/ca.pem"));
        let verified = LdapSettings::from_connector(
            &with(json!({"tls_verify": true, "ca_file": ca.path()})),
            &secrets(),
        )
        .unwrap();
        for debug in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{verified:?}"),
            format!("{:?}", secrets()),
            format!("{:?}", s.bind_password),
        ] {
            assert!(!debug.contains(PASSWORD), "{debug}");
        }
        assert!(format!("{s:?}").contains("CN=svc-latchkey"));
    }
}
