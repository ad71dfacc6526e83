//! The plugin runtime: the one wasmtime [`Engine`] of the process, the compiled-component
//! cache, the plugin registry and per-tenant connector instances.
//!
//! Only this module touches wasmtime. Its promises: a plugin runs only in a fresh store per
//! call; it sees no files, environment, arguments or sockets; it reaches a capability only if
//! its manifest requests it and its tenant grants it; it stops at its deadline and its memory
//! cap with a typed error, and never takes the process or another tenant's calls down with it.

pub mod bundled;
mod cache;
mod call;
mod instance;
pub mod package;
mod registry;
pub(crate) mod validate;
pub mod wit;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use cache::{CacheOutcome, CacheStats};
pub use call::CapabilityDenied;
pub use instance::{
    CallError, ConnectorInstance, ConnectorSettings, Limits, PluginError, WarmInstance,
};
pub use package::{Manifest, Package, PackageError, Provenance, TrustStore};
pub use registry::{LoadedPlugin, PluginRegistry};

use cache::ComponentCache;
use call::CallState;

/// How the runtime is set up; the defaults suit one server.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are kept.
    pub cache_dir: PathBuf,
    /// How many plugin calls may run at once (the size of the instance pool); a call beyond it
    /// fails with [`PluginError::Busy`].
    pub max_concurrent_calls: u32,
    /// The highest memory limit any connector may be given.
    pub memory_ceiling: usize,
    /// How often running plugins are interrupted to check their deadline and yield.
    pub epoch_tick: Duration,
}

impl RuntimeConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: cache_dir.into(),
            max_concurrent_calls: 256,
            memory_ceiling: 256 << 20,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Instance slots decommitted together (see `Runtime::new`).
const DECOMMIT_BATCH: usize = 32;

/// Bytes of each memory and table slot reset with memset and kept resident.
const KEEP_RESIDENT: usize = 256 * 1024;

/// The plugin runtime. One per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: ComponentCache,
    config: RuntimeConfig,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Arc<Runtime>> {
        let calls = config.max_concurrent_calls;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(calls)
            // A Rust component holds a few core instances (its module plus shims) and tables.
            .total_core_instances(calls * 8)
            .total_memories(calls * 2)
            .total_tables(calls * 8)
            .total_stacks(calls)
            .max_memory_size(config.memory_ceiling)
            // A fresh instance per call: its slots are decommitted (madvise) when it ends, and
            // each madvise flushes the TLB of every core running the process (IPIs: 5 % of a
            // change's CPU under load, perf). Batched, one flush covers several instances.
            .decommit_batch_size(DECOMMIT_BATCH)
            // A linear memory's first pages are zeroed with memset instead, and stay mapped: a
            // plugin's small heap is not faulted in again by the next instance in its slot.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut wasm = wasmtime::Config::new();
        wasm.epoch_interruption(true)
            .max_wasm_stack(1 << 20)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("creating the WebAssembly engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        wit::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let cache = ComponentCache::new(&engine, &config.cache_dir)?;
        start_epoch_ticker(&engine, config.epoch_tick);
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
            config,
        }))
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The highest memory limit a connector may have.
    pub fn memory_ceiling(&self) -> usize {
        self.config.memory_ceiling
    }

    /// What the compiled-component cache did since start.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// Advance the engine's epoch every `tick` until the engine is dropped: a running plugin checks
/// its deadline at each tick.
fn start_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("latchkey-epoch".into())
        .spawn(move || {
            loop {
                thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawning the epoch thread");
}
