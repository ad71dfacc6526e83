//! `latchkey agent`: the workstation client, with a software key (keyproto `sim`) standing in
//! for the hardware key. `init` creates the key; `run` enrolls the workstation (once), waits for
//! an admin's approval, then relays each delivery to the key and posts the key's signed ack;
//! `type` prints what the key would type for an account; `change-password` is the user changing
//! their own password with the old one from the key.
//!
//! Beside the key file it keeps `KEY_FILE.agent.json` (mode 0600): the server, the workstation's
//! id and token, the tenant. The key is saved before its ack leaves, so an ack never refers to
//! a credential the key could lose. It must never print a password except in `type`, whose job
//! that is.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use ed25519_dalek::VerifyingKey;
use keyproto::envelope::TrustAnchor;
use keyproto::identity::TenantId;
use keyproto::softkey::SoftwareKey;
use rand_core::{OsRng, RngCore as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create a software key; prints {"serial","kem_public_key","sig_public_key"} to register it.
    Init {
        #[arg(long)]
        key_file: PathBuf,
        /// The key's serial (default: soft-<random>).
        #[arg(long)]
        serial: Option<String>,
    },
    /// Enroll (the first time), wait for approval, then deliver to the key and ack.
    Run {
        /// The Latchkey server, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: Option<String>,
        /// The enrolment code from an admin (needed the first time only).
        #[arg(long, env = "LATCHKEY_ENROLLMENT_CODE")]
        enrollment_code: Option<String>,
        #[arg(long)]
        key_file: PathBuf,
        /// This workstation's name (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Return once the deliveries due now are acknowledged.
        #[arg(long)]
        once: bool,
        /// With --once: how long to wait for an admin's approval, in seconds.
        #[arg(long, default_value_t = 300)]
        approval_timeout: u64,
    },
    /// Print the password the key holds for an account (what it would type at the login screen).
    Type {
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        account: String,
    },
    /// Change the account's password as its user: the old one comes from the key, the new one
    /// is read from standard input (one line); it reaches the key on the next `agent run`.
    ChangePassword {
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        account: String,
    },
}

/// What the agent remembers beside the key.
#[derive(Serialize, Deserialize)]
struct AgentState {
    server: String,
    workstation: String,
    tenant: String,
    token: String,
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentState")
            .field("server", &self.server)
            .field("workstation", &self.workstation)
            .finish_non_exhaustive()
    }
}

fn state_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".agent.json");
    PathBuf::from(name)
}

fn load_state(key_file: &Path) -> anyhow::Result<Option<AgentState>> {
    let path = state_path(key_file);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_state(key_file: &Path, state: &AgentState) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = state_path(key_file);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(&serde_json::to_vec_pretty(state)?)?;
    Ok(())
}

fn load_key(path: &Path) -> anyhow::Result<SoftwareKey> {
    SoftwareKey::load(path).with_context(|| format!("reading the key file {}", path.display()))
}

fn save_key(key: &SoftwareKey, path: &Path) -> anyhow::Result<()> {
    key.save(path)
        .with_context(|| format!("saving the key file {}", path.display()))
}

fn now() -> u64 {
    crate::store::now().max(0) as u64
}

/// A client for the server's workstation API.
struct Client {
    http: reqwest::Client,
    server: String,
}

impl Client {
    fn new(server: &str) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()?,
            server: server.trim_end_matches('/').to_string(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.server);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = value["detail"].as_str().unwrap_or(text.as_str());
            bail!("{method} {path}: {status}: {detail}");
        }
        Ok(value)
    }
}

pub async fn run(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Init { key_file, serial } => init(&key_file, serial),
        AgentCommand::Run {
            server,
            enrollment_code,
            key_file,
            name,
            once,
            approval_timeout,
        } => {
            relay(
                server,
                enrollment_code,
                &key_file,
                name,
                once,
                Duration::from_secs(approval_timeout),
            )
            .await
        }
        AgentCommand::Type { key_file, account } => {
            let key = load_key(&key_file)?;
            let credential = key.credential_for_account(&account).with_context(|| {
                format!("the key holds no password for {account}: run `latchkey agent run` to receive it")
            })?;
            println!("{}", credential.password().expose_secret());
            Ok(())
        }
        AgentCommand::ChangePassword {
            server,
            key_file,
            account,
        } => change_password(server, &key_file, &account).await,
    }
}

fn init(key_file: &Path, serial: Option<String>) -> anyhow::Result<()> {
    if key_file.exists() {
        bail!(
            "{} exists; a key file is never overwritten",
            key_file.display()
        );
    }
    let serial = serial.unwrap_or_else(|| {
        let mut bytes = [0u8; 6];
        OsRng.fill_bytes(&mut bytes);
        format!("soft-{}", hex::encode(bytes))
    });
    let key = SoftwareKey::generate(&serial, &mut OsRng)?;
    save_key(&key, key_file)?;
    let identity = key.identity();
    println!(
        "{}",
        json!({
            "serial": serial,
            "kem_public_key": URL_SAFE_NO_PAD.encode(identity.kem_public_key()),
            "sig_public_key": URL_SAFE_NO_PAD.encode(identity.sig_public_key().as_bytes()),
        })
    );
    Ok(())
}

/// Enrolls with `code` (the first time), and provisions the key with the tenant's server key.
async fn enrolled(
    server: Option<String>,
    code: Option<String>,
    key_file: &Path,
    name: Option<String>,
) -> anyhow::Result<AgentState> {
    if let Some(state) = load_state(key_file)? {
        if let Some(server) = &server
            && server.trim_end_matches('/') != state.server
        {
            bail!(
                "this key's workstation is enrolled with {}, not {server}; remove {} to enroll \
                 elsewhere",
                state.server,
                state_path(key_file).display()
            );
        }
        return Ok(state);
    }
    let server = server.context("--server is needed the first time")?;
    let code = code.context(
        "this workstation is not enrolled: give --enrollment-code (ask an admin for one)",
    )?;
    let name = name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "workstation".into())
    });
    let client = Client::new(&server)?;
    let answer = client
        .call(
            reqwest::Method::POST,
            "/api/v1/client/enroll",
            None,
            Some(json!({"code": code, "name": name})),
        )
        .await?;
    let text = |field: &str| -> anyhow::Result<String> {
        answer[field]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the server's enrolment answer has no {field}"))
    };
    let state = AgentState {
        server: client.server.clone(),
        workstation: text("id")?,
        tenant: text("tenant")?,
        token: text("token")?,
    };
    let server_key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(text("server_key")?)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("the server's key is not 32 bytes of base64url")?;
    let tenant = uuid::Uuid::parse_str(&state.tenant).context("the tenant id is not a UUID")?;
    let mut key = load_key(key_file)?;
    key.provision(TrustAnchor {
        tenant: TenantId(*tenant.as_bytes()),
        server_key: VerifyingKey::from_bytes(&server_key).context("the server's key")?,
    })
    .context("the key is provisioned for another tenant or server")?;
    save_key(&key, key_file)?;
    save_state(key_file, &state)?;
    eprintln!(
        "enrolled as workstation {} ({name}); an admin must approve it",
        state.workstation
    );
    Ok(state)
}

async fn relay(
    server: Option<String>,
    code: Option<String>,
    key_file: &Path,
    name: Option<String>,
    once: bool,
    approval_timeout: Duration,
) -> anyhow::Result<()> {
    let state = enrolled(server, code, key_file, name).await?;
    let client = Client::new(&state.server)?;
    let token = state.token.as_str();
    // Approval.
    let started = tokio::time::Instant::now();
    loop {
        let me = client
            .call(reqwest::Method::GET, "/api/v1/client/me", Some(token), None)
            .await?;
        match me["status"].as_str() {
            Some("approved") => break,
            Some("enrolled") => {
                if once && started.elapsed() >= approval_timeout {
                    bail!(
                        "workstation {} is still waiting for an admin's approval",
                        state.workstation
                    );
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => bail!(
                "workstation {} is {}",
                state.workstation,
                other.unwrap_or("unknown")
            ),
        }
    }
    let serial = load_key(key_file)?.serial().to_string();
    loop {
        let wait = if once { 0 } else { 30 };
        let answer = client
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/client/keys/{serial}/deliveries?wait={wait}"),
                Some(token),
                None,
            )
            .await?;
        let deliveries = answer["deliveries"].as_array().cloned().unwrap_or_default();
        if deliveries.is_empty() && once {
            return Ok(());
        }
        // The key takes every envelope of this pull; its file is saved before the server hears
        // of any of them; then one request carries all the acks.
        let mut key = load_key(key_file)?;
        let mut acks = Vec::new();
        for delivery in &deliveries {
            let id = delivery["id"].as_str().unwrap_or_default().to_string();
            let envelope = URL_SAFE_NO_PAD
                .decode(delivery["envelope"].as_str().unwrap_or_default())
                .context("a delivery's envelope is not base64url")?;
            match key.receive(&envelope, now()) {
                Ok(ack) => acks.push(json!({"delivery": id, "ack": URL_SAFE_NO_PAD.encode(&ack)})),
                Err(error) => eprintln!("the key refused delivery {id}: {error}"),
            }
        }
        if acks.is_empty() {
            continue;
        }
        save_key(&key, key_file)?;
        let answer = client
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/client/keys/{serial}/acks"),
                Some(token),
                Some(json!({ "acks": acks })),
            )
            .await?;
        for result in answer["results"].as_array().cloned().unwrap_or_default() {
            match result["state"].as_str() {
                Some(state) => eprintln!(
                    "delivered {} to key {serial} ({state})",
                    result["delivery"].as_str().unwrap_or_default()
                ),
                None => eprintln!(
                    "the server refused the ack of {}: {}",
                    result["delivery"].as_str().unwrap_or_default(),
                    result["error"]["detail"].as_str().unwrap_or_default()
                ),
            }
        }
    }
}

async fn change_password(
    server: Option<String>,
    key_file: &Path,
    account: &str,
) -> anyhow::Result<()> {
    let state = load_state(key_file)?
        .context("this workstation is not enrolled: run `latchkey agent run` first")?;
    if let Some(server) = server
        && server.trim_end_matches('/') != state.server
    {
        bail!(
            "this key's workstation is enrolled with {}, not {server}",
            state.server
        );
    }
    let key = load_key(key_file)?;
    let old = key
        .credential_for_account(account)
        .with_context(|| format!("the key holds no password for {account}"))?
        .password()
        .clone();
    if std::io::stdin().is_terminal() {
        eprintln!("new password for {account} (one line):");
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    let new = SecretString::from(line.trim_end_matches(['\r', '\n']).to_string());
    if new.expose_secret().is_empty() {
        bail!("the new password is empty");
    }
    let client = Client::new(&state.server)?;
    let answer = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/client/keys/{}/password-change", key.serial()),
            Some(&state.token),
            Some(json!({"old_password": old.expose_secret(), "new_password": new.expose_secret()})),
        )
        .await?;
    println!(
        "{}",
        json!({"change_id": answer["change_id"], "state": answer["state"]})
    );
    Ok(())
}
