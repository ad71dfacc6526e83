//! A connector for the conformance suite (`latchkey plugin test`) whose `describe` is wrong in
//! several ways at once: its id is not its manifest's, its name is empty, its config schema is
//! JSON but not a JSON Schema (`"type": "objekt"`), and it declares `import` while
//! `find-accounts` answers `unsupported` (the SDK's default). The suite must fail each of them
//! with its reason.

use latchkey_plugin_sdk::{
    Account, Connector, ConnectorError, Features, Info, PasswordPolicy, complexity,
    export_connector,
};

struct BrokenDescribe;

impl Connector for BrokenDescribe {
    fn describe() -> Info {
        Info {
            // The manifest says `test-broken-describe`.
            id: "broken-describe".into(),
            version: "0.1.0".into(),
            name: String::new(),
            description: "Describes itself wrongly, on purpose.".into(),
            // `find-accounts` is not implemented: declaring `import` is a lie.
            supports: Features::POLICY | Features::IMPORT,
            config_schema: r#"{"type":"objekt","properties":{"url":{"type":"string"}}}"#.into(),
            secrets_schema: r#"{"type":"object","properties":{}}"#.into(),
        }
    }

    fn get_policy(_account: Account) -> Result<PasswordPolicy, ConnectorError> {
        Ok(complexity::ad_default_policy())
    }
}

export_connector!(BrokenDescribe);
