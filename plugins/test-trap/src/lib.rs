//! A guest that exists only to test the host: Reads outside its linear memory in check-password.

use latchkey_plugin_sdk::{Account, Connector, Features, Info, Violation, export_connector, log};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-trap".into(),
        version: "0.1.0".into(),
        name: "test-trap".into(),
        description: "Reads outside its linear memory in check-password.".into(),
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
        // The last bytes of the 32-bit address space: far beyond any memory the host allows.
        let address = std::hint::black_box(0xFFFF_FFF0usize) as *const u64;
        #[allow(unsafe_code)]
        // SAFETY: none; reading out of bounds is this guest's purpose (wasm traps on it).
        let value = unsafe { core::ptr::read_volatile(address) };
        log::log(
            log::Level::Error,
            &format!("read {value} out of bounds without a trap"),
        );
        Ok(())
    }
}

export_connector!(Guest);
