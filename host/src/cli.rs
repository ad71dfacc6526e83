//! The `latchkey` command line: raw arguments (clap) turned into calls on the library.
//!
//! `serve` runs the server; `plugin` manages plugin packages (keygen, pack, sign, verify,
//! inspect). Errors print as one readable chain and exit with status 1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sha2::Digest as _;

use crate::runtime::{
    Package, PluginRegistry, Provenance, Runtime, RuntimeConfig, TrustStore, package, world,
};

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
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "LATCHKEY_LISTEN")]
    listen: SocketAddr,
    /// Where Latchkey keeps its data: plugins/, trusted-keys/, cache/.
    #[arg(long, default_value = "latchkey-data", env = "LATCHKEY_DATA_DIR")]
    data_dir: PathBuf,
    /// Load plugin packages that carry no signature (for plugin development only).
    #[arg(long, env = "LATCHKEY_ALLOW_UNSIGNED_PLUGINS")]
    allow_unsigned_plugins: bool,
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
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = &args.data_dir;
    std::fs::create_dir_all(data.join("plugins"))
        .with_context(|| format!("creating {}", data.join("plugins").display()))?;
    let runtime = Runtime::new(RuntimeConfig::new(data.join("cache")))?;
    let mut trust = TrustStore::default();
    trust.load_dir(&data.join("trusted-keys"))?;
    if args.allow_unsigned_plugins {
        tracing::warn!("unsigned plugin packages are allowed (--allow-unsigned-plugins)");
        trust = trust.allowing_unsigned();
    }
    let registry = Arc::new(PluginRegistry::new(runtime, trust));
    let results = registry.install_all(&data.join("plugins")).await;
    let loaded = results.iter().filter(|(_, r)| r.is_ok()).count();
    tracing::info!(loaded, refused = results.len() - loaded, "plugins");

    let app = crate::api::app(crate::api::AppState { registry });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "latchkey is listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
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
                Provenance::UnsignedAllowed => unreachable!("verify never allows unsigned here"),
            }
        }
        PluginCommand::Inspect { path } => inspect(&path).await?,
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
