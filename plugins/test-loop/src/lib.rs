//! A guest that exists only to test the host: Loops forever in check-password. Its "directory"
//! finds one account named after the query (it declares `import`), so a tenant can add an
//! employee through it and reach the loop with a password change.

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, Connector, ConnectorError, Features, Info, Violation,
    export_connector, log,
};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-loop".into(),
        version: "0.1.0".into(),
        name: "test-loop".into(),
        description: "Loops forever in check-password.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    fn find_accounts(
        query: AccountQuery,
        _cursor: Option<String>,
        limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let accounts = if limit == 0 || query.text.is_empty() {
            vec![]
        } else {
            vec![Account {
                id: format!("id-{}", query.text),
                username: query.text.clone(),
                principal_name: None,
                display_name: None,
                email: None,
                location: None,
                enabled: true,
                locked_out: false,
                synced_from_on_premises: false,
            }]
        };
        Ok(AccountPage {
            accounts,
            next_cursor: None,
        })
    }

    fn check_password(_account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        log::log(log::Level::Info, "about to loop forever");
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(candidate.len() as u64));
        }
    }
}

export_connector!(Guest);
