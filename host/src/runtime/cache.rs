//! Compiled components on disk, so that a plugin is compiled by Cranelift once per engine
//! configuration and then loaded by mapping the file (tens of µs instead of tens of ms).
//!
//! The key is the component's SHA-256 and the engine's compatibility hash (wasmtime version,
//! compiler settings, target): a new wasmtime or a changed configuration misses the cache
//! instead of loading incompatible code. Files are written to a temporary name and renamed,
//! so a crash mid-write leaves no half file behind.
//!
//! The cache directory must be writable only by the server: a compiled component is native
//! code and wasmtime trusts it when loading.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a compiled file: no compilation.
    Hit,
    /// Compiled by Cranelift (and then written to the cache).
    Compiled,
}

/// Counts of what the cache did since the runtime started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub compiles: u64,
}

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
    hits: AtomicU64,
    compiles: AtomicU64,
}

/// Feeds `Hash` output into SHA-256: std's `DefaultHasher` is not stable across Rust versions,
/// and a cache key must be.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: &Path) -> anyhow::Result<ComponentCache> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the component cache {}", dir.display()))?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
            engine_key,
            hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
        })
    }

    fn path_for(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hex::encode(sha256), self.engine_key))
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
        }
    }

    /// The compiled component for `bytes` (whose SHA-256 is `sha256`), from the cache when
    /// present, otherwise compiled and stored.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &[u8; 32],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let path = self.path_for(sha256);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` in a directory only the
            // server writes (see the module docs); wasmtime checks its header and the engine
            // compatibility before using it, and the name binds it to this exact component.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unusable compiled component in the cache; compiling again");
                }
            }
        }
        let component = Component::new(engine, bytes)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("the component is not valid WebAssembly")?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.store(&component, &path) {
            tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "could not write the compiled component to the cache");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, component: &Component, path: &Path) -> anyhow::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        Ok(())
    }
}
