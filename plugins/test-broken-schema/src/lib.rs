//! A connector for the conformance suite (`latchkey plugin test`) whose config schema is not
//! JSON at all. The host refuses such a `describe` when it loads the plugin, so the suite can
//! run nothing else: it must say why.

use latchkey_plugin_sdk::{Connector, Features, Info, export_connector};

struct BrokenSchema;

impl Connector for BrokenSchema {
    fn describe() -> Info {
        Info {
            id: "test-broken-schema".into(),
            version: "0.1.0".into(),
            name: "Broken schema (test)".into(),
            description: "Its config schema is not JSON, on purpose.".into(),
            supports: Features::POLICY,
            config_schema: "{ url: string }".into(),
            secrets_schema: r#"{"type":"object"}"#.into(),
        }
    }
}

export_connector!(BrokenSchema);
