//! The plugins this server can run: each verified (signature, world, contract version),
//! compiled (or loaded from the cache), pre-instantiated once and described, then shared by
//! every tenant's connector instances.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::cache::CacheOutcome;
use super::call::CallState;
use super::instance::{ConnectorInstance, ConnectorSettings, Limits};
use super::package::{Manifest, Package, PackageError, Provenance, TrustStore};
use super::wit::{self, types::Info};
use super::{Runtime, world};
use crate::capabilities::CapabilitySet;

/// A verified, compiled plugin, ready to be instantiated.
pub struct LoadedPlugin {
    runtime: Arc<Runtime>,
    manifest: Manifest,
    info: Info,
    sha256: [u8; 32],
    provenance: Provenance,
    cache: CacheOutcome,
    pre: wit::PluginPre<CallState>,
}

impl LoadedPlugin {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// What the plugin said in `describe` when it was loaded.
    pub fn info(&self) -> &Info {
        &self.info
    }
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }
    /// Whether loading it compiled the component or used the compiled cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }
    pub(crate) fn pre(&self) -> &wit::PluginPre<CallState> {
        &self.pre
    }
}

impl Runtime {
    /// Verify and load a package that has already passed signature verification.
    pub async fn load(
        self: &Arc<Self>,
        package: &Package,
        provenance: Provenance,
    ) -> Result<Arc<LoadedPlugin>, PackageError> {
        let manifest = &package.manifest;
        let wit = manifest.wit.to_string();
        if !world::SUPPORTED_WIT.contains(&wit.as_str()) {
            return Err(PackageError::WitVersion(format!(
                "the manifest asks for contract {wit}; this server supports {}",
                world::SUPPORTED_WIT.join(", ")
            )));
        }
        if world::is_core_module(&package.component) {
            return Err(PackageError::WrongWorld(
                "it is a core WebAssembly module, not a component: build it with \
                 `--target wasm32-wasip2`, or wrap it with `wasm-tools component new`"
                    .into(),
            ));
        }
        match world::stamped_wit_version(&package.component).map_err(PackageError::Load)? {
            Some(stamped) if stamped != wit => {
                return Err(PackageError::WitVersion(format!(
                    "the component was built against contract {stamped}, its manifest says {wit}"
                )));
            }
            _ => {}
        }
        let sha256 = package.component_sha256();
        let (component, cache) = self
            .cache
            .load(&self.engine, &package.component, &sha256)
            .map_err(|e| PackageError::Load(format!("{e:#}")))?;
        world::check(&self.engine, &component, &wit).map_err(PackageError::WrongWorld)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PackageError::WrongWorld(format!("{e:#}")))?;
        let pre = wit::PluginPre::new(instance_pre)
            .map_err(|e| PackageError::WrongWorld(format!("{e:#}")))?;

        let plugin = Arc::new(LoadedPlugin {
            runtime: self.clone(),
            manifest: manifest.clone(),
            info: placeholder_info(),
            sha256,
            provenance,
            cache,
            pre,
        });
        let info = describe(plugin.clone()).await?;
        let mut plugin =
            Arc::into_inner(plugin).expect("describe keeps no reference to the plugin");
        plugin.info = info;
        for (field, expected, found) in [
            ("id", manifest.id.clone(), plugin.info.id.clone()),
            (
                "version",
                manifest.version.to_string(),
                plugin.info.version.clone(),
            ),
        ] {
            if expected != found {
                return Err(PackageError::DescribeMismatch {
                    field,
                    expected,
                    found,
                });
            }
        }
        Ok(Arc::new(plugin))
    }
}

/// Before `describe` has answered, the plugin claims to support everything so the call can be
/// made; the placeholder never leaves `load`.
fn placeholder_info() -> Info {
    Info {
        id: String::new(),
        version: String::new(),
        name: String::new(),
        description: String::new(),
        supports: wit::types::Features::all(),
        config_schema: "{}".into(),
        secrets_schema: "{}".into(),
    }
}

/// Call `describe` with no capability granted: it must not need any.
async fn describe(plugin: Arc<LoadedPlugin>) -> Result<Info, PackageError> {
    let instance = ConnectorInstance::new(
        plugin,
        ConnectorSettings {
            tenant: "-".into(),
            connector: "describe".into(),
            granted: CapabilitySet::NONE,
            config: Default::default(),
            limits: Limits::default(),
            ldap: None,
            graph: None,
        },
    )
    .map_err(|e| PackageError::Load(format!("{e:#}")))?;
    instance
        .describe()
        .await
        .map_err(|e| PackageError::DescribeFailed(e.to_string()))
}

/// The installed plugins, by id.
pub struct PluginRegistry {
    runtime: Arc<Runtime>,
    trust: TrustStore,
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
}

impl PluginRegistry {
    pub fn new(runtime: Arc<Runtime>, trust: TrustStore) -> PluginRegistry {
        PluginRegistry {
            runtime,
            trust,
            plugins: RwLock::default(),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Verify, load and register the package in `dir`, replacing an installed plugin with the
    /// same id.
    pub async fn install(&self, dir: &Path) -> Result<Arc<LoadedPlugin>, PackageError> {
        let package = Package::read(dir)?;
        let provenance = package.verify(&self.trust)?;
        if provenance == Provenance::UnsignedAllowed {
            tracing::warn!(plugin = %package.manifest.id, dir = %dir.display(), "loading an unsigned plugin package (unsigned packages are allowed by the operator)");
        }
        let plugin = self.runtime.load(&package, provenance).await?;
        tracing::info!(
            plugin = %plugin.manifest.id,
            version = %plugin.manifest.version,
            cache = ?plugin.cache,
            "plugin loaded"
        );
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(plugin.manifest.id.clone(), plugin.clone());
        Ok(plugin)
    }

    /// Load and register the plugins built into this binary (`runtime::bundled`). A package of
    /// the same id installed from `plugins/` afterwards replaces its bundled version.
    pub async fn install_bundled(
        &self,
    ) -> Vec<(&'static str, Result<Arc<LoadedPlugin>, PackageError>)> {
        let mut results = Vec::new();
        for bundled in super::bundled::PLUGINS {
            let result = async {
                let package = Package::in_memory(bundled.manifest, bundled.component.to_vec())?;
                let plugin = self.runtime.load(&package, Provenance::Bundled).await?;
                tracing::info!(plugin = %plugin.manifest.id, version = %plugin.manifest.version,
                    cache = ?plugin.cache, "bundled plugin loaded");
                self.plugins
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(plugin.manifest.id.clone(), plugin.clone());
                Ok(plugin)
            }
            .await;
            if let Err(error) = &result {
                tracing::error!(plugin = bundled.name, %error, "bundled plugin refused");
            }
            results.push((bundled.name, result));
        }
        results
    }

    /// Install every package directory under `dir`; one bad package does not stop the others.
    pub async fn install_all(
        &self,
        dir: &Path,
    ) -> Vec<(PathBuf, Result<Arc<LoadedPlugin>, PackageError>)> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => vec![],
        };
        dirs.sort();
        let mut results = Vec::with_capacity(dirs.len());
        for path in dirs {
            let result = self.install(&path).await;
            if let Err(error) = &result {
                tracing::error!(dir = %path.display(), %error, "plugin package refused");
            }
            results.push((path, result));
        }
        results
    }

    pub fn get(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
