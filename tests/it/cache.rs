//! The compiled-component cache: the second load of a plugin maps the compiled file instead of
//! running Cranelift again, also in a new process (a new runtime on the same directory).

use latchkey::runtime::{CacheOutcome, CacheStats, PluginRegistry};
use latchkey_tests::{runtime, signed_package, trust};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_load_uses_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let package = signed_package("test-echo", dir.path());
    let cache = dir.path().join("cache");

    let first = runtime(&cache);
    let registry = PluginRegistry::new(first.clone(), trust());
    let plugin = registry.install(&package).await.unwrap();
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Compiled);
    assert_eq!(
        first.cache_stats(),
        CacheStats {
            hits: 0,
            compiles: 1
        }
    );

    // The same runtime, again: from the cache.
    let again = registry.install(&package).await.unwrap();
    assert_eq!(again.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(
        first.cache_stats(),
        CacheStats {
            hits: 1,
            compiles: 1
        }
    );

    // A fresh runtime (as after a restart) on the same directory: no compilation at all.
    let second = runtime(&cache);
    let registry = PluginRegistry::new(second.clone(), trust());
    let plugin = registry.install(&package).await.unwrap();
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            hits: 1,
            compiles: 0
        }
    );
    assert_eq!(plugin.info().id, "test-echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_file_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let package = signed_package("test-echo", dir.path());
    let cache = dir.path().join("cache");
    PluginRegistry::new(runtime(&cache), trust())
        .install(&package)
        .await
        .unwrap();
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a compiled component").unwrap();
    }
    let fresh = runtime(&cache);
    let plugin = PluginRegistry::new(fresh.clone(), trust())
        .install(&package)
        .await
        .unwrap();
    assert_eq!(plugin.cache_outcome(), CacheOutcome::Compiled);
    assert_eq!(
        fresh.cache_stats(),
        CacheStats {
            hits: 0,
            compiles: 1
        }
    );
}
