//! A guest that exists only to test the host: Returns oversize strings and lists.

use latchkey_plugin_sdk::{
    Account, Connector, ConnectorError, Features, Info, Violation, export_connector,
};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-oversize".into(),
        version: "0.1.0".into(),
        name: "test-oversize".into(),
        description: "Returns oversize strings and lists.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

use latchkey_plugin_sdk::{AccountPage, AccountQuery, PasswordPolicy, complexity};

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    /// Returns 100 times the accounts asked for.
    fn find_accounts(
        query: AccountQuery,
        _cursor: Option<String>,
        limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let account = Account {
            id: "x".into(),
            username: query.text,
            principal_name: None,
            display_name: None,
            email: None,
            location: None,
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        };
        Ok(AccountPage {
            accounts: vec![account; (limit as usize).max(1) * 100],
            next_cursor: None,
        })
    }

    /// A policy whose `source` is 8 MiB long.
    fn get_policy(_account: Account) -> Result<PasswordPolicy, ConnectorError> {
        let mut policy = complexity::ad_default_policy();
        policy.source = "s".repeat(8 << 20);
        Ok(policy)
    }

    /// 100,000 violations.
    fn check_password(_account: Account, _candidate: String) -> Result<(), Vec<Violation>> {
        Err(vec![Violation::BannedWord; 100_000])
    }
}

export_connector!(Guest);
