//! `latchkey-graph-emulator`: the Graph emulator as a process, for trying Latchkey's Entra ID
//! connector (and hybrid sync) by hand. Prints the tenant, client id and secret it accepts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use latchkey_graph_emulator::{EmulatorOptions, GraphEmulator, NewUser, OnPremSource};

#[derive(Parser)]
#[command(about = "A Microsoft Graph and Entra ID token endpoint emulator for Latchkey")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// The Samba DC's env file: enables the simulated password hash sync from it.
    #[arg(long)]
    samba_env: Option<PathBuf>,
    /// A JSON array of users in Graph's camelCase (userPrincipalName, displayName, mail,
    /// onPremisesSamAccountName for a synced user, passwordPolicies, …).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Use this client secret instead of a random one.
    #[arg(long, env = "LATCHKEY_GRAPH_EMULATOR_SECRET")]
    client_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut options = EmulatorOptions {
        listen: args.listen,
        ..EmulatorOptions::default()
    };
    if let Some(secret) = args.client_secret {
        options.app.client_secret = secret;
    }
    if let Some(path) = &args.samba_env {
        options.on_prem = Some(OnPremSource::from_samba_env(path)?);
    }
    let users: Vec<NewUser> = match &args.users {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => Vec::new(),
    };
    let emulator = GraphEmulator::try_start(options).await?;
    for user in users {
        emulator.add_user(user)?;
    }
    println!("Graph emulator on {}", emulator.url());
    println!("  token endpoint: {}", emulator.token_url());
    println!("  Graph:          {}", emulator.graph_url());
    println!("  tenant id:      {}", emulator.tenant_id());
    println!("  client id:      {}", emulator.client_id());
    println!("  client secret:  {}", emulator.client_secret());
    println!("  users:          {}", emulator.users().len());
    println!(
        "  password sync:  {}",
        if args.samba_env.is_some() {
            "on"
        } else {
            "off"
        }
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
