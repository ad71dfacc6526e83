//! The harness of Latchkey's workspace tests: where the built plugins are, signed test
//! packages, a shared plugin registry, and a log capture to assert what reached the log.
//!
//! A missing prerequisite is a failure that says how to get it, never a skipped test.

pub mod browser;
pub mod console;
pub mod databases;
pub mod invariants;
pub mod proxy;
pub mod samba;
pub mod server;
pub mod slapd;
pub mod soak;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use latchkey::capabilities::secrets::Secrets;
use latchkey::capabilities::{Capability, CapabilitySet, ldap};
use latchkey::runtime::wit::types::{Account, AccountQuery, MatchMode};
use latchkey::runtime::{
    ConnectorInstance, ConnectorSettings, Limits, LoadedPlugin, Package, PluginRegistry, Runtime,
    RuntimeConfig, TrustStore, package,
};
use tokio::sync::OnceCell;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The built component of the plugin crate `name` (e.g. `test-echo`).
pub fn component(name: &str) -> PathBuf {
    let release = workspace_root().join("target/wasm32-wasip2/release");
    let file = if name == "test-wrong-world" {
        release.join("test-wrong-world.wasm")
    } else {
        release.join(format!("{}.wasm", name.replace('-', "_")))
    };
    assert!(
        file.exists(),
        "{} is missing: build the plugins first with `cargo build --target wasm32-wasip2 \
         --release --workspace --exclude latchkey --exclude keyproto --exclude latchkey-tests \
         --exclude latchkey-plugin-sdk`, or run the whole suite with `tests/run`",
        file.display()
    );
    file
}

/// The manifest of the plugin crate `name`.
pub fn manifest(name: &str) -> PathBuf {
    workspace_root()
        .join("plugins")
        .join(name)
        .join("manifest.toml")
}

/// The signing key of this test run, and a directory holding it.
pub struct Signer {
    _dir: tempfile::TempDir,
    pub key_path: PathBuf,
    pub public_key_path: PathBuf,
}

/// The test run's signer (one key per process).
pub fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("signing.pem");
        package::generate_key(&key_path).expect("generating a key");
        let public_key_path = package::public_key_path(&key_path);
        Signer {
            _dir: dir,
            key_path,
            public_key_path,
        }
    })
}

/// A trust store trusting only the test run's signer.
pub fn trust() -> TrustStore {
    let mut trust = TrustStore::default();
    trust.trust(package::read_public_key(&signer().public_key_path).expect("public key"));
    trust
}

/// The package of plugin `name`, assembled in `out` and signed by the test run's key.
pub fn signed_package(name: &str, out: &Path) -> PathBuf {
    let dir = out.join(name);
    let mut package =
        Package::assemble(&manifest(name), &component(name), &dir).expect("assembling a package");
    package
        .sign(&package::read_signing_key(&signer().key_path).expect("key"))
        .expect("signing");
    dir
}

/// A runtime with a small pool, caching compiled components in `cache`.
pub fn runtime(cache: &Path) -> Arc<Runtime> {
    Runtime::new(RuntimeConfig {
        max_concurrent_calls: 64,
        ..RuntimeConfig::new(cache)
    })
    .expect("runtime")
}

/// The plugins the tests use, loaded once per test process: the test guests and the bundled
/// connectors.
pub const TEST_PLUGINS: [&str; 11] = [
    "ad-ldap",
    "test-echo",
    "test-loop",
    "test-memory-bomb",
    "test-trap",
    "test-panic",
    "test-stack-overflow",
    "test-log-flood",
    "test-escape",
    "test-ungranted",
    "test-oversize",
];

/// A registry with every test plugin installed, shared by the tests of this process.
pub async fn registry() -> &'static PluginRegistry {
    static REGISTRY: OnceCell<(tempfile::TempDir, PluginRegistry)> = OnceCell::const_new();
    let (_, registry) = REGISTRY
        .get_or_init(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let registry = PluginRegistry::new(runtime(&dir.path().join("cache")), trust());
            for name in TEST_PLUGINS {
                let package = signed_package(name, &dir.path().join("packages"));
                if let Err(error) = registry.install(&package).await {
                    panic!("installing {name}: {error}");
                }
            }
            (dir, registry)
        })
        .await;
    registry
}

/// A loaded test plugin.
pub async fn plugin(name: &str) -> Arc<LoadedPlugin> {
    registry()
        .await
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

/// Settings for a connector of `tenant` granting `granted`, with default limits.
pub fn settings(tenant: &str, granted: &[Capability]) -> ConnectorSettings {
    ConnectorSettings {
        tenant: tenant.to_string(),
        connector: format!("{tenant}-connector"),
        granted: granted.iter().copied().collect::<CapabilitySet>(),
        config: Default::default(),
        limits: Limits::default(),
        ldap: None,
        graph: None,
    }
}

/// Settings for a connector of `tenant` granting `granted`, with `limits`.
pub fn limited(tenant: &str, granted: &[Capability], limits: Limits) -> ConnectorSettings {
    ConnectorSettings {
        limits,
        ..settings(tenant, granted)
    }
}

/// An instance of test plugin `name` for `tenant`, granted everything it asks for.
pub async fn instance(name: &str, tenant: &str) -> ConnectorInstance {
    instance_with(name, settings(tenant, &Capability::ALL)).await
}

/// An instance of test plugin `name` with `settings`.
pub async fn instance_with(name: &str, settings: ConnectorSettings) -> ConnectorInstance {
    ConnectorInstance::new(plugin(name).await, settings).expect("instance")
}

/// Every log line written in this process, for assertions (filter by a unique tenant name).
pub struct LogCapture {
    lines: Mutex<Vec<String>>,
}

impl LogCapture {
    /// The lines that mention `needle` (e.g. `tenant=t-flood`).
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

struct CaptureWriter(&'static LogCapture);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut lines = self.0.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.extend(text.lines().map(str::to_string));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture every log line of this process (installed once).
pub fn logs() -> &'static LogCapture {
    static CAPTURE: OnceLock<&'static LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static LogCapture = Box::leak(Box::new(LogCapture {
            lines: Mutex::new(vec![]),
        }));
        tracing_subscriber::fmt()
            .with_env_filter("latchkey=trace,warn")
            .with_ansi(false)
            .with_writer(move || CaptureWriter(capture))
            .init();
        capture
    })
}

/// The AD connector of `tenant`, bound as `which` service account of the test DC, with users
/// searched under OU=Staff; `extra` is merged into its configuration (e.g. `group_dn`).
pub async fn ad_connector(
    tenant: &str,
    which: samba::ServiceAccount,
    extra: serde_json::Value,
) -> ConnectorInstance {
    let (dn, password) = samba::dc().service_account(which);
    ad_connector_as(tenant, dn, password, extra).await
}

/// The AD connector of `tenant`, bound as `bind_dn` with `bind_password`.
pub async fn ad_connector_as(
    tenant: &str,
    bind_dn: &str,
    bind_password: &str,
    extra: serde_json::Value,
) -> ConnectorInstance {
    let dc = samba::dc();
    let mut config = serde_json::json!({
        "url": dc.ldaps_url,
        "base_dn": dc.staff_ou,
        "bind_dn": bind_dn,
        "ca_file": dc.ca_file,
        "timeout_ms": 5000,
    });
    let config = config.as_object_mut().expect("an object");
    if let serde_json::Value::Object(extra) = extra {
        config.extend(extra);
    }
    let secrets = Secrets::from_iter([(
        "bind_password",
        secrecy::SecretString::from(bind_password.to_string()),
    )]);
    let connector = format!("{tenant}-ad");
    let directory = ldap::directory(
        config,
        &secrets,
        ldap::ConnectorTags::new(tenant, connector.as_str()),
    );
    let settings = ConnectorSettings {
        connector,
        config: config.clone(),
        ldap: Some(directory),
        ..settings(
            tenant,
            &[Capability::Log, Capability::Config, Capability::Ldap],
        )
    };
    instance_with("ad-ldap", settings).await
}

/// The one account `connector` finds for `text` (exact match), as the Employees page would.
pub async fn find_account(connector: &ConnectorInstance, text: &str) -> Account {
    let page = connector
        .find_accounts(
            &AccountQuery {
                text: text.to_string(),
                mode: MatchMode::Exact,
            },
            None,
            10,
        )
        .await
        .unwrap_or_else(|e| panic!("finding {text}: {e}"));
    assert_eq!(page.accounts.len(), 1, "finding {text}: {page:?}");
    page.accounts.into_iter().next().expect("one account")
}
