//! Memory with 1,000 tenants, each with two enabled connectors (Active Directory primary,
//! test-echo secondary) resolved to running instances and called once.

use latchkey::capabilities::secrets::Secrets;
use latchkey::runtime::wit::types::Account;
use latchkey::store::{ConnectorRole, NewConnector};
use latchkey::workflow::Connectors;
use secrecy::SecretString;
use serde_json::json;

use crate::report::{Section, met};
use crate::setup::{Database, Db, registry};

/// (VmRSS, VmHWM) in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn run(quick: bool) -> Section {
    let tenants = if quick { 100 } else { 1000 };
    let (before, _) = rss();
    let database = Database::open(Db::Sqlite).await;
    let registry = registry(&["test-echo"], database.dir.path()).await;
    registry.install_bundled().await;
    let store = database.store.clone();
    let connectors = Connectors::new(store.clone(), registry);
    let (loaded, _) = rss();
    let mut ids = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let tenant = store
            .create_tenant(&format!("tenant-{i:04}"))
            .await
            .expect("tenant");
        let secrets =
            Secrets::from_iter([("bind_password", SecretString::from(format!("pw-{i}")))]);
        store
            .create_connector(
                &tenant.id,
                NewConnector {
                    plugin: "ad-ldap".into(),
                    role: ConnectorRole::Primary,
                    config: json!({"url": "ldaps://dc.invalid:636", "base_dn": format!("OU=T{i},DC=corp,DC=test"),
                                   "bind_dn": format!("CN=svc,OU=T{i},DC=corp,DC=test")})
                        .as_object()
                        .cloned()
                        .expect("object"),
                    enabled: true,
                    granted: vec!["ldap".into(), "log".into(), "config".into()],
                },
                &secrets,
            )
            .await
            .expect("primary");
        store
            .create_connector(
                &tenant.id,
                NewConnector {
                    plugin: "test-echo".into(),
                    role: ConnectorRole::Secondary,
                    config: Default::default(),
                    enabled: true,
                    granted: vec!["log".into(), "config".into()],
                },
                &Secrets::new(),
            )
            .await
            .expect("secondary");
        ids.push(tenant.id);
    }
    let account = Account {
        id: "id-a".into(),
        username: "a".into(),
        principal_name: None,
        display_name: None,
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    };
    let candidate = SecretString::from("Tr0ub4dor&3-horse");
    for id in &ids {
        let enabled = connectors.enabled(id).await.expect("connectors");
        assert_eq!(enabled.len(), 2);
        enabled[1]
            .instance
            .check_password(&account, &candidate)
            .await
            .expect("a call");
    }
    let (after, peak) = rss();
    database.finish().await;
    let mut section = Section::new(
        &format!("Memory with {tenants} tenants × 2 connectors"),
        &format!(
            "In one process: a SQLite database with {tenants} tenants, each with an enabled \
             `ad-ldap` primary (its own configuration and sealed bind password, hence its own \
             LDAP pool, not connected) and an enabled `test-echo` secondary; every tenant's \
             connectors resolved to running instances (cached, as a server keeps them) and one \
             call made to each secondary. Resident set size of the whole process, from \
             /proc/self/status, measured first thing in the bench run."
        ),
        &["point", "VmRSS"],
    );
    section.row(vec!["process start".into(), format!("{before:.1} MiB")]);
    section.row(vec![
        "plugins loaded (wasmtime engine, 2 components)".into(),
        format!("{loaded:.1} MiB"),
    ]);
    section.row(vec![
        format!("{tenants} tenants × 2 connectors resolved and called"),
        format!("{after:.1} MiB"),
    ]);
    section.row(vec!["peak (VmHWM)".into(), format!("{peak:.1} MiB")]);
    section.finding(format!(
        "Goal < 200 MB RSS for 1,000 tenants: {} ({after:.1} MiB in all, {:.1} MiB for the \
         tenants' connectors).",
        met(after < 200.0 * 1_000_000.0 / 1_048_576.0),
        after - loaded
    ));
    section
}
