//! Writing passwords, and reading when they last changed.
//!
//! A cloud-only user's reset is one `PATCH /v1.0/users/{id}` of its `passwordProfile`, which
//! also carries "must change at next sign-in"; Graph answers 204. A user synced from
//! on-premises is never written through Graph (Entra ID refuses it, and the on-premises
//! directory is the source): its reset reports `awaiting-sync`, and Latchkey then watches
//! `lastPasswordChangeDateTime` for password hash sync to carry the on-premises change.
//!
//! A user's own change with the old password is not possible for an application: Graph's
//! `changePassword` works only for the signed-in user (delegated permission).
//!
//! The password travels only inside the PATCH body handed to the host, built by serde_json.
//! It is never formatted into a message or a log line, and any error of the reset is scrubbed
//! of it, in case a service ever echoed it.

use latchkey_plugin_sdk::graph::{Method, Request};
use latchkey_plugin_sdk::{
    Account, ConnectorError, ErrorInfo, SetOptions, SetOutcome, SetStatus, Step, StepOutcome,
    Timestamp, Violation,
};

use crate::account;
use crate::client;
use crate::config;
use crate::datetime;
use crate::errors::{Operation, PASSWORD_REFUSED};
use crate::policy;
use crate::rules;

/// What the reset's step says when an unlock was asked for.
pub const UNLOCK_DETAIL: &str = "Microsoft Graph has no way for an application to clear Entra \
     ID's smart lockout; it ends by itself once the tenant's lockout duration has passed";

/// What the reset's step says when the directory's history check was asked for.
pub const HISTORY_DETAIL: &str = "Microsoft Graph has no way to make Entra ID check the \
     account's password history on an administrator's reset; Latchkey's own history of the \
     passwords it set applies";

/// The body of a reset.
pub fn reset_body(password: &str, must_change: bool) -> String {
    serde_json::json!({
        "passwordProfile": {
            "password": password,
            "forceChangePasswordNextSignIn": must_change,
            "forceChangePasswordNextSignInWithMfa": false,
        }
    })
    .to_string()
}

/// The reset request for the user `id`.
pub fn reset_request(id: &str, password: &str, must_change: bool) -> Request {
    Request {
        method: Method::Patch,
        path: format!("/v1.0/users/{id}"),
        query: vec![],
        body: Some(reset_body(password, must_change)),
    }
}

fn outcome(step: Step, done: bool, detail: Option<String>) -> StepOutcome {
    StepOutcome { step, done, detail }
}

/// Minutes, in words, for messages.
pub fn minutes_in_words(seconds: u64) -> String {
    match seconds.div_ceil(60) {
        1 => "1 minute".to_string(),
        minutes => format!("{minutes} minutes"),
    }
}

/// The outcome for an account synced from on-premises: nothing is written here.
pub fn awaiting_sync(options: &SetOptions, sync_timeout_seconds: u64) -> SetOutcome {
    let mut detail = format!(
        "not written to Entra ID: this account is synced from on-premises Active Directory, so \
         its password is set there and password hash sync carries it to Entra ID; Latchkey \
         watches for it for up to {}",
        minutes_in_words(sync_timeout_seconds)
    );
    if options.unlock || options.must_change_at_next_logon {
        detail.push_str(
            " (unlocking and \"must change at next logon\" are likewise done on-premises)",
        );
    }
    SetOutcome {
        status: SetStatus::AwaitingSync,
        steps: vec![outcome(Step::SetPassword, false, Some(detail))],
        changed_at: None,
    }
}

/// The outcome of a reset Graph accepted.
pub fn applied(options: &SetOptions) -> SetOutcome {
    let mut steps = vec![outcome(Step::SetPassword, true, None)];
    if options.enforce_history {
        steps.push(outcome(
            Step::HistoryHint,
            false,
            Some(HISTORY_DETAIL.into()),
        ));
    }
    if options.unlock {
        steps.push(outcome(Step::Unlock, false, Some(UNLOCK_DETAIL.into())));
    }
    if options.must_change_at_next_logon {
        steps.push(outcome(
            Step::MustChange,
            true,
            Some("Entra ID will ask for a new password at the next sign-in".into()),
        ));
    }
    SetOutcome {
        status: SetStatus::Applied,
        steps,
        // A 204 says nothing of when, and reading lastPasswordChangeDateTime right after the
        // write may still return the previous value (Entra ID replicates eventually).
        changed_at: None,
    }
}

/// `text` with every occurrence of `password` replaced.
fn scrub(text: String, password: &str) -> String {
    if password.is_empty() || !text.contains(password) {
        text
    } else {
        text.replace(password, "[redacted]")
    }
}

/// `error` with the password scrubbed from its message and directory text.
pub fn redact(error: ConnectorError, password: &str) -> ConnectorError {
    let clean = |info: ErrorInfo| ErrorInfo {
        message: scrub(info.message, password),
        directory_text: info.directory_text.map(|t| scrub(t, password)),
    };
    match error {
        ConnectorError::Policy(violations) => ConnectorError::Policy(
            violations
                .into_iter()
                .map(|v| match v {
                    Violation::RejectedByDirectory(text) => {
                        Violation::RejectedByDirectory(scrub(text, password))
                    }
                    other => other,
                })
                .collect(),
        ),
        ConnectorError::NotFound(i) => ConnectorError::NotFound(clean(i)),
        ConnectorError::Denied(i) => ConnectorError::Denied(clean(i)),
        ConnectorError::WrongOldPassword(i) => ConnectorError::WrongOldPassword(clean(i)),
        ConnectorError::Unavailable(i) => ConnectorError::Unavailable(clean(i)),
        ConnectorError::InvalidConfig(i) => ConnectorError::InvalidConfig(clean(i)),
        ConnectorError::Unsupported(i) => ConnectorError::Unsupported(clean(i)),
        ConnectorError::Internal(i) => ConnectorError::Internal(clean(i)),
    }
}

/// Whether `error` is Entra ID's refusal of a password, which does not say which rule.
pub fn is_unspecified_refusal(error: &ConnectorError) -> bool {
    matches!(error, ConnectorError::Policy(v)
        if matches!(v.as_slice(), [Violation::RejectedByDirectory(text)] if text == PASSWORD_REFUSED))
}

/// An administrator's reset.
pub fn set(
    account: &Account,
    password: &str,
    options: &SetOptions,
) -> Result<SetOutcome, ConnectorError> {
    if account.synced_from_on_premises {
        return Ok(awaiting_sync(options, config::sync_timeout_seconds()));
    }
    let id = account::object_id(account)?;
    let request = reset_request(&id, password, options.must_change_at_next_logon);
    match client::call(Operation::ResetPassword(&id), request) {
        Ok(_) => Ok(applied(options)),
        Err(error) if is_unspecified_refusal(&error) => {
            // Name the rules the password breaks when the user's policy says which; what is
            // left is the banned-password list.
            let specific = policy::read(&id)
                .map(|policy| rules::violations(password, account, &policy))
                .unwrap_or_default();
            if specific.is_empty() {
                Err(error)
            } else {
                Err(ConnectorError::Policy(specific))
            }
        }
        Err(error) => Err(redact(error, password)),
    }
}

/// A user's change with the old password: not possible for an application. A synced account
/// is changed on-premises, so it is awaited here like a reset.
pub fn change(account: &Account) -> Result<SetOutcome, ConnectorError> {
    if account.synced_from_on_premises {
        return Ok(awaiting_sync(
            &SetOptions {
                must_change_at_next_logon: false,
                unlock: false,
                enforce_history: false,
            },
            config::sync_timeout_seconds(),
        ));
    }
    Err(change_unsupported())
}

/// The error for a cloud-only user's change.
pub fn change_unsupported() -> ConnectorError {
    ConnectorError::Unsupported(ErrorInfo {
        message: "Entra ID does not let an application change a user's password with the old \
                  one (Graph's changePassword works only for the signed-in user); an \
                  administrator's reset sets it instead"
            .into(),
        directory_text: None,
    })
}

/// Graph's `lastPasswordChangeDateTime` as unix seconds; none when Graph has none.
pub fn parse_changed_at(value: Option<&str>) -> Result<Option<Timestamp>, ConnectorError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => datetime::parse_iso8601(text).map(Some).ok_or_else(|| {
            ConnectorError::Internal(ErrorInfo {
                message: "Microsoft Graph's lastPasswordChangeDateTime is not an ISO 8601 date \
                          and time; check graph_endpoint if it is set"
                    .into(),
                directory_text: Some(text.chars().take(100).collect()),
            })
        }),
    }
}

/// When Entra ID last recorded a password change for `account`.
pub fn changed_at(account: &Account) -> Result<Option<Timestamp>, ConnectorError> {
    let id = account::object_id(account)?;
    let user = account::read(&id, "lastPasswordChangeDateTime")?;
    parse_changed_at(user.last_password_change_date_time.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "9c8b66a4-19ec-497c-b0be-c764ff1c6391";

    fn options(must_change: bool, unlock: bool, history: bool) -> SetOptions {
        SetOptions {
            must_change_at_next_logon: must_change,
            unlock,
            enforce_history: history,
        }
    }

    #[test]
    fn the_reset_body_escapes_the_password() {
        let body = reset_body("p\"a\\ss\nword'é", true);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"passwordProfile": {
                "password": "p\"a\\ss\nword'é",
                "forceChangePasswordNextSignIn": true,
                "forceChangePasswordNextSignInWithMfa": false
            }})
        );
        let request = reset_request(ALICE, "Tr0ub4dor&3x", false);
        assert_eq!(request.method, Method::Patch);
        assert_eq!(request.path, format!("/v1.0/users/{ALICE}"));
        assert!(request.query.is_empty());
        let json: serde_json::Value = serde_json::from_str(&request.body.unwrap()).unwrap();
        assert_eq!(
            json["passwordProfile"]["forceChangePasswordNextSignIn"],
            false
        );
    }

    #[test]
    fn a_synced_account_awaits_sync() {
        let outcome = awaiting_sync(&options(false, false, false), 1800);
        assert_eq!(outcome.status, SetStatus::AwaitingSync);
        assert_eq!(outcome.changed_at, None);
        let [step] = outcome.steps.as_slice() else {
            panic!("{:?}", outcome.steps)
        };
        assert_eq!(step.step, Step::SetPassword);
        assert!(!step.done);
        let detail = step.detail.as_deref().unwrap();
        assert!(detail.contains("password hash sync") && detail.contains("30 minutes"));
        assert!(!detail.contains("unlocking"));
        let with_unlock = awaiting_sync(&options(true, true, false), 60);
        let detail = with_unlock.steps[0].detail.as_deref().unwrap();
        assert!(detail.contains("unlocking") && detail.contains("1 minute"));
    }

    #[test]
    fn an_applied_reset_reports_every_step_asked_for() {
        assert_eq!(
            applied(&options(false, false, false)),
            SetOutcome {
                status: SetStatus::Applied,
                steps: vec![outcome(Step::SetPassword, true, None)],
                changed_at: None,
            }
        );
        let all = applied(&options(true, true, true));
        let steps: Vec<(Step, bool)> = all.steps.iter().map(|s| (s.step.clone(), s.done)).collect();
        assert_eq!(
            steps,
            vec![
                (Step::SetPassword, true),
                (Step::HistoryHint, false),
                (Step::Unlock, false),
                (Step::MustChange, true),
            ]
        );
        assert_eq!(all.steps[2].detail.as_deref(), Some(UNLOCK_DETAIL));
        assert_eq!(all.steps[1].detail.as_deref(), Some(HISTORY_DETAIL));
    }

    #[test]
    fn errors_are_scrubbed_of_the_password() {
        let error = ConnectorError::Internal(ErrorInfo {
            message: "refused".into(),
            directory_text: Some("HTTP 400: value 'S3cret!pw' is invalid".into()),
        });
        let ConnectorError::Internal(info) = redact(error, "S3cret!pw") else {
            panic!()
        };
        assert_eq!(
            info.directory_text.as_deref(),
            Some("HTTP 400: value '[redacted]' is invalid")
        );
        let policy = ConnectorError::Policy(vec![
            Violation::RejectedByDirectory("S3cret!pw is banned".into()),
            Violation::TooShort(8),
        ]);
        assert_eq!(
            redact(policy, "S3cret!pw"),
            ConnectorError::Policy(vec![
                Violation::RejectedByDirectory("[redacted] is banned".into()),
                Violation::TooShort(8),
            ])
        );
        let untouched = ConnectorError::Denied(ErrorInfo {
            message: "m".into(),
            directory_text: None,
        });
        assert_eq!(redact(untouched.clone(), ""), untouched);
    }

    #[test]
    fn the_unspecified_refusal_is_recognised() {
        assert!(is_unspecified_refusal(&ConnectorError::Policy(vec![
            Violation::RejectedByDirectory(PASSWORD_REFUSED.into())
        ])));
        assert!(!is_unspecified_refusal(&ConnectorError::Policy(vec![
            Violation::TooShort(8)
        ])));
    }

    #[test]
    fn changes_are_unsupported_with_a_reason() {
        let ConnectorError::Unsupported(info) = change_unsupported() else {
            panic!()
        };
        assert!(info.message.contains("changePassword"));
    }

    #[test]
    fn last_password_change() {
        assert_eq!(parse_changed_at(None).unwrap(), None);
        assert_eq!(parse_changed_at(Some("")).unwrap(), None);
        assert_eq!(
            parse_changed_at(Some("2024-05-01T10:20:30Z")).unwrap(),
            Some(1_714_558_830)
        );
        assert!(matches!(
            parse_changed_at(Some("yesterday")),
            Err(ConnectorError::Internal(_))
        ));
        // Graph's null is read as none.
        let user: account::GraphUser =
            serde_json::from_str(r#"{"lastPasswordChangeDateTime": null}"#).unwrap();
        assert_eq!(user.last_password_change_date_time, None);
    }
}
