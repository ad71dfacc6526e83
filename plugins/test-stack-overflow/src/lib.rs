//! A guest that exists only to test the host: recurses without bound, once on the wasm call
//! stack (check-password) and once through the shadow stack Rust keeps in linear memory
//! (get-policy).

use latchkey_plugin_sdk::{
    Account, Connector, ConnectorError, Features, Info, PasswordPolicy, Violation,
    export_connector, log,
};

struct Guest;

fn info() -> Info {
    Info {
        id: "test-stack-overflow".into(),
        version: "0.1.0".into(),
        name: "test-stack-overflow".into(),
        description: "Recurses without bound.".into(),
        supports: Features::POLICY | Features::IMPORT,
        config_schema: r#"{"type":"object"}"#.into(),
        secrets_schema: r#"{"type":"object"}"#.into(),
    }
}

/// Non-tail recursion on plain integers: every frame lives on the wasm stack.
#[inline(never)]
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    deep(n.wrapping_add(1)).wrapping_mul(3) ^ n
}

/// Recursion with a large local whose address escapes: every frame lives on the shadow stack
/// in linear memory.
#[inline(never)]
#[allow(unconditional_recursion)]
fn deep_in_memory(depth: u64, pad: [u8; 256]) -> u64 {
    let pad = std::hint::black_box(pad);
    deep_in_memory(depth + 1, pad) + u64::from(pad[(depth % 256) as usize])
}

impl Connector for Guest {
    fn describe() -> Info {
        info()
    }

    fn check_password(_account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        let total = deep(candidate.len() as u64);
        log::log(log::Level::Error, &format!("recursion ended at {total}"));
        Ok(())
    }

    fn get_policy(_account: Account) -> Result<PasswordPolicy, ConnectorError> {
        let total = deep_in_memory(0, [1; 256]);
        log::log(log::Level::Error, &format!("recursion ended at {total}"));
        Err(latchkey_plugin_sdk::unsupported("get-policy"))
    }
}

export_connector!(Guest);
