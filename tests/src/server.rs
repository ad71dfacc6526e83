//! A real `latchkey serve` for end-to-end tests: the binary users run, in a process of its own,
//! on a free loopback port, with a temporary data directory, a database of its own (SQLite in
//! the data directory, or a fresh PostgreSQL database), a bootstrap token, and its stdout and
//! stderr captured to a file the tests can scan. Also `latchkey agent` runs and a small JSON
//! client for the API.
//!
//! A missing binary is a failure that says how to build it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use latchkey::store::testing;
use serde_json::{Value, json};

use crate::databases::POSTGRES_URL_VAR;
use crate::workspace_root;

/// The `latchkey` binary cargo built for this test run.
pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("debug/latchkey");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p latchkey --features failpoints` (the crash \
         tests need its crash points; cargo test --workspace --all-features builds \
         it), or run the whole suite with `tests/run`",
        path.display()
    );
    path
}

/// Which database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// What a server starts with beyond its database.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Test plugins to install (signed by the test run's key, which the server trusts).
    pub plugins: Vec<&'static str>,
    /// Environment for `latchkey serve` (e.g. `LATCHKEY_LEASE_SECONDS`).
    pub env: Vec<(&'static str, String)>,
    /// Serve HTTPS with this certificate and key (PEM files), trusted by `http` through this
    /// CA certificate (PEM).
    pub tls: Option<Tls>,
    /// Create the PostgreSQL database on this server (an admin URL) instead of the one
    /// `LATCHKEY_POSTGRES_URL` names (e.g. a private cluster a test restarts).
    pub postgres_admin_url: Option<String>,
    /// Make the data directory (the SQLite database, the log) under this directory instead of
    /// the system's temporary directory (e.g. a small file system a test fills).
    pub data_dir_in: Option<PathBuf>,
    /// The `latchkey` binary to run instead of the debug build's (the soak's release run).
    pub binary: Option<PathBuf>,
}

/// The server's TLS: its certificate and key files, and the CA that issued them.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_pem: String,
}

/// A running server; killed (and its PostgreSQL database dropped) when dropped.
pub struct Server {
    pub url: String,
    pub operator_token: String,
    pub data_dir: tempfile::TempDir,
    pub log_path: PathBuf,
    /// The SQLite file, when on SQLite.
    pub sqlite_file: Option<PathBuf>,
    database_url: String,
    postgres: Option<(String, String)>,
    master_key_file: PathBuf,
    options: Options,
    child: Option<Child>,
    pub http: reqwest::Client,
}

/// The tests' HTTP client: trusting `tls`'s CA when the server speaks HTTPS.
fn http_client(tls: Option<&Tls>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
    if let Some(tls) = tls {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).expect("a PEM CA"),
        );
    }
    builder.build().expect("an HTTP client")
}

/// A port for a server to listen on: free now, drawn at random from 20000..32000, below Linux's
/// ephemeral range (32768 and up) where `bind(0)` and outgoing connections get theirs. A port
/// the OS handed out here and took back could be handed to another test's server before ours
/// bound it: two servers raced for one port, ours exited, and the test talked to the other one
/// (a 401 for a valid token, seen once in a full run).
fn free_port() -> u16 {
    loop {
        let port = 20000 + (crate::samba::rand_u32() % 12000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Server {
    /// Starts a server on `db`.
    pub async fn start(db: Db) -> Server {
        Server::start_with(db, Options::default()).await
    }

    /// Starts a server on `db` with `options`.
    pub async fn start_with(db: Db, options: Options) -> Server {
        let data_dir = match &options.data_dir_in {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let (database_url, postgres, sqlite_file) = match db {
            Db::Sqlite => {
                let file = data_dir.path().join("latchkey.db");
                (format!("sqlite://{}", file.display()), None, Some(file))
            }
            Db::Postgres => {
                let admin = options.postgres_admin_url.clone().unwrap_or_else(|| {
                    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
                        panic!("{POSTGRES_URL_VAR} is not set: run `tests/run`, or point it at a PostgreSQL server")
                    })
                });
                let name = format!("latchkey_e2e_{:08x}", crate::samba::rand_u32());
                let url = testing::create_postgres_database(&admin, &name)
                    .await
                    .unwrap_or_else(|e| panic!("creating a database on {admin}: {e}"));
                (url, Some((admin, name)), None)
            }
        };
        let master_key_file = data_dir.path().join("master.key");
        let key = latchkey::store::MasterKey::generate();
        std::fs::write(
            &master_key_file,
            secrecy::ExposeSecret::expose_secret(&key.to_base64()),
        )
        .expect("writing the master key");
        let mut server = Server {
            url: String::new(),
            operator_token: format!(
                "e2e-operator-token-{:08x}{:08x}",
                crate::samba::rand_u32(),
                crate::samba::rand_u32()
            ),
            log_path: data_dir.path().join("server.log"),
            data_dir,
            sqlite_file,
            database_url,
            postgres,
            master_key_file,
            child: None,
            http: http_client(options.tls.as_ref()),
            options,
        };
        server.install_plugins();
        server.spawn().await;
        server
    }

    /// Another replica on the same database (PostgreSQL), master key, plugins and settings, with
    /// a data directory of its own.
    pub async fn replica(&self) -> Server {
        assert!(
            self.sqlite_file.is_none(),
            "replicas share a PostgreSQL database"
        );
        let data_dir = tempfile::tempdir().expect("tempdir");
        let master_key_file = data_dir.path().join("master.key");
        std::fs::copy(&self.master_key_file, &master_key_file).expect("copying the master key");
        let mut replica = Server {
            url: String::new(),
            operator_token: self.operator_token.clone(),
            log_path: data_dir.path().join("server.log"),
            data_dir,
            sqlite_file: None,
            database_url: self.database_url.clone(),
            postgres: None,
            master_key_file,
            options: self.options.clone(),
            child: None,
            http: self.http.clone(),
        };
        replica.install_plugins();
        replica.spawn().await;
        replica
    }

    fn install_plugins(&self) {
        if self.options.plugins.is_empty() {
            return;
        }
        let trusted = self.data_dir.path().join("trusted-keys");
        std::fs::create_dir_all(&trusted).expect("trusted-keys");
        std::fs::copy(&crate::signer().public_key_path, trusted.join("tests.pem"))
            .expect("trusting the test run's key");
        for name in &self.options.plugins {
            crate::signed_package(name, &self.data_dir.path().join("plugins"));
        }
    }

    /// Starts the process (again, after `kill`), on a new port, and waits until it answers.
    pub async fn spawn(&mut self) {
        let port = free_port();
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        self.url = format!("{scheme}://127.0.0.1:{port}");
        let tls: Vec<(&str, &Path)> = match &self.options.tls {
            Some(tls) => vec![
                ("LATCHKEY_TLS_CERT", tls.cert_file.as_path()),
                ("LATCHKEY_TLS_KEY", tls.key_file.as_path()),
            ],
            None => Vec::new(),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("server log");
        let program = self.options.binary.clone().unwrap_or_else(binary);
        let child = Command::new(program)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &self.database_url])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--master-key-file")
            .arg(&self.master_key_file)
            .env("LATCHKEY_BOOTSTRAP_TOKEN", &self.operator_token)
            .env("LATCHKEY_LOG", "info,latchkey=debug")
            .envs(self.options.env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(tls)
            .env_remove("LATCHKEY_MASTER_KEY")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting latchkey serve");
        self.child = Some(child);
        for _ in 0..600 {
            if let Ok(response) = self.http.get(format!("{}/healthz", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("latchkey serve exited with {status}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("latchkey serve did not answer within 60 s:\n{}", self.log());
    }

    /// Kills the process (SIGKILL): no shutdown of any kind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A server whose every change waits `delay_ms` before the primary's write (the
    /// `change::before-set-password` delay point) and whose sweeper runs every second with a
    /// 1 s grace: time for a test to break something, or to sweep, in the middle of a change.
    /// Needs a `failpoints` build; says how to get one otherwise.
    pub async fn start_with_delayed_writes(db: Db, delay_ms: u64) -> Server {
        let server = Server::start_with(
            db,
            Options {
                env: vec![
                    (
                        "FAILPOINTS",
                        format!("change::before-set-password=return({delay_ms})"),
                    ),
                    ("LATCHKEY_SWEEP_SECONDS", "1".into()),
                    ("LATCHKEY_RECOVERY_GRACE_SECONDS", "1".into()),
                ],
                ..Options::default()
            },
        )
        .await;
        assert!(
            server.log().contains("crash points armed"),
            "the server was built without crash points: build it with `cargo build -p \
             latchkey --features failpoints` (tests/run builds the workspace with \
             --all-features)"
        );
        server
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The database URL the server runs on.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Everything the server wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A request with `token`; returns (status, JSON body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Like `call`, panicking unless the status is `expected`.
    pub async fn expect(
        &self,
        expected: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(method, path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {value:#}");
        value
    }

    /// A new tenant and an admin of it with `role`: (tenant id, admin token).
    pub async fn tenant_with_admin(&self, name: &str, role: &str) -> (String, String) {
        let operator = self.operator_token.clone();
        let tenant = self
            .expect(
                201,
                "POST",
                "/api/v1/tenants",
                &operator,
                Some(json!({"name": name})),
            )
            .await;
        let tenant = tenant["id"].as_str().expect("an id").to_string();
        let admin = self
            .expect(
                201,
                "POST",
                &format!("/api/v1/tenants/{tenant}/admins"),
                &operator,
                Some(json!({"name": format!("{name} {role}"), "role": role})),
            )
            .await;
        (
            tenant,
            admin["token"].as_str().expect("a token").to_string(),
        )
    }

    /// Runs `latchkey agent ARGS` to completion.
    pub fn agent(&self, args: &[&str]) -> Output {
        agent(args)
    }
}

/// Runs `latchkey agent ARGS` to completion (stdin empty).
pub fn agent(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("agent")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running latchkey agent")
}

/// `latchkey agent run --once` with the enrolled workstation of `key_file`, off the async
/// executor: delivers what is due to the key and exits.
pub async fn agent_run_once(key_file: &Path) -> Output {
    let key = key_file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        agent(&[
            "run",
            "--key-file",
            key.to_str().expect("a UTF-8 path"),
            "--once",
        ])
    })
    .await
    .expect("the agent's task")
}

/// Runs `latchkey agent ARGS` with `input` on stdin.
pub fn agent_with_input(args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(binary())
        .arg("agent")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running latchkey agent");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("latchkey agent")
}

/// Stdout of a successful run, or a panic with both streams.
pub fn stdout_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if let Some((admin, name)) = self.postgres.take() {
            // Best effort: a runtime may not be available in drop.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    let _ = runtime.block_on(testing::drop_postgres_database(&admin, &name));
                }
            })
            .join();
        }
    }
}

/// The files of a SQLite database: the file, its WAL and shared-memory index.
pub fn sqlite_files(file: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", file.display())))
        .filter(|p| p.exists())
        .collect()
}
