//! Databases for the store tests: every store test runs once on SQLite (a temporary file, WAL)
//! and once on PostgreSQL (a fresh database on the server of `LATCHKEY_POSTGRES_URL`, dropped
//! when the test passes).
//!
//! A missing or unreachable PostgreSQL server is a failure that says how to get one.

use latchkey::capabilities::secrets::Secrets;
use latchkey::store::{Connector, ConnectorRole, MasterKey, NewConnector, Store, Tenant, testing};
use secrecy::{ExposeSecret as _, SecretString};

/// The variable naming the PostgreSQL server the tests create their databases on.
pub const POSTGRES_URL_VAR: &str = "LATCHKEY_POSTGRES_URL";

const HOW_TO_GET_POSTGRES: &str = "the store tests need a PostgreSQL server: run `tests/run`, or \
     start one (Debian: `apt-get install postgresql && pg_ctlcluster 15 main start`, trust auth \
     on 127.0.0.1) and set LATCHKEY_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test";

/// A store on a database of its own, and what to clean up after it.
pub struct TestDatabase {
    pub store: Store,
    /// The database's URL, to open a second store on it.
    pub url: String,
    master_key: SecretString,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// The master key the store was opened with.
    pub fn master_key(&self) -> MasterKey {
        MasterKey::from_base64(self.master_key.expose_secret()).expect("the test's master key")
    }

    /// Another store on the same database, sealing with `master_key`.
    pub async fn reopen(&self, master_key: MasterKey) -> Store {
        Store::open(&self.url, master_key)
            .await
            .unwrap_or_else(|e| panic!("reopening {}: {e}", self.url))
    }

    /// Closes the store and drops its PostgreSQL database (a failed test leaves it, named
    /// `latchkey_test_*`, for a look).
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = &self.postgres {
            testing::drop_postgres_database(admin_url, name)
                .await
                .unwrap_or_else(|e| panic!("dropping database {name}: {e}"));
        }
    }
}

/// A store on a fresh SQLite file.
pub async fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
    let (store, master_key) = open(&url).await;
    TestDatabase {
        store,
        url,
        master_key,
        _dir: Some(dir),
        postgres: None,
    }
}

/// A store on a fresh PostgreSQL database.
pub async fn postgres() -> TestDatabase {
    let admin_url = std::env::var(POSTGRES_URL_VAR)
        .unwrap_or_else(|_| panic!("{POSTGRES_URL_VAR} is not set: {HOW_TO_GET_POSTGRES}"));
    let name = format!("latchkey_test_{}", uuid_like_suffix());
    let url = testing::create_postgres_database(&admin_url, &name)
        .await
        .unwrap_or_else(|e| {
            panic!("creating a database on {admin_url}: {e}\n{HOW_TO_GET_POSTGRES}")
        });
    let (store, master_key) = open(&url).await;
    TestDatabase {
        store,
        url,
        master_key,
        _dir: None,
        postgres: Some((admin_url, name)),
    }
}

async fn open(url: &str) -> (Store, SecretString) {
    let key = MasterKey::generate();
    let text = key.to_base64();
    let store = Store::open(url, key)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    (store, text)
}

fn uuid_like_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{nanos}_{n}", std::process::id())
}

/// Defines a test module `$name` with two tests, `sqlite` and `postgres`, each running `$body`
/// with `$db: &TestDatabase` on a fresh database of that backend.
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: &latchkey_tests::databases::TestDatabase) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = latchkey_tests::databases::sqlite().await;
                body(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let db = latchkey_tests::databases::postgres().await;
                body(&db).await;
                db.finish().await;
            }
        }
    };
}

/// A tenant named `name` with a primary, enabled `ad-ldap` connector holding `secrets`.
pub async fn tenant_with_connector(
    store: &Store,
    name: &str,
    secrets: &Secrets,
) -> (Tenant, Connector) {
    let tenant = store.create_tenant(name).await.expect("tenant");
    let connector = store
        .create_connector(
            &tenant.id,
            NewConnector {
                plugin: "ad-ldap".into(),
                role: ConnectorRole::Primary,
                config: serde_json::json!({"url": "ldaps://dc.corp.test"})
                    .as_object()
                    .cloned()
                    .expect("an object"),
                enabled: true,
                granted: vec!["ldap".into(), "log".into(), "config".into()],
            },
            secrets,
        )
        .await
        .expect("connector");
    (tenant, connector)
}
