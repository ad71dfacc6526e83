//! What Microsoft Graph's refusals mean, in words an administrator can act on.
//!
//! Graph answers an HTTP status with a JSON body,
//! `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`;
//! the host's own failures (no token, throttled beyond the budget, unreachable) come as a
//! `graph-error`. This module turns both into typed `connector-error`s, for every Graph call of
//! the plugin. The sentence for people goes in `message`; Graph's code, message and request-id
//! only in `directory-text`, for the audit. No password reaches either: Graph's answers do not
//! contain the password sent, and nothing here is handed one (`password` also redacts, in case).

use latchkey_plugin_sdk::graph::{GraphError, Response};
use latchkey_plugin_sdk::{ConnectorError, ErrorInfo};

/// What the plugin was doing when Graph refused: it decides which permission a denial names
/// and what "not found" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// Listing or searching users; `user_filter` says whether the administrator's extra filter
    /// was part of the query (a malformed one is a configuration error).
    Search { user_filter: bool },
    /// Reading one user's properties (by object id).
    ReadUser(&'a str),
    /// Resetting one user's password (PATCH of its passwordProfile).
    ResetPassword(&'a str),
    /// Reading the organization (the tenant's directory-sync state).
    ReadOrganization,
}

/// The refusal Entra ID gives for a password it does not accept, which does not say which rule.
pub const PASSWORD_REFUSED: &str = "Entra ID refused the password: it does not meet the \
     complexity rules or is on the banned-password list";

/// The most bytes of Graph's text kept for the audit (the host accepts 4096).
const MAX_DIRECTORY_TEXT: usize = 2000;

/// The permissions and role a password reset needs, as advice.
pub const RESET_ADVICE: &str = "grant the app registration the application permission \
     User-PasswordProfile.ReadWrite.All with admin consent, and assign it the User Administrator \
     role (Privileged Authentication Administrator to reset administrators' passwords)";

/// The permission reading users needs, as advice.
pub const READ_ADVICE: &str = "grant the app registration the application permission \
     User.Read.All with admin consent";

/// The credentials a token needs, as advice.
pub const TOKEN_ADVICE: &str = "check tenant_id, client_id and the client_secret secret (a \
     secret's Value, not its ID, and not expired), that cloud is the tenant's cloud, and that an \
     administrator granted the app's permissions (admin consent)";

/// Graph's error body, as far as it could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphFault {
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub date: Option<String>,
}

/// A string field, or a `{"value": …}` object's value (the older AAD Graph error shape).
fn text_of(value: Option<&serde_json::Value>) -> Option<String> {
    let value = value?;
    let text = value
        .as_str()
        .or_else(|| value.get("value").and_then(serde_json::Value::as_str))?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Read Graph's error body; none when it is not one (a proxy's HTML page, an empty body).
pub fn parse_fault(body: &str) -> Option<GraphFault> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let error = json.get("error").or_else(|| json.get("odata.error"))?;
    if !error.is_object() {
        return None;
    }
    // Graph spells it innerError, older services innererror.
    let inner = error.get("innerError").or_else(|| error.get("innererror"));
    let inner_text = |key: &str| text_of(inner.and_then(|i| i.get(key)));
    Some(GraphFault {
        code: text_of(error.get("code")),
        message: text_of(error.get("message")),
        request_id: inner_text("request-id").or_else(|| inner_text("requestId")),
        date: inner_text("date"),
    })
}

/// A header's value, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

/// Seconds to wait from a `Retry-After` header (Graph sends seconds, not a date).
pub fn retry_after(headers: &[(String, String)]) -> Option<u32> {
    header(headers, "retry-after")?.parse().ok()
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// What goes in `directory-text`: the status, Graph's code and message, and the request-id
/// (from the body, or the `request-id` header), for the audit and Microsoft support.
pub fn directory_text(status: u16, headers: &[(String, String)], body: &str) -> Option<String> {
    let fault = parse_fault(body);
    let request_id = fault
        .as_ref()
        .and_then(|f| f.request_id.clone())
        .or_else(|| header(headers, "request-id").map(str::to_string));
    let mut text = format!("HTTP {status}");
    match &fault {
        Some(fault) => {
            if let Some(code) = &fault.code {
                text.push_str(&format!(" {code}"));
            }
            if let Some(message) = &fault.message {
                text.push_str(&format!(": {}", truncate(message, MAX_DIRECTORY_TEXT)));
            }
        }
        None if !body.trim().is_empty() => {
            text.push_str(&format!(
                ": {}",
                truncate(body.trim(), MAX_DIRECTORY_TEXT / 4)
            ));
        }
        None => {}
    }
    if let Some(id) = request_id {
        text.push_str(&format!(" (request-id {id}"));
        if let Some(date) = fault.as_ref().and_then(|f| f.date.as_deref()) {
            text.push_str(&format!(", {date}"));
        }
        text.push(')');
    }
    Some(text)
}

/// Whether Graph refused a password (complexity, or the banned-password list).
pub fn is_password_refusal(fault: &GraphFault) -> bool {
    let message = fault.message.as_deref().unwrap_or_default().to_lowercase();
    message.contains("password")
        && (message.contains("complexity")
            || message.contains("comply")
            || message.contains("banned")
            || message.contains("does not meet"))
}

/// Whether Graph refused to write a user mastered on-premises ("Unable to update the specified
/// properties for on-premises mastered Directory Sync objects or objects currently undergoing
/// migration.").
pub fn is_on_premises_mastered(fault: &GraphFault) -> bool {
    let message = fault.message.as_deref().unwrap_or_default().to_lowercase();
    message.contains("on-premises mastered")
        || message.contains("on-premise mastered")
        || message.contains("directory sync objects")
}

/// The error for a user Graph cannot write because it is synced from on-premises.
pub fn on_premises_mastered(directory_text: Option<String>) -> ConnectorError {
    ConnectorError::InvalidConfig(ErrorInfo {
        message: "this account is mastered in on-premises Active Directory and synced to Entra \
                  ID, so Entra ID does not accept a password for it: make the Active Directory \
                  connector the primary and this Entra ID connector a secondary, so the password \
                  is set on-premises and password hash sync carries it (Latchkey's record said \
                  the account was cloud-only: find it again to refresh it)"
            .into(),
        directory_text,
    })
}

fn info(message: impl Into<String>, directory_text: Option<String>) -> ErrorInfo {
    ErrorInfo {
        message: message.into(),
        directory_text,
    }
}

/// The throttling error, with Graph's wait when it said one.
pub fn throttled(seconds: Option<u32>) -> ConnectorError {
    let message = match seconds {
        Some(seconds) => {
            format!("Microsoft Graph is throttling; retry after {seconds} seconds")
        }
        None => "Microsoft Graph is throttling; retry in a few minutes".to_string(),
    };
    ConnectorError::Unavailable(info(message, None))
}

/// A Graph answer other than success, for `operation`, as a typed error.
pub fn refused(operation: Operation<'_>, response: &Response) -> ConnectorError {
    let status = response.status;
    let fault = parse_fault(&response.body).unwrap_or_default();
    let text = directory_text(status, &response.headers, &response.body);
    match status {
        400 if is_password_refusal(&fault) => {
            ConnectorError::Policy(vec![latchkey_plugin_sdk::Violation::RejectedByDirectory(
                PASSWORD_REFUSED.into(),
            )])
        }
        400 if is_on_premises_mastered(&fault) => on_premises_mastered(text),
        400 => match operation {
            Operation::Search { user_filter: true } => ConnectorError::InvalidConfig(info(
                "Microsoft Graph refused the search for users; check the OData filter in \
                 user_filter (e.g. accountEnabled eq true); Graph's words are in the audit",
                text,
            )),
            _ => ConnectorError::Internal(info(
                "Microsoft Graph refused the connector's request as invalid; this is a bug in \
                 the azure-ad plugin (or Graph changed); Graph's words are in the audit",
                text,
            )),
        },
        401 => ConnectorError::Denied(info(
            format!(
                "Microsoft Graph refused the connector's access token: {TOKEN_ADVICE}; the \
                 token must be issued by the tenant in tenant_id"
            ),
            text,
        )),
        403 => ConnectorError::Denied(info(
            match operation {
                Operation::ResetPassword(id) => format!(
                    "Entra ID does not let the connector's app reset the password of user {id}: \
                     {RESET_ADVICE}"
                ),
                Operation::ReadOrganization => "Entra ID does not let the connector's app read \
                     the organization: grant the app registration the application permission \
                     Organization.Read.All with admin consent"
                    .to_string(),
                Operation::Search { .. } | Operation::ReadUser(_) => {
                    format!("Entra ID does not let the connector's app read users: {READ_ADVICE}")
                }
            },
            text,
        )),
        404 => ConnectorError::NotFound(info(
            match operation {
                Operation::ReadUser(id) | Operation::ResetPassword(id) => format!(
                    "Entra ID has no user with object id {id}; it may have been deleted: find \
                     the account again"
                ),
                Operation::Search { .. } | Operation::ReadOrganization => {
                    "Microsoft Graph has no such resource; check graph_endpoint if it is set"
                        .to_string()
                }
            },
            text,
        )),
        429 => match throttled(retry_after(&response.headers)) {
            ConnectorError::Unavailable(mut throttled) => {
                throttled.directory_text = text;
                ConnectorError::Unavailable(throttled)
            }
            other => other,
        },
        500..=599 => ConnectorError::Unavailable(info(
            format!("Microsoft Graph is unavailable (HTTP {status}); try again later"),
            text,
        )),
        _ => ConnectorError::Internal(info(
            format!(
                "Microsoft Graph answered with an unexpected HTTP {status}; its words are in \
                 the audit"
            ),
            text,
        )),
    }
}

/// A failure of the host's `graph` capability as a typed error.
pub fn from_host(error: &GraphError) -> ConnectorError {
    match error {
        GraphError::Unavailable(text) => ConnectorError::Unavailable(info(
            format!(
                "could not reach Microsoft Graph ({text}); try again later, and check the \
                 Latchkey server's outbound HTTPS access if it persists"
            ),
            None,
        )),
        GraphError::Timeout(text) => ConnectorError::Unavailable(info(
            format!(
                "Microsoft Graph did not answer in time ({text}); try again later, or raise timeout_ms"
            ),
            None,
        )),
        GraphError::Throttled(seconds) => throttled(Some(*seconds)),
        GraphError::Token(text) => ConnectorError::Denied(info(
            format!("Entra ID did not issue the connector's app a token: {TOKEN_ADVICE}"),
            (!text.is_empty()).then(|| text.clone()),
        )),
        GraphError::NotConfigured(text) => ConnectorError::InvalidConfig(info(
            format!(
                "{text} (the connector needs tenant_id, client_id and the client_secret secret)"
            ),
            None,
        )),
        GraphError::InvalidRequest(text) => ConnectorError::Internal(info(
            format!(
                "the host refused the connector's Graph request ({text}); this is a bug in the \
                 azure-ad plugin"
            ),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_plugin_sdk::Violation;

    const COMPLEXITY: &str = r#"{"error":{"code":"Request_BadRequest","message":"The specified password does not comply with password complexity requirements. Please provide a different password.","innerError":{"date":"2024-05-01T10:00:00","request-id":"5f0b2a8e-1111-4c2d-9e3f-aaaaaaaaaaaa","client-request-id":"5f0b2a8e-1111-4c2d-9e3f-aaaaaaaaaaaa"}}}"#;
    const ON_PREMISES: &str = r#"{"error":{"code":"Request_BadRequest","message":"Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.","innerError":{"date":"2024-05-01T10:00:00","request-id":"0c1d","client-request-id":"0c1d"}}}"#;
    const NOT_FOUND: &str = r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present.","innerError":{"date":"2024-05-01T10:00:00","request-id":"77aa","client-request-id":"77aa"}}}"#;
    const FORBIDDEN: &str = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2024-05-01T10:00:00","request-id":"9f9f","client-request-id":"9f9f"}}}"#;
    const UNAUTHORIZED: &str = r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure. Invalid audience.","innerError":{"date":"2024-05-01T10:00:00","request-id":"1a1a","client-request-id":"1a1a"}}}"#;
    const THROTTLED: &str = r#"{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"date":"2024-05-01T10:00:00","request-id":"2b2b","client-request-id":"2b2b"}}}"#;
    const BAD_FILTER: &str = r#"{"error":{"code":"Request_UnsupportedQuery","message":"Unsupported or invalid query filter clause specified for property 'showInAddressList' of resource 'User'.","innerError":{"date":"2024-05-01T10:00:00","request-id":"3c3c","client-request-id":"3c3c"}}}"#;
    const UNAVAILABLE: &str = r#"{"error":{"code":"serviceNotAvailable","message":"The service is temporarily unavailable.","innerError":{"request-id":"4d4d"}}}"#;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![],
            body: body.into(),
        }
    }

    fn message(error: &ConnectorError) -> String {
        latchkey_plugin_sdk::error_message(error)
    }

    fn directory(error: &ConnectorError) -> Option<&str> {
        latchkey_plugin_sdk::error_directory_text(error)
    }

    const ALICE: &str = "9c8b66a4-19ec-497c-b0be-c764ff1c6391";

    #[test]
    fn the_error_body_is_read() {
        assert_eq!(
            parse_fault(COMPLEXITY),
            Some(GraphFault {
                code: Some("Request_BadRequest".into()),
                message: Some(
                    "The specified password does not comply with password complexity \
                     requirements. Please provide a different password."
                        .into()
                ),
                request_id: Some("5f0b2a8e-1111-4c2d-9e3f-aaaaaaaaaaaa".into()),
                date: Some("2024-05-01T10:00:00".into()),
            })
        );
        // Older shapes: innererror, odata.error with a {lang, value} message.
        let older = r#"{"odata.error":{"code":"Request_BadRequest","message":{"lang":"en","value":"Bad."},"innererror":{"request-id":"r1"}}}"#;
        let fault = parse_fault(older).unwrap();
        assert_eq!(fault.message.as_deref(), Some("Bad."));
        assert_eq!(fault.request_id.as_deref(), Some("r1"));
        // Not an error body.
        for body in [
            "",
            "<html>502 Bad Gateway</html>",
            "{}",
            r#"{"error":"x"}"#,
            "[1]",
        ] {
            assert_eq!(parse_fault(body), None, "{body}");
        }
        // Missing pieces are none, not failures.
        assert_eq!(
            parse_fault(r#"{"error":{"code":"X"}}"#),
            Some(GraphFault {
                code: Some("X".into()),
                ..GraphFault::default()
            })
        );
    }

    #[test]
    fn directory_text_keeps_code_message_and_request_id() {
        assert_eq!(
            directory_text(403, &[], FORBIDDEN).as_deref(),
            Some(
                "HTTP 403 Authorization_RequestDenied: Insufficient privileges to complete the \
                 operation. (request-id 9f9f, 2024-05-01T10:00:00)"
            )
        );
        let headers = vec![("Request-Id".to_string(), "from-header".to_string())];
        assert_eq!(
            directory_text(502, &headers, "<html>Bad Gateway</html>").as_deref(),
            Some("HTTP 502: <html>Bad Gateway</html> (request-id from-header)")
        );
        assert_eq!(directory_text(500, &[], "").as_deref(), Some("HTTP 500"));
        let long = "x".repeat(5000);
        assert!(directory_text(502, &[], &long).unwrap().len() < 600);
        let body = format!(
            r#"{{"error":{{"code":"X","message":"{}","innerError":{{"request-id":"r"}}}}}}"#,
            "漢".repeat(3000)
        );
        let text = directory_text(400, &[], &body).unwrap();
        assert!(
            text.len() < 2100 && text.ends_with("… (request-id r)"),
            "{}",
            text.len()
        );
    }

    #[test]
    fn a_complexity_refusal_is_a_policy_violation() {
        assert_eq!(
            refused(Operation::ResetPassword(ALICE), &response(400, COMPLEXITY)),
            ConnectorError::Policy(vec![Violation::RejectedByDirectory(
                PASSWORD_REFUSED.into()
            )])
        );
        assert!(is_password_refusal(&parse_fault(COMPLEXITY).unwrap()));
        assert!(!is_password_refusal(&parse_fault(ON_PREMISES).unwrap()));
    }

    #[test]
    fn an_on_premises_mastered_refusal_explains_hybrid() {
        let error = refused(Operation::ResetPassword(ALICE), &response(400, ON_PREMISES));
        assert!(matches!(error, ConnectorError::InvalidConfig(_)));
        let text = message(&error);
        assert!(text.contains("on-premises Active Directory"));
        assert!(text.contains("primary") && text.contains("secondary"));
        assert!(text.contains("password hash sync"));
        assert!(directory(&error).unwrap().contains("on-premises mastered"));
        assert!(directory(&error).unwrap().contains("request-id 0c1d"));
    }

    #[test]
    fn other_bad_requests() {
        let filter = refused(
            Operation::Search { user_filter: true },
            &response(400, BAD_FILTER),
        );
        assert!(matches!(filter, ConnectorError::InvalidConfig(_)));
        assert!(message(&filter).contains("user_filter"));
        assert!(!message(&filter).contains("showInAddressList"));
        assert!(directory(&filter).unwrap().contains("showInAddressList"));
        assert!(matches!(
            refused(
                Operation::Search { user_filter: false },
                &response(400, BAD_FILTER)
            ),
            ConnectorError::Internal(_)
        ));
    }

    #[test]
    fn denials() {
        let token = refused(Operation::ReadUser(ALICE), &response(401, UNAUTHORIZED));
        assert!(matches!(token, ConnectorError::Denied(_)));
        assert!(message(&token).contains("client_secret"));
        assert!(
            directory(&token)
                .unwrap()
                .contains("InvalidAuthenticationToken")
        );

        let reset = refused(Operation::ResetPassword(ALICE), &response(403, FORBIDDEN));
        assert!(matches!(reset, ConnectorError::Denied(_)));
        let text = message(&reset);
        assert!(text.contains("User-PasswordProfile.ReadWrite.All"));
        assert!(text.contains("User Administrator"));
        assert!(text.contains("Privileged Authentication Administrator"));
        assert!(!text.contains("Insufficient privileges"));

        let read = refused(
            Operation::Search { user_filter: false },
            &response(403, FORBIDDEN),
        );
        assert!(message(&read).contains("User.Read.All"));
        let organization = refused(Operation::ReadOrganization, &response(403, FORBIDDEN));
        assert!(message(&organization).contains("Organization.Read.All"));
    }

    #[test]
    fn not_found_names_the_user() {
        let error = refused(Operation::ReadUser(ALICE), &response(404, NOT_FOUND));
        let ConnectorError::NotFound(info) = &error else {
            panic!("{error:?}")
        };
        assert!(info.message.contains(ALICE));
        assert!(
            info.directory_text
                .as_deref()
                .unwrap()
                .starts_with("HTTP 404 Request_ResourceNotFound")
        );
    }

    #[test]
    fn throttling_and_outages_are_unavailable() {
        let mut throttled = response(429, THROTTLED);
        throttled
            .headers
            .push(("Retry-After".to_string(), "17".to_string()));
        let error = refused(Operation::ReadUser(ALICE), &throttled);
        assert!(matches!(error, ConnectorError::Unavailable(_)));
        assert_eq!(
            message(&error),
            "Microsoft Graph is throttling; retry after 17 seconds"
        );
        assert!(directory(&error).unwrap().contains("TooManyRequests"));
        let without_header = refused(Operation::ReadUser(ALICE), &response(429, THROTTLED));
        assert!(message(&without_header).contains("retry in a few minutes"));

        for status in [500, 502, 503, 504] {
            let error = refused(
                Operation::ResetPassword(ALICE),
                &response(status, UNAVAILABLE),
            );
            assert!(matches!(error, ConnectorError::Unavailable(_)), "{status}");
        }
        assert!(matches!(
            refused(Operation::ReadUser(ALICE), &response(409, "")),
            ConnectorError::Internal(_)
        ));
    }

    #[test]
    fn host_errors() {
        let throttled = from_host(&GraphError::Throttled(30));
        assert!(matches!(throttled, ConnectorError::Unavailable(_)));
        assert_eq!(
            message(&throttled),
            "Microsoft Graph is throttling; retry after 30 seconds"
        );
        for error in [
            GraphError::Unavailable("connection refused".into()),
            GraphError::Timeout("10000 ms".into()),
        ] {
            assert!(matches!(from_host(&error), ConnectorError::Unavailable(_)));
        }
        let token = from_host(&GraphError::Token(
            "AADSTS7000215: Invalid client secret provided.".into(),
        ));
        assert!(matches!(token, ConnectorError::Denied(_)));
        assert!(message(&token).contains("client_id") && message(&token).contains("consent"));
        assert!(directory(&token).unwrap().starts_with("AADSTS7000215"));
        let config = from_host(&GraphError::NotConfigured("no Graph settings".into()));
        assert!(matches!(config, ConnectorError::InvalidConfig(_)));
        assert!(message(&config).contains("tenant_id"));
        assert!(matches!(
            from_host(&GraphError::InvalidRequest("bad path".into())),
            ConnectorError::Internal(_)
        ));
    }
}
