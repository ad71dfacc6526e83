//! A connector for the conformance suite (`latchkey plugin test`) that gets its errors and its
//! limits wrong: an unknown account is an `internal` error instead of `not-found` (in
//! `find-accounts` too, instead of an empty page), `find-accounts` returns every match whatever
//! the `limit`, `password-changed-at` never moves, and `test-connection` never answers (it spins
//! until the host stops it at its deadline). Its policy and checks are right, over an in-memory
//! directory of three accounts (alice, alfred, alma).

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, Connector, ConnectorError, ErrorInfo, Features, Info,
    MatchMode, PasswordPolicy, Report, SetOptions, SetOutcome, SetStatus, Step, StepOutcome,
    Timestamp, complexity, export_connector,
};

struct BrokenErrors;

fn directory() -> Vec<Account> {
    ["alice", "alfred", "alma"]
        .into_iter()
        .map(|name| Account {
            id: format!("fake-{name}"),
            username: name.to_string(),
            principal_name: None,
            display_name: None,
            email: None,
            location: None,
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        })
        .collect()
}

/// The bug: "not there" is reported as a fault of the connector.
fn internal(what: &str) -> ConnectorError {
    ConnectorError::Internal(ErrorInfo {
        message: format!("lookup of {what} failed"),
        directory_text: None,
    })
}

fn resolve(account: &Account) -> Result<Account, ConnectorError> {
    directory()
        .into_iter()
        .find(|a| a.id == account.id)
        .ok_or_else(|| internal(&account.id))
}

impl Connector for BrokenErrors {
    fn describe() -> Info {
        Info {
            id: "test-broken-errors".into(),
            version: "0.1.0".into(),
            name: "Broken errors (test)".into(),
            description: "Answers internal for unknown accounts and ignores the page limit.".into(),
            supports: Features::SET_PASSWORD
                | Features::POLICY
                | Features::IMPORT
                | Features::VERIFY,
            config_schema: r#"{"type":"object","properties":{}}"#.into(),
            secrets_schema: r#"{"type":"object","properties":{}}"#.into(),
        }
    }

    /// The bug: waiting for a directory that never answers, with no timeout of its own.
    fn test_connection() -> Result<Report, ConnectorError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    /// The bugs: `limit` and `cursor` are ignored, and no match is an error.
    fn find_accounts(
        query: AccountQuery,
        _cursor: Option<String>,
        _limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let text = query.text.to_lowercase();
        let accounts: Vec<Account> = directory()
            .into_iter()
            .filter(|a| match query.mode {
                MatchMode::Exact => a.username == text || a.id == query.text,
                MatchMode::Prefix => a.username.starts_with(&text),
                MatchMode::Contains => a.username.contains(&text),
            })
            .collect();
        if accounts.is_empty() {
            return Err(internal(&query.text));
        }
        Ok(AccountPage {
            accounts,
            next_cursor: None,
        })
    }

    fn get_policy(account: Account) -> Result<PasswordPolicy, ConnectorError> {
        resolve(&account)?;
        Ok(complexity::ad_default_policy())
    }

    fn set_password(
        account: Account,
        _password: String,
        _options: SetOptions,
    ) -> Result<SetOutcome, ConnectorError> {
        resolve(&account)?;
        Ok(SetOutcome {
            status: SetStatus::Applied,
            steps: vec![StepOutcome {
                step: Step::SetPassword,
                done: true,
                detail: None,
            }],
            changed_at: None,
        })
    }

    /// The bug: a date long past, whatever was set since.
    fn password_changed_at(account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        resolve(&account)?;
        Ok(Some(1_000_000_000))
    }
}

export_connector!(BrokenErrors);
