//! Start-up: what a server does before it answers (open the database and migrate, load every
//! plugin package under DATA_DIR/plugins), with the compiled-component cache cold and warm.

use std::time::{Duration, Instant};

use latchkey::runtime::{PluginRegistry, Runtime, RuntimeConfig};
use latchkey::store::{MasterKey, Store};

use crate::report::{Section, met, ms, quantile};

pub async fn run(quick: bool) -> Section {
    let packages = tempfile::tempdir().expect("tempdir");
    let plugins = packages.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins");
    // 20 package directories from the 11 loadable test and bundled plugins.
    let names = latchkey_tests::TEST_PLUGINS;
    for i in 0..20 {
        let name = names[i % names.len()];
        let staging = packages.path().join(format!("staging-{i}"));
        let built = latchkey_tests::signed_package(name, &staging);
        std::fs::rename(built, plugins.join(format!("{i:02}-{name}"))).expect("moving a package");
    }
    let cache = tempfile::tempdir().expect("tempdir");
    let start = async |cache_dir: &std::path::Path| -> Duration {
        let data = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let store = Store::open(
            &format!("sqlite://{}", data.path().join("latchkey.db").display()),
            MasterKey::generate(),
        )
        .await
        .expect("store");
        let runtime = Runtime::new(RuntimeConfig::new(cache_dir)).expect("runtime");
        let registry = PluginRegistry::new(runtime, latchkey_tests::trust());
        let loaded = registry.install_all(&plugins).await;
        let elapsed = started.elapsed();
        assert!(loaded.iter().all(|(_, r)| r.is_ok()), "every package loads");
        store.close().await;
        elapsed
    };
    let runs = if quick { 2 } else { 5 };
    let mut cold = Vec::new();
    for _ in 0..runs.min(3) {
        let fresh = tempfile::tempdir().expect("tempdir");
        cold.push(start(fresh.path()).await);
    }
    start(cache.path()).await;
    let mut warm = Vec::new();
    for _ in 0..runs {
        warm.push(start(cache.path()).await);
    }
    cold.sort();
    warm.sort();
    let mut section = Section::new(
        "Start-up with 20 plugin packages",
        "From nothing to ready, in process: open a new SQLite database and run the migrations, \
         create the wasmtime engine, verify and load 20 signed packages (made from the 11 \
         loadable test and bundled plugins, so several share a component) — with an empty \
         compiled-component cache (Cranelift compiles each component) and with a warm one \
         (each is loaded from the cache by its SHA-256). The median of the runs.",
        &["cache", "runs", "p50", "max"],
    );
    section.row(vec![
        "cold".into(),
        cold.len().to_string(),
        ms(quantile(&cold, 0.5)),
        ms(*cold.last().unwrap()),
    ]);
    section.row(vec![
        "warm".into(),
        warm.len().to_string(),
        ms(quantile(&warm, 0.5)),
        ms(*warm.last().unwrap()),
    ]);
    section.finding(format!(
        "Goal: start-up with a warm cache < 300 ms: {} ({}).",
        met(quantile(&warm, 0.5) < Duration::from_millis(300)),
        ms(quantile(&warm, 0.5))
    ));
    section
}
