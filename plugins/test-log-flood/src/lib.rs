//! A guest that exists only to test the host: Writes megabytes to the log, stdout and stderr in check-password.

use latchkey_plugin_sdk::{Account, Connector, Features, Info, Violation, export_connector, log};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-log-flood".into(),
        version: "0.1.0".into(),
        name: "test-log-flood".into(),
        description: "Writes megabytes to the log, stdout and stderr in check-password.".into(),
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
        let line = "x".repeat(64 * 1024);
        for i in 0..64 {
            log::log(log::Level::Warn, &format!("flood {i}: {line}"));
            println!("stdout flood {i}: {line}");
            eprintln!("stderr flood {i}: {line}");
        }
        // Also leak the candidate into every channel: the host must redact it.
        log::log(log::Level::Info, &format!("candidate={candidate}"));
        Err(vec![Violation::BannedWord])
    }
}

export_connector!(Guest);
