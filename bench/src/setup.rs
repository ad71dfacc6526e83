//! What the measurements share: a plugin registry with the test plugins, databases on both
//! backends, and Latchkey's API served in this process on a loopback port with a tenant, its
//! owner, a connector and employees with active keys.

use std::sync::Arc;

use base64::Engine as _;
use keyproto::envelope::TrustAnchor;
use keyproto::identity::TenantId;
use keyproto::softkey::SoftwareKey;
use latchkey::api::AppState;
use latchkey::runtime::{PluginRegistry, Runtime, RuntimeConfig};
use latchkey::store::{
    ConnectorRole, KeyStatus, MasterKey, NewConnector, NewEmployee, NewKey, Store, testing,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

/// A registry with the signed packages of `plugins` (the default runtime: 256 calls at once).
pub async fn registry(plugins: &[&str], dir: &std::path::Path) -> Arc<PluginRegistry> {
    let runtime = Runtime::new(RuntimeConfig::new(dir.join("cache"))).expect("runtime");
    let registry = PluginRegistry::new(runtime, latchkey_tests::trust());
    for name in plugins {
        let package = latchkey_tests::signed_package(name, &dir.join("packages"));
        registry
            .install(&package)
            .await
            .expect("installing a plugin");
    }
    Arc::new(registry)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    pub fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres => "PostgreSQL",
        }
    }

    /// The backends this machine has (PostgreSQL needs LATCHKEY_POSTGRES_URL).
    pub fn available() -> Vec<Db> {
        let mut all = vec![Db::Sqlite];
        if std::env::var("LATCHKEY_POSTGRES_URL").is_ok() {
            all.push(Db::Postgres);
        }
        all
    }
}

/// A database of its own on `db`, dropped (PostgreSQL) with the value.
pub struct Database {
    pub store: Store,
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Database {
    pub async fn open(db: Db) -> Database {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, postgres) = match db {
            Db::Sqlite => (
                format!("sqlite://{}", dir.path().join("bench.db").display()),
                None,
            ),
            Db::Postgres => {
                let admin = std::env::var("LATCHKEY_POSTGRES_URL").expect("LATCHKEY_POSTGRES_URL");
                let name = format!("latchkey_bench_{:08x}", latchkey_tests::samba::rand_u32());
                let url = testing::create_postgres_database(&admin, &name)
                    .await
                    .expect("database");
                (url, Some((admin, name)))
            }
        };
        let store = Store::open(&url, MasterKey::generate())
            .await
            .expect("store");
        Database {
            store,
            dir,
            postgres,
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = &self.postgres {
            let _ = testing::drop_postgres_database(admin, name).await;
        }
    }
}

/// Latchkey's API on a loopback port, with a tenant, an owner and a test-echo connector.
pub struct Served {
    pub url: String,
    pub tenant: String,
    pub owner: String,
    pub connector: String,
    pub database: Database,
    server: tokio::task::JoinHandle<()>,
}

/// An employee with an active key.
pub struct Holder {
    pub employee: String,
    pub key_id: String,
    pub key: SoftwareKey,
    pub username: String,
}

impl Served {
    pub async fn start(db: Db, lease_seconds: i64) -> Served {
        let database = Database::open(db).await;
        let registry = registry(&["test-echo"], database.dir.path()).await;
        let store = database.store.clone();
        let mut state = AppState::new(store.clone(), registry);
        state.lease_seconds = lease_seconds;
        let tenant = store.create_tenant("bench").await.expect("tenant");
        let owner = store
            .create_admin(&tenant.id, "owner", latchkey::store::Role::Owner)
            .await
            .expect("owner");
        let connector = store
            .create_connector(
                &tenant.id,
                NewConnector {
                    plugin: "test-echo".into(),
                    role: ConnectorRole::Primary,
                    config: Default::default(),
                    enabled: true,
                    granted: vec!["log".into(), "config".into()],
                },
                &latchkey::capabilities::secrets::Secrets::new(),
            )
            .await
            .expect("connector");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = latchkey::api::app(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Served {
            url,
            tenant: tenant.id,
            owner: owner.token.expose_secret().to_string(),
            connector: connector.id,
            database,
            server,
        }
    }

    pub fn store(&self) -> &Store {
        &self.database.store
    }

    /// `n` employees (test-echo accounts `bench-<i>`) with active, provisioned software keys.
    pub async fn holders(&self, n: usize) -> Vec<Holder> {
        let store = self.store();
        let server_key = store
            .tenant_signing_key(&self.tenant)
            .await
            .expect("signing key");
        let anchor = TrustAnchor {
            tenant: TenantId(
                *uuid::Uuid::parse_str(&self.tenant)
                    .expect("uuid")
                    .as_bytes(),
            ),
            server_key: server_key.verifying_key(),
        };
        let mut holders = Vec::with_capacity(n);
        for i in 0..n {
            let username = format!("bench-{i:05}");
            let employee = store
                .create_employee(
                    &self.tenant,
                    NewEmployee {
                        connector_id: self.connector.clone(),
                        account_id: format!("id-{username}"),
                        username: username.clone(),
                        display_name: Some(format!("Test {username}")),
                        account: json!({"id": format!("id-{username}"), "username": username,
                                        "display_name": format!("Test {username}")}),
                    },
                )
                .await
                .expect("employee");
            let mut key =
                SoftwareKey::generate(&format!("soft-{i:05}"), &mut rand_core::OsRng).expect("key");
            key.provision(anchor.clone()).expect("provision");
            let registered = store
                .create_key(
                    &self.tenant,
                    NewKey {
                        serial: key.serial().to_string(),
                        kem_public_key: key.identity().kem_public_key().to_vec(),
                        sig_public_key: key.identity().sig_public_key().as_bytes().to_vec(),
                    },
                )
                .await
                .expect("key");
            store
                .assign_key(&self.tenant, &registered.id, Some(&employee.id))
                .await
                .expect("assign");
            store
                .set_key_status(&self.tenant, &registered.id, KeyStatus::Active)
                .await
                .expect("activate");
            holders.push(Holder {
                employee: employee.id,
                key_id: registered.id,
                key,
                username,
            });
        }
        holders
    }

    /// A workstation of the tenant, approved: its token.
    pub async fn workstation(&self) -> String {
        let store = self.store();
        let code = store
            .create_enrollment_code(
                &self.tenant,
                "bench",
                latchkey::store::now(),
                latchkey::store::now() + 3600,
            )
            .await
            .expect("code");
        let issued = store
            .redeem_enrollment_code(&code.token, "bench-ws", latchkey::store::now())
            .await
            .expect("redeem")
            .expect("a valid code");
        store
            .approve_workstation(&self.tenant, &issued.value.id)
            .await
            .expect("approve");
        issued.token.expose_secret().to_string()
    }

    pub async fn finish(self) {
        self.server.abort();
        self.database.finish().await;
    }
}

/// An HTTP client for many concurrent requests to one server.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
