//! `test-connection`: what an administrator needs to know before the first reset, as checks
//! they can act on. Graph's problems are failed or warning checks in the report, never the
//! call's error.
//!
//! 1. A token and a read: `GET /v1.0/users?$top=1&$select=id`. Without a token nothing else
//!    can work, so the report stops there.
//! 2. The password permission, by a probe that changes nothing: an empty update
//!    (`PATCH … {}`) of the all-zero object id, which no user has. Graph checks the app's
//!    right to update users before it looks the user up: "not found" means the right is
//!    there, "forbidden" that it is not. Whether the app's directory role covers a given user
//!    (administrators need Privileged Authentication Administrator) only a real reset shows.
//! 3. Directory sync: the organization's `onPremisesSyncEnabled` and
//!    `onPremisesLastSyncDateTime`, which say whether synced users exist and whether sync runs.

use latchkey_plugin_sdk::graph::{GraphError, Method, Request, Response};
use latchkey_plugin_sdk::{Check, CheckStatus, ConnectorError, Report, error_message};
use serde::Deserialize;

use crate::client;
use crate::config;
use crate::datetime;
use crate::errors::{self, Operation, READ_ADVICE, RESET_ADVICE, TOKEN_ADVICE};
use crate::password::minutes_in_words;

/// The object id no user has, for the permission probe.
pub const PROBE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// How old the last directory sync may be before it is worth a warning.
pub const SYNC_WARNING_SECONDS: i64 = 3600;

const TOKEN_CHECK: &str = "acquire a token and read users";
const PROBE_CHECK: &str = "permission to reset passwords";
const SYNC_CHECK: &str = "directory sync (hybrid)";

fn check(name: &str, status: CheckStatus, detail: String, advice: Option<String>) -> Check {
    Check {
        name: name.into(),
        status,
        detail,
        advice,
    }
}

/// Graph's words for an answer, for a check's detail.
fn graph_words(response: &Response) -> String {
    errors::directory_text(response.status, &response.headers, &response.body).unwrap_or_default()
}

/// The read check's request.
pub fn read_request() -> Request {
    client::get("/v1.0/users", &[("$top", "1"), ("$select", "id")])
}

/// The probe's request: an empty update of a user that does not exist.
pub fn probe_request() -> Request {
    Request {
        method: Method::Patch,
        path: format!("/v1.0/users/{PROBE_ID}"),
        query: vec![],
        body: Some("{}".into()),
    }
}

/// The sync check's request.
pub fn organization_request() -> Request {
    client::get(
        "/v1.0/organization",
        &[(
            "$select",
            "onPremisesSyncEnabled,onPremisesLastSyncDateTime",
        )],
    )
}

/// A failure of the host's `graph` capability as a check (a warning when throttled).
fn host_failure(name: &str, error: &GraphError) -> Check {
    let (status, advice) = match error {
        GraphError::Token(_) => (CheckStatus::Failed, TOKEN_ADVICE.to_string()),
        GraphError::NotConfigured(_) => (
            CheckStatus::Failed,
            "set tenant_id and client_id in the connector's configuration, and the \
             client_secret secret"
                .to_string(),
        ),
        GraphError::Unavailable(_) | GraphError::Timeout(_) => (
            CheckStatus::Failed,
            "make sure the Latchkey server can reach Microsoft Graph and the token authority \
             over HTTPS (proxy, firewall), that cloud is the tenant's cloud, and, when set, that \
             graph_endpoint and authority are right; raise timeout_ms on a slow network"
                .to_string(),
        ),
        GraphError::Throttled(_) => (
            CheckStatus::Warning,
            "run the test again in a few minutes".to_string(),
        ),
        GraphError::InvalidRequest(_) => (
            CheckStatus::Failed,
            "report this with Latchkey's log: it is not a problem of the tenant".to_string(),
        ),
    };
    let detail = match error {
        GraphError::Token(text) => format!("Entra ID did not issue the app a token: {text}"),
        other => error_message(&errors::from_host(other)),
    };
    check(name, status, detail, Some(advice))
}

/// How the token-and-read check went; the bool says whether a token was acquired (so the
/// other checks can run).
pub fn token_verdict(
    answer: &Result<Response, GraphError>,
    tenant: &str,
    client: &str,
) -> (Check, bool) {
    let response = match answer {
        Ok(response) => response,
        Err(error) => return (host_failure(TOKEN_CHECK, error), false),
    };
    let verdict = match response.status {
        200..=299 => check(
            TOKEN_CHECK,
            CheckStatus::Ok,
            format!(
                "acquired a token for app {client} in tenant {tenant} and read users through \
                 Microsoft Graph"
            ),
            None,
        ),
        401 => check(
            TOKEN_CHECK,
            CheckStatus::Failed,
            format!(
                "Microsoft Graph refused the app's token: {}",
                graph_words(response)
            ),
            Some(TOKEN_ADVICE.into()),
        ),
        403 => check(
            TOKEN_CHECK,
            CheckStatus::Failed,
            format!(
                "the app got a token but may not read users: {}",
                graph_words(response)
            ),
            Some(READ_ADVICE.into()),
        ),
        _ => check(
            TOKEN_CHECK,
            CheckStatus::Failed,
            format!(
                "Microsoft Graph did not list users: {}",
                error_message(&errors::refused(
                    Operation::Search { user_filter: false },
                    response
                ))
            ),
            Some(format!(
                "Graph's answer was {}; if it persists, check graph_endpoint (when set) and \
                 Microsoft's service health",
                graph_words(response)
            )),
        ),
    };
    (verdict, true)
}

/// How the permission probe went.
pub fn probe_verdict(answer: &Result<Response, GraphError>) -> Check {
    let response = match answer {
        Ok(response) => response,
        Err(error) => return host_failure(PROBE_CHECK, error),
    };
    match response.status {
        404 => check(
            PROBE_CHECK,
            CheckStatus::Ok,
            "the app holds a permission to update users (an empty update of a user that does \
             not exist was answered \"not found\", not \"forbidden\"); whether its directory \
             role covers a given user shows at that user's first reset: User Administrator for \
             most users, Privileged Authentication Administrator for administrators"
                .into(),
            None,
        ),
        403 => check(
            PROBE_CHECK,
            CheckStatus::Failed,
            format!(
                "the app may not update users, so it cannot reset passwords: {}",
                graph_words(response)
            ),
            Some(RESET_ADVICE.into()),
        ),
        401 => check(
            PROBE_CHECK,
            CheckStatus::Failed,
            format!(
                "Microsoft Graph refused the app's token: {}",
                graph_words(response)
            ),
            Some(TOKEN_ADVICE.into()),
        ),
        status => check(
            PROBE_CHECK,
            CheckStatus::Warning,
            format!(
                "the probe (an empty update of user {PROBE_ID}) got an unexpected answer, HTTP \
                 {status}: {}",
                graph_words(response)
            ),
            Some(format!(
                "make sure the app may reset passwords: {RESET_ADVICE}"
            )),
        ),
    }
}

/// The organization's sync state as Graph returns it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Organization {
    pub on_premises_sync_enabled: Option<bool>,
    pub on_premises_last_sync_date_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Organizations {
    value: Vec<Organization>,
}

/// "N minutes ago", for the last sync.
fn ago(seconds: i64) -> String {
    match seconds.max(0) / 60 {
        0 => "less than a minute ago".to_string(),
        1 => "1 minute ago".to_string(),
        minutes if minutes < 120 => format!("{minutes} minutes ago"),
        minutes if minutes < 48 * 60 => format!("{} hours ago", minutes / 60),
        minutes => format!("{} days ago", minutes / (24 * 60)),
    }
}

/// How the sync check went, at `now` (unix seconds), with the configured sync timeout.
pub fn sync_verdict(
    answer: &Result<Response, GraphError>,
    now: i64,
    sync_timeout_seconds: u64,
) -> Check {
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            let mut failed = host_failure(SYNC_CHECK, error);
            failed.status = CheckStatus::Warning;
            return failed;
        }
    };
    match response.status {
        200..=299 => {}
        403 => {
            return check(
                SYNC_CHECK,
                CheckStatus::Warning,
                "the app may not read the organization, so whether users are synced from \
                 on-premises Active Directory could not be checked"
                    .into(),
                Some(
                    "grant the app registration the application permission \
                     Organization.Read.All with admin consent"
                        .into(),
                ),
            );
        }
        _ => {
            return check(
                SYNC_CHECK,
                CheckStatus::Warning,
                format!(
                    "the organization could not be read: {}",
                    error_message(&errors::refused(Operation::ReadOrganization, response))
                ),
                Some(format!(
                    "Graph's answer was {}; run the test again later",
                    graph_words(response)
                )),
            );
        }
    }
    let organization = serde_json::from_str::<Organizations>(&response.body)
        .ok()
        .and_then(|o| o.value.into_iter().next());
    let Some(organization) = organization else {
        return check(
            SYNC_CHECK,
            CheckStatus::Warning,
            "Microsoft Graph's answer did not describe the organization".into(),
            None,
        );
    };
    if organization.on_premises_sync_enabled != Some(true) {
        return check(
            SYNC_CHECK,
            CheckStatus::Ok,
            "cloud-only tenant: directory sync is not enabled, so every user's password is \
             set through Microsoft Graph"
                .into(),
            None,
        );
    }
    let waits = format!(
        "synced users' passwords are set on-premises, and Latchkey waits up to {} \
         (sync_timeout_seconds) for password hash sync to carry them",
        minutes_in_words(sync_timeout_seconds)
    );
    let last_sync = organization
        .on_premises_last_sync_date_time
        .as_deref()
        .and_then(datetime::parse_iso8601);
    let sync_advice = "check the Entra Connect (or Cloud Sync) server and its sync service: \
                       sync normally runs every 30 minutes, and synced users' passwords reach \
                       Entra ID only through it";
    match last_sync {
        Some(at) if now - at <= SYNC_WARNING_SECONDS => check(
            SYNC_CHECK,
            CheckStatus::Ok,
            format!("hybrid: sync enabled, last sync {}; {waits}", ago(now - at)),
            None,
        ),
        Some(at) => check(
            SYNC_CHECK,
            CheckStatus::Warning,
            format!("hybrid: sync enabled, last sync {}; {waits}", ago(now - at)),
            Some(sync_advice.into()),
        ),
        None => check(
            SYNC_CHECK,
            CheckStatus::Warning,
            format!("hybrid: sync enabled, but Entra ID records no completed sync; {waits}"),
            Some(sync_advice.into()),
        ),
    }
}

/// Run every check.
pub fn run() -> Result<Report, ConnectorError> {
    let tenant = config::optional("tenant_id").unwrap_or_else(|| "(no tenant_id)".into());
    let client_id = config::optional("client_id").unwrap_or_else(|| "(no client_id)".into());
    let mut checks = vec![];

    let (read, token) = token_verdict(&client::send_raw(read_request()), &tenant, &client_id);
    checks.push(read);
    if !token {
        return Ok(Report { checks });
    }
    checks.push(probe_verdict(&client::send_raw(probe_request())));
    checks.push(sync_verdict(
        &client::send_raw(organization_request()),
        datetime::unix_now(),
        config::sync_timeout_seconds(),
    ));
    Ok(Report { checks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Response, GraphError> {
        Ok(Response {
            status,
            headers: vec![],
            body: body.into(),
        })
    }

    const FORBIDDEN: &str = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"9f9f"}}}"#;
    const NOT_FOUND: &str = r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present.","innerError":{"request-id":"77aa"}}}"#;

    #[test]
    fn the_requests() {
        let read = read_request();
        assert_eq!(
            (read.method, read.path.as_str()),
            (Method::Get, "/v1.0/users")
        );
        assert_eq!(
            read.query,
            vec![
                ("$top".to_string(), "1".to_string()),
                ("$select".to_string(), "id".to_string())
            ]
        );
        let probe = probe_request();
        assert_eq!(probe.method, Method::Patch);
        assert_eq!(
            probe.path,
            "/v1.0/users/00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(probe.body.as_deref(), Some("{}"));
        let organization = organization_request();
        assert_eq!(organization.path, "/v1.0/organization");
        assert_eq!(
            organization.query,
            vec![(
                "$select".to_string(),
                "onPremisesSyncEnabled,onPremisesLastSyncDateTime".to_string()
            )]
        );
    }

    #[test]
    fn token_verdicts() {
        let (ok, token) = token_verdict(&answer(200, r#"{"value":[]}"#), "corp.test", "app");
        assert_eq!(ok.status, CheckStatus::Ok);
        assert!(token && ok.detail.contains("corp.test") && ok.detail.contains("app"));

        let (bad, token) = token_verdict(
            &Err(GraphError::Token(
                "AADSTS7000215: Invalid client secret provided.".into(),
            )),
            "t",
            "c",
        );
        assert!(!token);
        assert_eq!(bad.status, CheckStatus::Failed);
        assert!(bad.detail.contains("AADSTS7000215"));
        let advice = bad.advice.unwrap();
        assert!(advice.contains("client_id") && advice.contains("client_secret"));
        assert!(advice.contains("consent"));

        let (unset, token) = token_verdict(
            &Err(GraphError::NotConfigured("no Graph settings".into())),
            "t",
            "c",
        );
        assert!(!token);
        let advice = unset.advice.unwrap();
        assert!(advice.contains("tenant_id") && advice.contains("client_id"));
        assert!(advice.contains("client_secret"));

        let (down, token) = token_verdict(
            &Err(GraphError::Unavailable("connection refused".into())),
            "t",
            "c",
        );
        assert!(!token && down.detail.contains("connection refused"));
        assert!(down.advice.unwrap().contains("graph_endpoint"));

        let (forbidden, token) = token_verdict(&answer(403, FORBIDDEN), "t", "c");
        assert!(token);
        assert_eq!(forbidden.status, CheckStatus::Failed);
        assert!(forbidden.advice.unwrap().contains("User.Read.All"));
        assert!(forbidden.detail.contains("request-id 9f9f"));

        let (refused, _) = token_verdict(&answer(401, "{}"), "t", "c");
        assert_eq!(refused.status, CheckStatus::Failed);
    }

    #[test]
    fn probe_verdicts() {
        let present = probe_verdict(&answer(404, NOT_FOUND));
        assert_eq!(present.status, CheckStatus::Ok);
        assert!(
            present
                .detail
                .contains("Privileged Authentication Administrator")
        );

        let missing = probe_verdict(&answer(403, FORBIDDEN));
        assert_eq!(missing.status, CheckStatus::Failed);
        let advice = missing.advice.unwrap();
        assert!(advice.contains("User-PasswordProfile.ReadWrite.All"));
        assert!(advice.contains("admin consent") && advice.contains("User Administrator"));

        let odd = probe_verdict(&answer(400, "{}"));
        assert_eq!(odd.status, CheckStatus::Warning);
        assert!(odd.detail.contains("HTTP 400"));

        let throttled = probe_verdict(&Err(GraphError::Throttled(20)));
        assert_eq!(throttled.status, CheckStatus::Warning);
        assert!(throttled.detail.contains("20 seconds"));
    }

    const NOW: i64 = 1_714_558_830; // 2024-05-01T10:20:30Z

    fn organization(enabled: &str, last: &str) -> String {
        format!(
            r#"{{"value":[{{"onPremisesSyncEnabled":{enabled},"onPremisesLastSyncDateTime":{last}}}]}}"#
        )
    }

    #[test]
    fn sync_verdicts() {
        let recent = sync_verdict(
            &answer(200, &organization("true", "\"2024-05-01T09:58:30Z\"")),
            NOW,
            1800,
        );
        assert_eq!(recent.status, CheckStatus::Ok);
        assert!(
            recent
                .detail
                .starts_with("hybrid: sync enabled, last sync 22 minutes ago"),
            "{}",
            recent.detail
        );
        assert!(recent.detail.contains("30 minutes"));

        let stale = sync_verdict(
            &answer(200, &organization("true", "\"2024-05-01T07:20:30Z\"")),
            NOW,
            1800,
        );
        assert_eq!(stale.status, CheckStatus::Warning);
        assert!(
            stale.detail.contains("last sync 3 hours ago"),
            "{}",
            stale.detail
        );
        assert!(stale.advice.unwrap().contains("Entra Connect"));

        let never = sync_verdict(&answer(200, &organization("true", "null")), NOW, 1800);
        assert_eq!(never.status, CheckStatus::Warning);

        for enabled in ["false", "null"] {
            let cloud = sync_verdict(&answer(200, &organization(enabled, "null")), NOW, 1800);
            assert_eq!(cloud.status, CheckStatus::Ok);
            assert!(cloud.detail.starts_with("cloud-only tenant"));
        }

        let forbidden = sync_verdict(&answer(403, FORBIDDEN), NOW, 1800);
        assert_eq!(forbidden.status, CheckStatus::Warning);
        assert!(forbidden.advice.unwrap().contains("Organization.Read.All"));

        let empty = sync_verdict(&answer(200, r#"{"value":[]}"#), NOW, 1800);
        assert_eq!(empty.status, CheckStatus::Warning);

        let down = sync_verdict(&Err(GraphError::Timeout("10 s".into())), NOW, 1800);
        assert_eq!(down.status, CheckStatus::Warning);
    }

    #[test]
    fn ages_in_words() {
        assert_eq!(ago(-5), "less than a minute ago");
        assert_eq!(ago(59), "less than a minute ago");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(61 * 60), "61 minutes ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(5 * 86_400), "5 days ago");
    }
}
