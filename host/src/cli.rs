//! The `latchkey` command line: raw arguments (clap) turned into calls on the library.
//!
//! `serve` runs the server; `plugin` manages plugin packages (keygen, pack, sign, verify,
//! inspect), scaffolds new ones (`new`) and runs the conformance suite on them (`test`);
//! `agent` is the workstation client with a software key; `audit verify` and
//! `master-key rotate|generate` are what an operator scripts with. Errors print as one readable
//! chain and exit with status 1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest as _;

use secrecy::{ExposeSecret as _, SecretString};

use crate::runtime::{
    Package, PluginRegistry, Provenance, Runtime, RuntimeConfig, TrustStore, package, world,
};
use crate::store::{MasterKey, Store};

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Reset domain passwords and deliver them to hardware keys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage connector plugin packages.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The workstation client, with a software key standing in for the hardware key.
    #[command(subcommand)]
    Agent(crate::agent::AgentCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The master key connector secrets and tenant signing keys are sealed under.
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
}

/// Where the database and the master key are (shared by serve, audit and master-key).
#[derive(clap::Args, Clone)]
struct DatabaseArgs {
    /// The database: `sqlite://FILE` (the default, embedded) or `postgres://…` (several
    /// replicas share one).
    #[arg(
        long,
        default_value = "sqlite://latchkey.db",
        env = "LATCHKEY_DATABASE_URL"
    )]
    database_url: String,
    /// A file holding the master key (base64 of 32 bytes). Without it and without
    /// LATCHKEY_MASTER_KEY, DATA_DIR/master.key is used, and created at first start.
    #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Where Latchkey keeps its data: master.key, plugins/, trusted-keys/, cache/.
    #[arg(long, default_value = "latchkey-data", env = "LATCHKEY_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the audit log's hash chain: exits 1 naming the first record edited, missing or
    /// out of place.
    Verify(DatabaseArgs),
}

#[derive(Subcommand)]
enum MasterKeyCommand {
    /// Print a new random master key (base64) to put in a file or LATCHKEY_MASTER_KEY.
    Generate,
    /// Re-seal every secret under a new master key (the current one from --master-key-file,
    /// LATCHKEY_MASTER_KEY or DATA_DIR/master.key); then restart every replica with the new one.
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A file holding the new master key.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "LATCHKEY_LISTEN")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Load plugin packages that carry no signature (for plugin development only).
    #[arg(long, env = "LATCHKEY_ALLOW_UNSIGNED_PLUGINS")]
    allow_unsigned_plugins: bool,
    /// How long a workstation holds a delivery it pulled before another may take it, seconds.
    #[arg(long, default_value_t = 60, env = "LATCHKEY_LEASE_SECONDS")]
    lease_seconds: i64,
    /// How often background work runs (expiring leases and envelopes, recovering interrupted
    /// changes, verifying that directory sync carried changes), seconds.
    #[arg(long, default_value_t = 30, env = "LATCHKEY_SWEEP_SECONDS")]
    sweep_seconds: u64,
    /// How long a change may stay unfinished before another replica treats it as interrupted
    /// (PostgreSQL), seconds.
    #[arg(long, default_value_t = 120, env = "LATCHKEY_RECOVERY_GRACE_SECONDS")]
    recovery_grace_seconds: i64,
    /// Failed authentications (wrong tokens, failed console sign-ins) from one address within
    /// --auth-window-seconds that lock the address out.
    #[arg(long, default_value_t = 10, env = "LATCHKEY_AUTH_MAX_FAILURES")]
    auth_max_failures: u32,
    /// The window failed authentications are counted in, seconds.
    #[arg(long, default_value_t = 300, env = "LATCHKEY_AUTH_WINDOW_SECONDS")]
    auth_window_seconds: u64,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first); needs
    /// --tls-key. Without both, the listener speaks plain HTTP (put a TLS proxy in front).
    #[arg(long, env = "LATCHKEY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "LATCHKEY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a locked-out address is refused (429 with Retry-After), seconds.
    #[arg(long, default_value_t = 900, env = "LATCHKEY_AUTH_LOCKOUT_SECONDS")]
    auth_lockout_seconds: u64,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a signing key: FILE (private, mode 0600) and FILE.pub.pem (to give to operators).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a manifest and a built component together into a package directory (unsigned).
    Pack {
        /// The plugin's manifest.toml.
        #[arg(long)]
        manifest: PathBuf,
        /// The component built with `cargo build --target wasm32-wasip2 --release`.
        #[arg(long)]
        component: PathBuf,
        /// The package directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a package directory with a private key from `plugin keygen`.
    Sign {
        package: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify a package's signature against trusted public keys.
    Verify {
        package: PathBuf,
        /// A trusted public key (repeatable).
        #[arg(long = "trusted-key")]
        trusted_keys: Vec<PathBuf>,
        /// A directory of trusted public keys (*.pem).
        #[arg(long)]
        trusted_dir: Option<PathBuf>,
    },
    /// Show what a package or component is: manifest, contract version, world check,
    /// imports and exports, signature.
    Inspect {
        /// A package directory or a .wasm component.
        path: PathBuf,
    },
    /// Create a new connector plugin crate that builds and passes `plugin test` as it is.
    New {
        /// The plugin's id and crate name: lowercase letters, digits and dashes.
        name: String,
        /// The directory to create (default: ./NAME); an existing one is refused.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The latchkey-plugin-sdk crate to depend on (default: this checkout's plugins/sdk).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run the conformance suite against a plugin and a live test directory; fails when any
    /// check fails.
    Test {
        /// A package directory, or a .wasm component (unsigned is fine).
        path: PathBuf,
        /// The manifest of a bare .wasm component (a package has its own).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The suite's TOML file: [connector], [secrets], grant, [test] (see docs/plugins.md).
        #[arg(long)]
        config: PathBuf,
    },
}

/// Run the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Plugin(command) => plugin(command).await,
        Command::Agent(command) => crate::agent::run(command).await,
        Command::Audit(AuditCommand::Verify(database)) => audit_verify(database).await,
        Command::MasterKey(command) => master_key(command).await,
    }
}

/// The master key: the file given, LATCHKEY_MASTER_KEY, or DATA_DIR/master.key (created with
/// mode 0600 when `create` and missing).
fn load_master_key(args: &DatabaseArgs, create: bool) -> anyhow::Result<MasterKey> {
    if let Some(path) = &args.master_key_file {
        return Ok(MasterKey::from_file(path)?);
    }
    if std::env::var_os("LATCHKEY_MASTER_KEY").is_some() {
        return Ok(MasterKey::from_env("LATCHKEY_MASTER_KEY")?);
    }
    let path = args.data_dir.join("master.key");
    if !path.exists() && create {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating {}", args.data_dir.display()))?;
        let key = MasterKey::generate();
        write_private(&path, key.to_base64().expose_secret().as_bytes())?;
        tracing::warn!(path = %path.display(), "created a new master key: back it up; without it \
            connector secrets and tenant signing keys cannot be opened");
    }
    MasterKey::from_file(&path).map_err(|e| {
        anyhow::anyhow!("{e} (give --master-key-file or LATCHKEY_MASTER_KEY, or start `latchkey serve` once to create one)")
    })
}

/// Writes `bytes` to a new file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

async fn open_store(args: &DatabaseArgs, create_key: bool) -> anyhow::Result<Store> {
    let key = load_master_key(args, create_key)?;
    Store::open(&args.database_url, key)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&args.database_url)))
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

async fn audit_verify(args: DatabaseArgs) -> anyhow::Result<()> {
    let store = open_store(&args, false).await?;
    let report = store.verify_audit().await?;
    match report.problem {
        None => {
            println!(
                "ok: the audit chain is whole ({} records, head {})",
                report.records, report.head_seq
            );
            Ok(())
        }
        Some(problem) => anyhow::bail!(
            "the audit chain is broken: {problem} ({} records read, head {})",
            report.records,
            report.head_seq
        ),
    }
}

async fn master_key(command: MasterKeyCommand) -> anyhow::Result<()> {
    match command {
        MasterKeyCommand::Generate => {
            println!("{}", MasterKey::generate().to_base64().expose_secret());
            Ok(())
        }
        MasterKeyCommand::Rotate {
            database,
            new_key_file,
        } => {
            let old = load_master_key(&database, false)?;
            let new = MasterKey::from_file(&new_key_file)?;
            let store = Store::open(
                &database.database_url,
                MasterKey::from_base64(old.to_base64().expose_secret())?,
            )
            .await?;
            let count = store.rotate_master_key(&old, &new).await?;
            println!(
                "re-sealed {count} secret(s) under key {}; restart every replica with the new key",
                new.id()
            );
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Crash points for the crash matrix (`workflow::recovery::crash_point`), armed from the
    // FAILPOINTS environment variable for as long as the server runs. Said loudly, so a log
    // shows why this process may kill itself; a build without them says it ignores them.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    #[cfg(feature = "failpoints")]
    if !fail::list().is_empty() {
        tracing::warn!(failpoints = ?fail::list(), "crash points armed: this process SIGKILLs itself at them");
    }
    #[cfg(not(feature = "failpoints"))]
    if std::env::var_os("FAILPOINTS").is_some() {
        tracing::warn!(
            "FAILPOINTS is set, but this build has no crash points (build with --features failpoints): ignored"
        );
    }
    let data = &args.database.data_dir;
    std::fs::create_dir_all(data.join("plugins"))
        .with_context(|| format!("creating {}", data.join("plugins").display()))?;
    let store = open_store(&args.database, true).await?;
    tracing::info!(database = %redact_url(&args.database.database_url), backend = ?store.backend(), "database open");

    let runtime = Runtime::new(RuntimeConfig::new(data.join("cache")))?;
    let mut trust = TrustStore::default();
    trust.load_dir(&data.join("trusted-keys"))?;
    if args.allow_unsigned_plugins {
        tracing::warn!("unsigned plugin packages are allowed (--allow-unsigned-plugins)");
        trust = trust.allowing_unsigned();
    }
    let registry = Arc::new(PluginRegistry::new(runtime, trust));
    let bundled = registry.install_bundled().await;
    let results = registry.install_all(&data.join("plugins")).await;
    let loaded = results.iter().filter(|(_, r)| r.is_ok()).count();
    tracing::info!(
        bundled = bundled.iter().filter(|(_, r)| r.is_ok()).count(),
        loaded,
        refused = results.len() - loaded,
        "plugins"
    );

    bootstrap_operator(&store).await?;

    anyhow::ensure!(
        (1..=3600).contains(&args.lease_seconds),
        "--lease-seconds must be between 1 and 3600"
    );
    anyhow::ensure!(
        args.sweep_seconds >= 1,
        "--sweep-seconds must be at least 1"
    );
    anyhow::ensure!(
        args.recovery_grace_seconds >= 1,
        "--recovery-grace-seconds must be at least 1"
    );
    anyhow::ensure!(
        args.auth_max_failures >= 1 && args.auth_window_seconds >= 1,
        "--auth-max-failures and --auth-window-seconds must be at least 1"
    );
    let mut state = crate::api::AppState::new(store.clone(), registry);
    state.lease_seconds = args.lease_seconds;
    state.auth_limiter = Arc::new(crate::api::limiter::AuthLimiter::new(
        crate::api::limiter::LimiterSettings {
            max_failures: args.auth_max_failures,
            window: std::time::Duration::from_secs(args.auth_window_seconds),
            lockout: std::time::Duration::from_secs(args.auth_lockout_seconds),
        },
    ));
    // Changes a crash left between seal and release. On SQLite this process is the only one,
    // so every unfinished change is orphaned; on PostgreSQL another replica may be running
    // one, so only changes untouched for a while are.
    let grace = match store.backend() {
        crate::store::Backend::Sqlite => 0,
        crate::store::Backend::Postgres => args.recovery_grace_seconds,
    };
    if let Some(lock) = store.try_cluster_lock("sweeper").await? {
        state.workflow.recover(crate::store::now() - grace).await;
        lock.release().await;
    }
    spawn_sweeper(
        state.workflow.clone(),
        std::time::Duration::from_secs(args.sweep_seconds),
        args.recovery_grace_seconds,
    );

    let app = crate::api::app(state).into_make_service_with_connect_info::<SocketAddr>();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        }
    });
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "latchkey is listening");
    match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app)
                .await?
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(app)
                .await?
        }
    }
    store.close().await;
    Ok(())
}

/// The listener's TLS: the certificate chain and key from PEM files, rustls with ring.
fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let certs = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate (give the server's certificate in PEM)",
        cert.display()
    );
    let private_key = match PrivateKeyDer::from_pem_slice(&read(key)?) {
        Ok(private_key) => private_key,
        Err(pem::Error::NoItemsFound) => bail!("{} holds no private key", key.display()),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("{} is not a PEM private key", key.display()));
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, private_key)
    .with_context(|| {
        format!(
            "{} and {} do not make a usable certificate and key",
            cert.display(),
            key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// The first operator: from LATCHKEY_BOOTSTRAP_TOKEN when set, else a new token printed once.
async fn bootstrap_operator(store: &Store) -> anyhow::Result<()> {
    if store.operator_count().await? > 0 {
        return Ok(());
    }
    match std::env::var("LATCHKEY_BOOTSTRAP_TOKEN") {
        Ok(token) => {
            store
                .create_operator_with_token("bootstrap operator", &SecretString::from(token))
                .await
                .context("LATCHKEY_BOOTSTRAP_TOKEN")?;
            tracing::info!(
                "created the first operator with the token from LATCHKEY_BOOTSTRAP_TOKEN"
            );
        }
        Err(_) => {
            let issued = store.create_operator("first operator").await?;
            // Printed, not logged: it is shown this once, to whoever started the server.
            println!(
                "first operator token (shown once; keep it safe): {}",
                issued.token.expose_secret()
            );
        }
    }
    Ok(())
}

/// Every `--sweep-seconds`, on one replica of the cluster at a time (an advisory lock on
/// PostgreSQL): expired leases back to pending, envelopes past their not-after expired,
/// interrupted changes resolved (those untouched for `--recovery-grace-seconds`), and the due
/// sync checks made (`workflow::sync`).
fn spawn_sweeper(workflow: crate::workflow::Workflow, every: std::time::Duration, grace: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            sweep(&workflow, grace).await;
        }
    });
}

/// One sweep, if no other replica is sweeping now.
pub async fn sweep(workflow: &crate::workflow::Workflow, grace: i64) {
    let lock = match workflow.store.try_cluster_lock("sweeper").await {
        Ok(Some(lock)) => lock,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "sweeper: taking the cluster lock failed");
            return;
        }
    };
    let now = crate::store::now();
    match workflow.store.expire_leases(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(leases = n, "sweeper: expired leases returned to the queue"),
        Err(error) => tracing::warn!(%error, "sweeper: expiring leases failed"),
    }
    match workflow.store.expire_deliveries(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            deliveries = n,
            "sweeper: deliveries past their not-after expired"
        ),
        Err(error) => tracing::warn!(%error, "sweeper: expiring deliveries failed"),
    }
    workflow.recover(now - grace).await;
    workflow.verify_syncs(now).await;
    lock.release().await;
}

async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Keygen { out } => {
            let id = package::generate_key(&out)?;
            println!("key id {id}");
            println!("private key: {} (keep it secret)", out.display());
            println!(
                "public key:  {} (give it to operators)",
                package::public_key_path(&out).display()
            );
        }
        PluginCommand::Pack {
            manifest,
            component,
            out,
        } => {
            let package = Package::assemble(&manifest, &component, &out)?;
            println!(
                "packed {} {} into {} (unsigned)",
                package.manifest.id,
                package.manifest.version,
                out.display()
            );
        }
        PluginCommand::Sign { package: dir, key } => {
            let key = package::read_signing_key(&key)?;
            let mut package = Package::read(&dir)?;
            let id = package.sign(&key)?;
            println!(
                "signed {} {} with key {id}",
                package.manifest.id, package.manifest.version
            );
        }
        PluginCommand::Verify {
            package: dir,
            trusted_keys,
            trusted_dir,
        } => {
            let mut trust = TrustStore::default();
            for path in &trusted_keys {
                trust.trust(package::read_public_key(path)?);
            }
            if let Some(dir) = &trusted_dir {
                trust.load_dir(dir)?;
            }
            let package = Package::read(&dir)?;
            match package.verify(&trust)? {
                Provenance::Signed { key_id } => println!(
                    "ok: {} {} is signed by trusted key {key_id}",
                    package.manifest.id, package.manifest.version
                ),
                Provenance::UnsignedAllowed | Provenance::Bundled => {
                    unreachable!("verify never allows unsigned packages")
                }
            }
        }
        PluginCommand::Inspect { path } => inspect(&path).await?,
        PluginCommand::New { name, dir, sdk } => {
            let dir = crate::scaffold::create(&crate::scaffold::NewPlugin { name, dir, sdk })?;
            println!(
                "created {}; see its README.md to build and test it",
                dir.display()
            );
        }
        PluginCommand::Test {
            path,
            manifest,
            config,
        } => {
            let report = crate::conformance::run(&path, manifest.as_deref(), &config).await?;
            print!("{}", report.table());
            let failed = report.count(crate::conformance::Outcome::Fail);
            anyhow::ensure!(failed == 0, "{failed} conformance check(s) failed");
        }
    }
    Ok(())
}

async fn inspect(path: &Path) -> anyhow::Result<()> {
    let (package, component) = if path.is_dir() {
        let package = Package::read(path)?;
        let component = package.component.clone();
        (Some(package), component)
    } else {
        (
            None,
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
    };
    println!(
        "component: {} bytes, sha256 {}",
        component.len(),
        hex::encode(sha2::Sha256::digest(&component))
    );
    let stamped = world::stamped_wit_version(&component).map_err(anyhow::Error::msg)?;
    println!(
        "contract version stamped: {}",
        stamped.as_deref().unwrap_or("(none)")
    );
    let Some(package) = package else {
        println!("(a bare component: pack it with a manifest to load it)");
        return Ok(());
    };
    let m = &package.manifest;
    println!(
        "manifest: id {} version {} contract {}",
        m.id, m.version, m.wit
    );
    println!("  name: {}", m.name);
    println!("  capabilities requested: {}", m.requested());
    match package.verify(&TrustStore::default()) {
        Err(crate::runtime::PackageError::Unsigned) => println!("signature: none"),
        Err(crate::runtime::PackageError::UntrustedSigner { key_id }) => {
            println!(
                "signature: by key {key_id} (use `plugin verify` to check it against trusted keys)"
            )
        }
        Err(other) => println!("signature: {other}"),
        Ok(_) => {}
    }
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 4,
        ..RuntimeConfig::new(cache.path())
    })?;
    match runtime.load(&package, Provenance::UnsignedAllowed).await {
        Ok(plugin) => {
            let info = plugin.info();
            println!("world: ok (exports latchkey:connector/connector@{})", m.wit);
            println!("describe: {} {} \"{}\"", info.id, info.version, info.name);
            println!("  supports: {:?}", info.supports);
        }
        Err(error) => println!("world: REFUSED: {error}"),
    }
    Ok(())
}
