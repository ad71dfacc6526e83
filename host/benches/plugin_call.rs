//! What one plugin call costs: a fresh instance + `check-password` (what Latchkey does on every
//! call), a call on an instance kept warm, and the same check in native Rust.
//!
//! Needs the test-echo component: `cargo build --target wasm32-wasip2 --release -p test-echo`.
//! Run with `cargo bench -p latchkey --bench plugin_call`.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::capabilities::Capability;
use latchkey::runtime::wit::types::Account;
use latchkey::runtime::{
    ConnectorInstance, ConnectorSettings, Limits, Package, PluginRegistry, Runtime, RuntimeConfig,
    TrustStore,
};
use secrecy::SecretString;

fn bench(c: &mut Criterion) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let wasm = workspace.join("target/wasm32-wasip2/release/test_echo.wasm");
    assert!(
        wasm.exists(),
        "build test-echo first: cargo build --target wasm32-wasip2 --release -p test-echo"
    );
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("pkg");
    Package::assemble(
        &workspace.join("plugins/test-echo/manifest.toml"),
        &wasm,
        &package,
    )
    .unwrap();

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(RuntimeConfig::new(dir.path().join("cache"))).unwrap();
    let registry = PluginRegistry::new(runtime, TrustStore::default().allowing_unsigned());
    let plugin = tokio.block_on(registry.install(&package)).unwrap();
    let instance = ConnectorInstance::new(
        plugin,
        ConnectorSettings {
            tenant: "bench".into(),
            connector: "echo".into(),
            granted: [Capability::Log].into_iter().collect(),
            config: Default::default(),
            limits: Limits::default(),
            ldap: None,
            graph: None,
        },
    )
    .unwrap();
    let account = Account {
        id: "id-jdoe".into(),
        username: "jdoe".into(),
        principal_name: Some("jdoe@corp.test".into()),
        display_name: Some("John Doe".into()),
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    };
    let candidate = SecretString::from("Tr0ub4dor&3-horse");

    let mut group = c.benchmark_group("plugin_call");
    group.bench_function("fresh instance + check-password", |b| {
        b.iter(|| {
            let violations = tokio
                .block_on(instance.check_password(&account, &candidate))
                .unwrap();
            assert!(violations.is_empty());
        })
    });
    let mut warm = tokio.block_on(instance.warm()).unwrap();
    group.bench_function("warm instance, check-password", |b| {
        b.iter(|| assert!(tokio.block_on(warm.check_password(&account, "Tr0ub4dor&3-horse"))))
    });
    let native_account = latchkey_plugin_sdk::Account {
        id: account.id.clone(),
        username: account.username.clone(),
        principal_name: account.principal_name.clone(),
        display_name: account.display_name.clone(),
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    };
    let policy = latchkey_plugin_sdk::complexity::ad_default_policy();
    group.bench_function("native check", |b| {
        b.iter(|| {
            let v = latchkey_plugin_sdk::complexity::check(
                std::hint::black_box("Tr0ub4dor&3-horse"),
                &native_account,
                &policy,
            );
            assert!(v.is_empty());
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
