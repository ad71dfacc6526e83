//! The plugin under test: a package directory (signed or not: this is the author's own
//! machine) or a bare component with an optional manifest, loaded into a runtime of its own and
//! enabled with the configuration file's settings, as a tenant would enable it.
//!
//! The registry refuses a component whose `describe` contradicts its manifest; the suite wants
//! to report that and go on, so it loads such a component again under a manifest that agrees
//! and lets the describe check say what differed.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::config::{SuiteConfig, everything};
use crate::capabilities::{Capability, CapabilitySet, graph, ldap};
use crate::runtime::{
    ConnectorInstance, ConnectorSettings, LoadedPlugin, Manifest, Package, PackageError,
    Provenance, Runtime, world,
};

/// A loaded plugin and the manifest it came with, if any.
pub struct Target {
    /// The manifest as the author wrote it (none for a bare component).
    pub manifest: Option<Manifest>,
    pub plugin: Arc<LoadedPlugin>,
}

/// Why the plugin could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The files could not be read.
    #[error(transparent)]
    Unreadable(#[from] anyhow::Error),
    /// The host refused the component (the same refusal a server would log).
    #[error(transparent)]
    Refused(#[from] PackageError),
}

/// Read `path` (a package directory or a `.wasm` component, with `manifest` beside a bare one)
/// and load it.
pub async fn load(
    runtime: &Arc<Runtime>,
    path: &Path,
    manifest: Option<&Path>,
    grant: Option<CapabilitySet>,
) -> Result<Target, LoadError> {
    let (component, manifest) = if path.is_dir() {
        if manifest.is_some() {
            return Err(anyhow::anyhow!(
                "{} is a package directory: it has its own manifest, leave out --manifest",
                path.display()
            )
            .into());
        }
        let package = Package::read(path)?;
        (package.component, Some(package.manifest))
    } else {
        let component =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest = match manifest {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                Some(Manifest::parse(&text)?)
            }
            None => None,
        };
        (component, manifest)
    };
    let mut loading = match &manifest {
        Some(manifest) => manifest.clone(),
        None => probe_manifest(&component, grant),
    };
    // At most one retry for the id and one for the version.
    for _ in 0..3 {
        let text = toml::to_string(&loading).context("writing the manifest")?;
        let package = Package::in_memory(&text, component.clone())?;
        match runtime.load(&package, Provenance::UnsignedAllowed).await {
            Ok(plugin) => return Ok(Target { manifest, plugin }),
            Err(PackageError::DescribeMismatch {
                field,
                expected,
                found,
            }) => {
                let mut agreeing = loading.clone();
                let fits = match field {
                    "id" => {
                        agreeing.id = found.clone();
                        true
                    }
                    "version" => found.parse().map(|v| agreeing.version = v).is_ok(),
                    _ => false,
                };
                let text = toml::to_string(&agreeing).context("writing the manifest")?;
                if !fits || Manifest::parse(&text).is_err() {
                    let error = PackageError::DescribeMismatch {
                        field,
                        expected,
                        found,
                    };
                    return Err(error.into());
                }
                loading = agreeing;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(anyhow::anyhow!("the component's describe kept contradicting its manifest").into())
}

/// A manifest for a bare component: whatever `describe` says (filled in by the retries), the
/// contract version it is stamped with, and the grant (or everything) as its request.
fn probe_manifest(component: &[u8], grant: Option<CapabilitySet>) -> Manifest {
    let wit = world::stamped_wit_version(component)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| semver::Version::new(0, 1, 0));
    Manifest {
        id: "plugin-under-test".into(),
        version: semver::Version::new(0, 0, 0),
        wit,
        name: "plugin under test".into(),
        description: String::new(),
        capabilities: grant.unwrap_or_else(everything).iter().collect(),
    }
}

/// The plugin enabled with the file's configuration, secrets, grant and limits; the `ldap` and
/// `graph` capabilities are connected only when the plugin may use them.
pub fn enable(
    plugin: Arc<LoadedPlugin>,
    config: &SuiteConfig,
) -> anyhow::Result<ConnectorInstance> {
    let requested = plugin.manifest().requested();
    let granted = config.grant.unwrap_or(requested);
    let effective = requested.intersection(granted);
    let tags = || ldap::ConnectorTags::new("plugin-test", "conformance");
    let settings = ConnectorSettings {
        tenant: "plugin-test".into(),
        connector: "conformance".into(),
        granted,
        config: config.connector.clone(),
        limits: config.limits,
        ldap: effective
            .contains(Capability::Ldap)
            .then(|| ldap::directory(&config.connector, &config.secrets, tags())),
        graph: effective
            .contains(Capability::Graph)
            .then(|| graph::connection(&config.connector, &config.secrets, tags())),
    };
    ConnectorInstance::new(plugin, settings)
}
