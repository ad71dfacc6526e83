//! The Graph settings of one connector, checked before any request is made: `tenant_id`,
//! `client_id`, `cloud`, `timeout_ms`, `retry_budget_seconds` and the testing overrides
//! `graph_endpoint` and `authority` from its configuration; `client_secret` from its secrets.
//!
//! It owns turning what an administrator typed into a validated [`GraphSettings`] and saying in
//! one sentence which key is wrong. It must never put the client secret into an error, a log or
//! a `Debug` output, and never point a connector anywhere but Microsoft's clouds unless the
//! configuration says so explicitly.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use graph_rs_sdk::http::Url;
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::capabilities::secrets::Secrets;

/// The timeout of one Graph or token request when `timeout_ms` is not set.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// The values `timeout_ms` may take.
pub const TIMEOUT_MS_RANGE: RangeInclusive<u64> = 100..=60_000;
/// How long one plugin call may wait in all for Graph's `Retry-After`s, when
/// `retry_budget_seconds` is not set. It stays below a plugin call's default deadline (10 s).
pub const DEFAULT_RETRY_BUDGET_SECONDS: u64 = 6;
/// The values `retry_budget_seconds` may take.
pub const RETRY_BUDGET_RANGE: RangeInclusive<u64> = 0..=60;

/// One of Microsoft's clouds: where its tokens are issued and its Graph answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// The worldwide cloud.
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDod,
    /// Microsoft 365 operated by 21Vianet (China).
    China,
}

impl Cloud {
    const NAMES: &'static str = "global, us-gov, us-gov-dod, china";

    fn parse(text: &str) -> Option<Cloud> {
        match text {
            "global" => Some(Cloud::Global),
            "us-gov" => Some(Cloud::UsGov),
            "us-gov-dod" => Some(Cloud::UsGovDod),
            "china" => Some(Cloud::China),
            _ => None,
        }
    }

    /// The token authority (Microsoft Entra's sign-in host).
    pub fn authority(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// Graph's service root.
    pub fn graph(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Settings that cannot work, with a sentence naming the key and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidGraphSettings(String);

impl InvalidGraphSettings {
    fn new(sentence: impl Into<String>) -> InvalidGraphSettings {
        InvalidGraphSettings(sentence.into())
    }
}

/// A connector's validated Graph settings.
#[derive(Clone)]
pub struct GraphSettings {
    pub cloud: Cloud,
    /// The Entra tenant (its GUID or a verified domain).
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    pub client_secret: SecretString,
    /// Where tokens are requested: the cloud's authority, or the `authority` override.
    pub authority: Url,
    /// Graph's service root: the cloud's, or the `graph_endpoint` override.
    pub graph: Url,
    /// The scope of the token: always the cloud's Graph, `…/.default`.
    pub scope: String,
    /// True when `graph_endpoint` or `authority` points somewhere else than the cloud.
    pub overridden: bool,
    pub timeout: Duration,
    pub retry_budget: Duration,
}

impl fmt::Debug for GraphSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphSettings")
            .field("cloud", &self.cloud)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority.as_str())
            .field("graph", &self.graph.as_str())
            .field("overridden", &self.overridden)
            .field("timeout", &self.timeout)
            .field("retry_budget", &self.retry_budget)
            .finish_non_exhaustive()
    }
}

impl GraphSettings {
    /// The settings of a connector from its configuration and secrets.
    pub fn from_connector(
        config: &Map<String, Value>,
        secrets: &Secrets,
    ) -> Result<GraphSettings, InvalidGraphSettings> {
        let tenant_id = required(
            config,
            "tenant_id",
            "the directory (tenant) id from Entra ID's overview page, or a verified domain such as corp.example",
        )?;
        if !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(InvalidGraphSettings::new(format!(
                "`tenant_id` = {tenant_id:?} is neither a GUID nor a domain name: copy the \
                 directory (tenant) id from Entra ID's overview page"
            )));
        }
        let client_id = required(
            config,
            "client_id",
            "the application (client) id of the app registration Latchkey uses",
        )?;
        if !is_guid(&client_id) {
            return Err(InvalidGraphSettings::new(format!(
                "`client_id` = {client_id:?} is not a GUID: copy the application (client) id \
                 from the app registration's overview page"
            )));
        }
        let cloud = match config.get("cloud") {
            None | Some(Value::Null) => Cloud::Global,
            Some(Value::String(name)) => Cloud::parse(name).ok_or_else(|| {
                InvalidGraphSettings::new(format!(
                    "`cloud` = {name:?} is not one of Microsoft's clouds: use one of {}",
                    Cloud::NAMES
                ))
            })?,
            Some(other) => {
                return Err(InvalidGraphSettings::new(format!(
                    "`cloud` must be a string ({}), not {other}",
                    Cloud::NAMES
                )));
            }
        };
        let client_secret = secrets.get("client_secret").cloned().ok_or_else(|| {
            InvalidGraphSettings::new(
                "the `client_secret` secret is not set: create a client secret in the app \
                 registration (Certificates & secrets) and store its value as this connector's \
                 `client_secret`",
            )
        })?;
        let graph_override = override_url(config, "graph_endpoint")?;
        let authority_override = override_url(config, "authority")?;
        let overridden = graph_override.is_some() || authority_override.is_some();
        let graph = match graph_override {
            Some(url) => url,
            None => Url::parse(cloud.graph()).expect("a cloud's Graph root parses"),
        };
        let authority = match authority_override {
            Some(url) => url,
            None => Url::parse(cloud.authority()).expect("a cloud's authority parses"),
        };
        let timeout_ms = number(config, "timeout_ms", DEFAULT_TIMEOUT_MS, TIMEOUT_MS_RANGE)?;
        let budget = number(
            config,
            "retry_budget_seconds",
            DEFAULT_RETRY_BUDGET_SECONDS,
            RETRY_BUDGET_RANGE,
        )?;
        Ok(GraphSettings {
            cloud,
            tenant_id,
            client_id,
            client_secret,
            authority,
            scope: format!("{}/.default", cloud.graph()),
            graph,
            overridden,
            timeout: Duration::from_millis(timeout_ms),
            retry_budget: Duration::from_secs(budget),
        })
    }

    /// The token endpoint: `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> Url {
        let mut url = self.authority.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend([self.tenant_id.as_str(), "oauth2", "v2.0", "token"]);
        }
        url
    }
}

fn required(
    config: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<String, InvalidGraphSettings> {
    match config.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(InvalidGraphSettings::new(
            format!("`{key}` is not set: it is {what}"),
        )),
        Some(other) => Err(InvalidGraphSettings::new(format!(
            "`{key}` must be a string ({what}), not {other}"
        ))),
    }
}

fn number(
    config: &Map<String, Value>,
    key: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Result<u64, InvalidGraphSettings> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => match value.as_u64() {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(InvalidGraphSettings::new(format!(
                "`{key}` = {value} must be a whole number from {} to {} (default {default})",
                range.start(),
                range.end()
            ))),
        },
    }
}

/// A testing override: an absolute http(s) URL with no query. Plain http only to a loopback
/// address, so a token request never crosses a network unencrypted.
fn override_url(
    config: &Map<String, Value>,
    key: &str,
) -> Result<Option<Url>, InvalidGraphSettings> {
    let text = match config.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text.trim(),
        Some(other) => {
            return Err(InvalidGraphSettings::new(format!(
                "`{key}` must be a URL string, not {other}"
            )));
        }
    };
    let url = Url::parse(text).map_err(|e| {
        InvalidGraphSettings::new(format!(
            "`{key}` = {text:?} is not an absolute URL ({e}); it is only for testing: remove it \
             to use Microsoft's cloud"
        ))
    })?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(InvalidGraphSettings::new(format!(
                "`{key}` = {text:?} uses plain http to a host that is not this machine: use \
                 https (plain http is accepted only for a loopback test endpoint)"
            )));
        }
        other => {
            return Err(InvalidGraphSettings::new(format!(
                "`{key}` = {text:?} has scheme {other:?}: use https"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() || url.host().is_none() {
        return Err(InvalidGraphSettings::new(format!(
            "`{key}` = {text:?} must be a scheme, host, port and optional path only"
        )));
    }
    Ok(Some(url))
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

    fn secrets() -> Secrets {
        [("client_secret", SecretString::from("s3cret-value~x"))]
            .into_iter()
            .collect()
    }

    fn settings(config: Value) -> Result<GraphSettings, InvalidGraphSettings> {
        GraphSettings::from_connector(config.as_object().unwrap(), &secrets())
    }

    #[test]
    fn a_minimal_configuration_uses_the_worldwide_cloud() {
        let s = settings(json!({"tenant_id": "corp.example", "client_id": CLIENT})).unwrap();
        assert_eq!(s.cloud, Cloud::Global);
        assert_eq!(s.graph.as_str(), "https://graph.microsoft.com/");
        assert_eq!(
            s.token_url().as_str(),
            "https://login.microsoftonline.com/corp.example/oauth2/v2.0/token"
        );
        assert_eq!(s.scope, "https://graph.microsoft.com/.default");
        assert!(!s.overridden);
        assert_eq!(s.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn national_clouds_have_their_own_hosts() {
        let s = settings(json!({"tenant_id": "t", "client_id": CLIENT, "cloud": "us-gov-dod"}))
            .unwrap();
        assert_eq!(s.graph.as_str(), "https://dod-graph.microsoft.us/");
        assert!(
            s.token_url()
                .as_str()
                .starts_with("https://login.microsoftonline.us/t/")
        );
        assert_eq!(s.scope, "https://dod-graph.microsoft.us/.default");
        let s = settings(json!({"tenant_id": "t", "client_id": CLIENT, "cloud": "china"})).unwrap();
        assert_eq!(s.graph.as_str(), "https://microsoftgraph.chinacloudapi.cn/");
        let err = settings(json!({"tenant_id": "t", "client_id": CLIENT, "cloud": "germany"}))
            .unwrap_err();
        assert!(err.to_string().contains("global, us-gov"), "{err}");
    }

    #[test]
    fn overrides_are_explicit_and_plain_http_only_on_loopback() {
        let s = settings(json!({"tenant_id": "t", "client_id": CLIENT,
            "graph_endpoint": "http://127.0.0.1:9000", "authority": "http://127.0.0.1:9000/"}))
        .unwrap();
        assert!(s.overridden);
        assert_eq!(
            s.token_url().as_str(),
            "http://127.0.0.1:9000/t/oauth2/v2.0/token"
        );
        assert_eq!(s.scope, "https://graph.microsoft.com/.default");
        let err = settings(json!({"tenant_id": "t", "client_id": CLIENT,
            "graph_endpoint": "http://graph.evil.example"}))
        .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        let err = settings(json!({"tenant_id": "t", "client_id": CLIENT,
            "authority": "https://x.example/?a=b"}))
        .unwrap_err();
        assert!(err.to_string().contains("`authority`"), "{err}");
    }

    #[test]
    fn each_mistake_names_its_key() {
        for (config, key) in [
            (json!({"client_id": CLIENT}), "`tenant_id`"),
            (json!({"tenant_id": "t"}), "`client_id`"),
            (json!({"tenant_id": "t", "client_id": "app"}), "`client_id`"),
            (
                json!({"tenant_id": "a b", "client_id": CLIENT}),
                "`tenant_id`",
            ),
            (
                json!({"tenant_id": "t", "client_id": CLIENT, "timeout_ms": 5}),
                "`timeout_ms`",
            ),
            (
                json!({"tenant_id": "t", "client_id": CLIENT, "retry_budget_seconds": -1}),
                "`retry_budget_seconds`",
            ),
        ] {
            let err = settings(config).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = GraphSettings::from_connector(
            json!({"tenant_id": "t", "client_id": CLIENT})
                .as_object()
                .unwrap(),
            &Secrets::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`client_secret`"), "{err}");
    }
}
