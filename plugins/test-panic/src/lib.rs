//! A guest that exists only to test the host: Panics in check-password.

use latchkey_plugin_sdk::{Account, Connector, Features, Info, Violation, export_connector, log};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-panic".into(),
        version: "0.1.0".into(),
        name: "test-panic".into(),
        description: "Panics in check-password.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    fn check_password(account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        log::log(
            log::Level::Info,
            &format!("checking a password for {}", account.username),
        );
        // A careless plugin that puts the candidate into its panic message: the host must
        // redact it before anything reaches a log or an error.
        panic!("deliberate panic in test-panic (candidate was {candidate})");
    }
}

export_connector!(Guest);
