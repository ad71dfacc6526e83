//! Size limits on what a plugin hands back. A plugin's memory is capped, but what it returns
//! is copied into the server and then shown in pages, written to the database and the audit:
//! each string and list has a bound, and an answer over it is refused as a whole with the
//! field that broke it.

use super::wit::types::{
    Account, AccountPage, ConnectorError, ErrorInfo, Info, PasswordPolicy, Report, SetOutcome,
    Step, Violation,
};

/// The most accounts in one page of `find-accounts`.
pub const MAX_PAGE: u32 = 1000;
/// The longest short text (names, identifiers, messages), in bytes.
pub const MAX_TEXT: usize = 4096;
/// The longest JSON Schema in `describe`, in bytes.
pub const MAX_SCHEMA: usize = 256 * 1024;
/// The most violations from one check.
pub const MAX_VIOLATIONS: usize = 64;
/// The most steps in one outcome, or checks in one report.
pub const MAX_ITEMS: usize = 64;

fn text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!(
            "`{field}` is {} bytes long; the limit is {max}",
            value.len()
        ));
    }
    Ok(())
}

fn count(field: &str, len: usize, max: usize) -> Result<(), String> {
    if len > max {
        return Err(format!("`{field}` has {len} items; the limit is {max}"));
    }
    Ok(())
}

pub(crate) fn info(info: &Info) -> Result<(), String> {
    text("id", &info.id, 64)?;
    text("version", &info.version, 64)?;
    text("name", &info.name, 256)?;
    text("description", &info.description, MAX_TEXT)?;
    text("config-schema", &info.config_schema, MAX_SCHEMA)?;
    text("secrets-schema", &info.secrets_schema, MAX_SCHEMA)?;
    for (field, schema) in [
        ("config-schema", &info.config_schema),
        ("secrets-schema", &info.secrets_schema),
    ] {
        let value: serde_json::Value =
            serde_json::from_str(schema).map_err(|e| format!("`{field}` is not JSON: {e}"))?;
        if !value.is_object() {
            return Err(format!("`{field}` is not a JSON Schema object"));
        }
    }
    Ok(())
}

fn account(account: &Account) -> Result<(), String> {
    text("account.id", &account.id, 256)?;
    text("account.username", &account.username, 256)?;
    for (field, value) in [
        ("account.principal-name", &account.principal_name),
        ("account.display-name", &account.display_name),
        ("account.email", &account.email),
    ] {
        text(field, value.as_deref().unwrap_or(""), 512)?;
    }
    text(
        "account.location",
        account.location.as_deref().unwrap_or(""),
        2048,
    )
}

pub(crate) fn page(page: &AccountPage, limit: u32) -> Result<(), String> {
    count("accounts", page.accounts.len(), limit as usize)?;
    text(
        "next-cursor",
        page.next_cursor.as_deref().unwrap_or(""),
        MAX_TEXT,
    )?;
    page.accounts.iter().try_for_each(account)
}

pub(crate) fn policy(policy: &PasswordPolicy) -> Result<(), String> {
    text("source", &policy.source, 1024)?;
    text(
        "allowed-symbols",
        policy.allowed_symbols.as_deref().unwrap_or(""),
        1024,
    )?;
    if let Some(rule) = &policy.complexity {
        count("complexity.classes", rule.classes.len(), 5)?;
    }
    Ok(())
}

pub(crate) fn violations(violations: &[Violation]) -> Result<(), String> {
    count("violations", violations.len(), MAX_VIOLATIONS)?;
    for violation in violations {
        if let Violation::RejectedByDirectory(reason) = violation {
            text("rejected-by-directory", reason, MAX_TEXT)?;
        }
    }
    Ok(())
}

fn error_info(info: &ErrorInfo) -> Result<(), String> {
    text("message", &info.message, MAX_TEXT)?;
    text(
        "directory-text",
        info.directory_text.as_deref().unwrap_or(""),
        MAX_TEXT,
    )
}

pub(crate) fn connector_error(error: &ConnectorError) -> Result<(), String> {
    match error {
        ConnectorError::Policy(v) => violations(v),
        ConnectorError::NotFound(i)
        | ConnectorError::Denied(i)
        | ConnectorError::WrongOldPassword(i)
        | ConnectorError::Unavailable(i)
        | ConnectorError::InvalidConfig(i)
        | ConnectorError::Unsupported(i)
        | ConnectorError::Internal(i) => error_info(i),
    }
}

pub(crate) fn outcome(outcome: &SetOutcome) -> Result<(), String> {
    count("steps", outcome.steps.len(), MAX_ITEMS)?;
    for step in &outcome.steps {
        if let Step::Other(name) = &step.step {
            text("step", name, 256)?;
        }
        text("detail", step.detail.as_deref().unwrap_or(""), MAX_TEXT)?;
    }
    Ok(())
}

pub(crate) fn report(report: &Report) -> Result<(), String> {
    count("checks", report.checks.len(), MAX_ITEMS)?;
    for check in &report.checks {
        text("check.name", &check.name, 256)?;
        text("check.detail", &check.detail, MAX_TEXT)?;
        text(
            "check.advice",
            check.advice.as_deref().unwrap_or(""),
            MAX_TEXT,
        )?;
    }
    Ok(())
}
