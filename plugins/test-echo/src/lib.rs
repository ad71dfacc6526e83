//! A well-behaved connector for the host's tests and benchmarks. Its "directory" is computed:
//! every query finds one account named after the query text. `check-password` applies Active
//! Directory's default policy with the SDK's MS-SAMR check (the same code the native benchmark
//! runs), `test-connection` echoes its configuration through the `config` capability and logs
//! through `log`.

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, Check, CheckStatus, Connector, ConnectorError, Features,
    Info, PasswordPolicy, Report, SetOptions, SetOutcome, SetStatus, Step, StepOutcome, Timestamp,
    complexity, config, export_connector, log,
};

struct Echo;

fn account_named(name: &str) -> Account {
    Account {
        id: format!("id-{name}"),
        username: name.to_string(),
        principal_name: Some(format!("{name}@corp.test")),
        display_name: Some(format!("Test {name}")),
        email: None,
        location: Some(format!("CN={name},CN=Users,DC=corp,DC=test")),
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    }
}

impl Connector for Echo {
    fn describe() -> Info {
        Info {
            id: "test-echo".into(),
            version: "0.1.0".into(),
            name: "Echo (test)".into(),
            description: "A computed directory for Latchkey's own tests.".into(),
            supports: Features::SET_PASSWORD
                | Features::POLICY
                | Features::IMPORT
                | Features::VERIFY,
            config_schema: r#"{"type":"object","properties":{"greeting":{"type":"string"}}}"#
                .into(),
            secrets_schema: r#"{"type":"object","properties":{}}"#.into(),
        }
    }

    fn test_connection() -> Result<Report, ConnectorError> {
        log::log(log::Level::Info, "test-connection called");
        let greeting = config::get("greeting").unwrap_or_else(|| "(none)".into());
        Ok(Report {
            checks: vec![Check {
                name: "configuration".into(),
                status: CheckStatus::Ok,
                detail: format!("greeting = {greeting}; all = {}", config::get_all()),
                advice: None,
            }],
        })
    }

    fn find_accounts(
        query: AccountQuery,
        _cursor: Option<String>,
        limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let accounts = if limit == 0 || query.text.is_empty() {
            vec![]
        } else {
            vec![account_named(&query.text)]
        };
        Ok(AccountPage {
            accounts,
            next_cursor: None,
        })
    }

    fn get_policy(_account: Account) -> Result<PasswordPolicy, ConnectorError> {
        Ok(complexity::ad_default_policy())
    }

    fn set_password(
        _account: Account,
        _password: String,
        options: SetOptions,
    ) -> Result<SetOutcome, ConnectorError> {
        let mut steps = vec![StepOutcome {
            step: Step::SetPassword,
            done: true,
            detail: None,
        }];
        if options.unlock {
            steps.push(StepOutcome {
                step: Step::Unlock,
                done: true,
                detail: None,
            });
        }
        if options.must_change_at_next_logon {
            steps.push(StepOutcome {
                step: Step::MustChange,
                done: true,
                detail: None,
            });
        }
        Ok(SetOutcome {
            status: SetStatus::Applied,
            steps,
            changed_at: None,
        })
    }

    fn password_changed_at(_account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        Ok(None)
    }
}

export_connector!(Echo);
