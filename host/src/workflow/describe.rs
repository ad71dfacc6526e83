//! What the workflow says about directory answers, in JSON an API client and the console can
//! show: accounts (stored with an employee and passed back to its connector), violations (a
//! rule code, its parameter and a sentence), connector errors (a kind and a sentence; the
//! directory's own text goes to the audit only) and set outcomes.
//!
//! It owns these shapes. It must never put a password into any of them.

use serde_json::{Value, json};

use crate::runtime::CallError;
use crate::runtime::wit::types::{
    Account, ConnectorError, SetOutcome, SetStatus, Step, StepOutcome, Violation,
};

/// An account as JSON (the WIT record's fields, snake_case).
pub fn account_to_json(account: &Account) -> Value {
    json!({
        "id": account.id,
        "username": account.username,
        "principal_name": account.principal_name,
        "display_name": account.display_name,
        "email": account.email,
        "location": account.location,
        "enabled": account.enabled,
        "locked_out": account.locked_out,
        "synced_from_on_premises": account.synced_from_on_premises,
    })
}

/// The account stored as JSON; `None` when it lacks an id or a username.
pub fn account_from_json(value: &Value) -> Option<Account> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let flag = |name: &str| value.get(name).and_then(Value::as_bool);
    Some(Account {
        id: text("id")?,
        username: text("username")?,
        principal_name: text("principal_name"),
        display_name: text("display_name"),
        email: text("email"),
        location: text("location"),
        enabled: flag("enabled").unwrap_or(true),
        locked_out: flag("locked_out").unwrap_or(false),
        synced_from_on_premises: flag("synced_from_on_premises").unwrap_or(false),
    })
}

/// A violation: `{"rule", "message"}` plus its parameter where it has one.
pub fn violation(violation: &Violation) -> Value {
    let (rule, message, extra) = match violation {
        Violation::TooShort(min) => (
            "too-short",
            format!("must be at least {min} characters long"),
            json!({"min": min}),
        ),
        Violation::TooLong(max) => (
            "too-long",
            format!("must be at most {max} characters long"),
            json!({"max": max}),
        ),
        Violation::NotComplex(classes) => (
            "not-complex",
            format!(
                "must mix at least {classes} kinds of character (uppercase, lowercase, digits, \
                 symbols)"
            ),
            json!({"classes_needed": classes}),
        ),
        Violation::ContainsAccountName => (
            "contains-account-name",
            "must not contain the account name".to_string(),
            json!({}),
        ),
        Violation::ContainsDisplayName => (
            "contains-display-name",
            "must not contain part of the person's name".to_string(),
            json!({}),
        ),
        Violation::InHistory => (
            "in-history",
            "must not be one of the account's previous passwords".to_string(),
            json!({}),
        ),
        Violation::TooYoung(seconds) => (
            "too-young",
            format!(
                "the password was changed too recently; a change is allowed in {}",
                duration(*seconds)
            ),
            json!({"seconds_left": seconds}),
        ),
        Violation::InvalidCharacter => (
            "invalid-character",
            "contains a character the directory does not accept".to_string(),
            json!({}),
        ),
        Violation::BannedWord => (
            "banned-word",
            "contains a word the directory bans".to_string(),
            json!({}),
        ),
        Violation::RejectedByDirectory(text) => (
            "rejected-by-directory",
            format!("the directory refused it: {text}"),
            json!({}),
        ),
    };
    let mut out = json!({"rule": rule, "message": message});
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

fn duration(seconds: u64) -> String {
    match seconds {
        0..=119 => format!("{seconds} seconds"),
        120..=7199 => format!("{} minutes", seconds.div_ceil(60)),
        7200..=172_799 => format!("{} hours", seconds.div_ceil(3600)),
        _ => format!("{} days", seconds.div_ceil(86_400)),
    }
}

/// How a failed call should be answered: is it the directory being unreachable (retry
/// later) or a failure that needs someone to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The directory is down or busy: 503, retry later.
    Unavailable,
    /// The directory (or the plugin) failed or refused: 502, someone must act.
    Failed,
}

/// A failed connector call as JSON: `{"kind", "message"}` (the directory's raw text is not
/// here: it goes to the audit) and whether it is worth retrying.
pub fn call_error(error: &CallError) -> (Value, FailureKind) {
    let (kind, info, failure) = match error {
        CallError::Plugin(plugin) => {
            return (
                json!({"kind": "plugin-failed", "message": plugin.to_string()}),
                if matches!(plugin, crate::runtime::PluginError::Busy) {
                    FailureKind::Unavailable
                } else {
                    FailureKind::Failed
                },
            );
        }
        CallError::Connector(ConnectorError::Policy(violations)) => {
            let list: Vec<Value> = violations.iter().map(violation).collect();
            return (
                json!({"kind": "policy", "message": "the directory refused the password",
                       "violations": list}),
                FailureKind::Failed,
            );
        }
        CallError::Connector(ConnectorError::NotFound(i)) => ("not-found", i, FailureKind::Failed),
        CallError::Connector(ConnectorError::Denied(i)) => ("denied", i, FailureKind::Failed),
        CallError::Connector(ConnectorError::WrongOldPassword(i)) => {
            ("wrong-old-password", i, FailureKind::Failed)
        }
        CallError::Connector(ConnectorError::Unavailable(i)) => {
            ("unavailable", i, FailureKind::Unavailable)
        }
        CallError::Connector(ConnectorError::InvalidConfig(i)) => {
            ("invalid-config", i, FailureKind::Failed)
        }
        CallError::Connector(ConnectorError::Unsupported(i)) => {
            ("unsupported", i, FailureKind::Failed)
        }
        CallError::Connector(ConnectorError::Internal(i)) => ("internal", i, FailureKind::Failed),
    };
    (json!({"kind": kind, "message": info.message}), failure)
}

/// The directory's own words of a failed call, for the audit (never shown as the message).
pub fn directory_text(error: &CallError) -> Option<String> {
    match error {
        CallError::Connector(
            ConnectorError::NotFound(i)
            | ConnectorError::Denied(i)
            | ConnectorError::WrongOldPassword(i)
            | ConnectorError::Unavailable(i)
            | ConnectorError::InvalidConfig(i)
            | ConnectorError::Unsupported(i)
            | ConnectorError::Internal(i),
        ) => i.directory_text.clone(),
        _ => None,
    }
}

/// A successful set as JSON: status, each step, when the directory recorded it.
pub fn set_outcome(outcome: &SetOutcome) -> Value {
    json!({
        "ok": true,
        "status": match outcome.status {
            SetStatus::Applied => "applied",
            SetStatus::AwaitingSync => "awaiting-sync",
        },
        "steps": outcome.steps.iter().map(step).collect::<Vec<_>>(),
        "changed_at": outcome.changed_at,
    })
}

fn step(outcome: &StepOutcome) -> Value {
    let name = match &outcome.step {
        Step::SetPassword => "set-password".to_string(),
        Step::Unlock => "unlock".to_string(),
        Step::MustChange => "must-change".to_string(),
        Step::HistoryHint => "history-hint".to_string(),
        Step::Other(name) => name.clone(),
    };
    json!({"step": name, "done": outcome.done, "detail": outcome.detail})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_round_trip_through_json() {
        let account = Account {
            id: "guid".into(),
            username: "alice".into(),
            principal_name: Some("alice@corp.test".into()),
            display_name: Some("Alice Liddell".into()),
            email: None,
            location: Some("CN=Alice,OU=Staff,DC=corp,DC=test".into()),
            enabled: true,
            locked_out: true,
            synced_from_on_premises: false,
        };
        let back = account_from_json(&account_to_json(&account)).unwrap();
        assert_eq!(back.username, "alice");
        assert_eq!(back.location, account.location);
        assert!(back.locked_out);
        assert!(account_from_json(&json!({"username": "x"})).is_none());
    }

    #[test]
    fn violations_name_their_rule_and_parameter() {
        let v = violation(&Violation::TooShort(12));
        assert_eq!(v["rule"], "too-short");
        assert_eq!(v["min"], 12);
        assert!(v["message"].as_str().unwrap().contains("12"));
        assert_eq!(violation(&Violation::TooYoung(3600))["seconds_left"], 3600);
    }
}
