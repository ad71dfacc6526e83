//! A guest that exists only to test the host: Allocates without bound in check-password.

use latchkey_plugin_sdk::{Account, Connector, Features, Info, Violation, export_connector};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-memory-bomb".into(),
        version: "0.1.0".into(),
        name: "test-memory-bomb".into(),
        description: "Allocates without bound in check-password.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    fn check_password(_account: Account, _candidate: String) -> Result<(), Vec<Violation>> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so the memory is really used, not just reserved.
            hoard.push(std::hint::black_box(vec![0xA5; 1 << 20]));
        }
    }
}

export_connector!(Guest);
