//! A connector for the conformance suite (`latchkey plugin test`) whose `check-password`
//! forgets the minimum length that its `set-password` enforces: the suite's "check-password
//! catches what set-password would refuse" checks must fail for it. Everything else is right,
//! over an in-memory directory of three accounts (alice, bob, carol) that never changes.

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, CharClass, Complexity, Connector, ConnectorError,
    ErrorInfo, Features, Info, MatchMode, PasswordPolicy, SetOptions, SetOutcome, SetStatus, Step,
    StepOutcome, Timestamp, Violation, complexity, export_connector,
};

const MIN_LENGTH: u32 = 12;

struct BrokenCheck;

fn directory() -> Vec<Account> {
    ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| Account {
            id: format!("fake-{name}"),
            username: name.to_string(),
            principal_name: Some(format!("{name}@fake.test")),
            display_name: None,
            email: None,
            location: None,
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        })
        .collect()
}

fn resolve(account: &Account) -> Result<Account, ConnectorError> {
    directory()
        .into_iter()
        .find(|a| a.id == account.id)
        .ok_or_else(|| {
            ConnectorError::NotFound(ErrorInfo {
                message: format!("no account with id {}", account.id),
                directory_text: None,
            })
        })
}

fn policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: MIN_LENGTH,
        max_length: 128,
        complexity: Some(Complexity {
            required: 3,
            classes: vec![
                CharClass::Uppercase,
                CharClass::Lowercase,
                CharClass::Digit,
                CharClass::Symbol,
            ],
        }),
        allowed_symbols: None,
        forbid_username: true,
        forbid_display_name: false,
        history_length: 0,
        min_age_seconds: 0,
        max_age_seconds: None,
        lockout_threshold: 0,
        source: "the fake directory".into(),
    }
}

fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as Timestamp)
        .unwrap_or_default()
}

impl Connector for BrokenCheck {
    fn describe() -> Info {
        Info {
            id: "test-broken-check".into(),
            version: "0.1.0".into(),
            name: "Broken check (test)".into(),
            description: "Its check-password accepts short passwords its set-password refuses."
                .into(),
            supports: Features::SET_PASSWORD
                | Features::POLICY
                | Features::IMPORT
                | Features::VERIFY,
            config_schema: r#"{"type":"object","properties":{}}"#.into(),
            secrets_schema: r#"{"type":"object","properties":{}}"#.into(),
        }
    }

    fn find_accounts(
        query: AccountQuery,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let text = query.text.to_lowercase();
        let matching: Vec<Account> = directory()
            .into_iter()
            .filter(|a| match query.mode {
                MatchMode::Exact => a.username == text || a.id == query.text,
                MatchMode::Prefix => a.username.starts_with(&text),
                MatchMode::Contains => a.username.contains(&text),
            })
            .collect();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + limit as usize).min(matching.len());
        Ok(AccountPage {
            accounts: matching.get(start..end).unwrap_or_default().to_vec(),
            next_cursor: (end < matching.len()).then(|| end.to_string()),
        })
    }

    fn get_policy(account: Account) -> Result<PasswordPolicy, ConnectorError> {
        resolve(&account)?;
        Ok(policy())
    }

    /// The bug: the length rule is left out of the check.
    fn check_password(account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        let account = resolve(&account).map_err(|_| {
            vec![Violation::RejectedByDirectory(
                "no such account".to_string(),
            )]
        })?;
        let forgetful = PasswordPolicy {
            min_length: 0,
            ..policy()
        };
        let violations = complexity::check(&candidate, &account, &forgetful);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    fn set_password(
        account: Account,
        password: String,
        _options: SetOptions,
    ) -> Result<SetOutcome, ConnectorError> {
        resolve(&account)?;
        if (password.chars().count() as u32) < MIN_LENGTH {
            return Err(ConnectorError::Policy(vec![Violation::TooShort(
                MIN_LENGTH,
            )]));
        }
        Ok(SetOutcome {
            status: SetStatus::Applied,
            steps: vec![StepOutcome {
                step: Step::SetPassword,
                done: true,
                detail: None,
            }],
            changed_at: Some(now()),
        })
    }

    fn password_changed_at(account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        resolve(&account)?;
        Ok(Some(now()))
    }
}

export_connector!(BrokenCheck);
