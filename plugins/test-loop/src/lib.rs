//! A guest that exists only to test the host: Loops forever in check-password.

use latchkey_plugin_sdk::{Account, Connector, Features, Info, Violation, export_connector, log};

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

    fn check_password(_account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        log::log(log::Level::Info, "about to loop forever");
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(candidate.len() as u64));
        }
    }
}

export_connector!(Guest);
