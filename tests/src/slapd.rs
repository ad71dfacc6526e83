//! The OpenLDAP server (slapd with the ppolicy overlay) the OpenLDAP connector's tests talk to:
//! where it is (the `env` file `tests/services/slapd start DIR` writes), an administrator's
//! LDAPS connection for fixtures, per-test users, the binds tests use as proof, and the
//! connector instance bound to it.
//!
//! `tests/run` starts the server and points `LATCHKEY_SLAPD_ENV` at its `env` file. Without it,
//! a test fails with a message saying how to start one: a test never passes because its server
//! was missing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use latchkey::capabilities::secrets::Secrets;
use latchkey::capabilities::{Capability, ldap};
use latchkey::runtime::{ConnectorInstance, ConnectorSettings, PluginRegistry};
use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use tokio::sync::OnceCell;

use crate::samba::{rand_u32, tls_config};

/// The variable naming the server's `env` file.
pub const ENV_VAR: &str = "LATCHKEY_SLAPD_ENV";

/// The running slapd, as its `env` file describes it.
#[derive(Debug)]
pub struct Slapd {
    pub dir: PathBuf,
    pub ldaps_url: String,
    pub starttls_url: String,
    pub ca_file: PathBuf,
    pub base_dn: String,
    pub people_ou: String,
    pub admin_dn: String,
    admin_password: String,
    /// The service account: write (not manage) on users' userPassword, pwdReset and the
    /// lockout attributes.
    pub svc_dn: String,
    svc_password: String,
    /// A service account that may read but not write.
    pub readonly_dn: String,
    readonly_password: String,
    /// The default pwdPolicy (min age 0).
    pub policy_dn: String,
    /// The strict pwdPolicy (min age 3600 s).
    pub strict_policy_dn: String,
}

/// Which service account a connector binds as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceAccount {
    /// svc-latchkey: may write users' passwords and password-policy state.
    Writer,
    /// svc-readonly: may bind and read, nothing else.
    ReadOnly,
}

/// The slapd of this test run.
pub fn slapd() -> &'static Slapd {
    static SLAPD: OnceLock<Slapd> = OnceLock::new();
    SLAPD.get_or_init(|| {
        let Some(path) = std::env::var_os(ENV_VAR) else {
            panic!(
                "{ENV_VAR} is not set, so there is no OpenLDAP server to test against. Run the \
                 whole suite with `tests/run` (it starts one), or start one yourself as root with \
                 `tests/services/slapd start /tmp/latchkey-slapd` and run the tests with \
                 {ENV_VAR}=/tmp/latchkey-slapd/env"
            )
        };
        Slapd::from_env_file(Path::new(&path))
    })
}

fn read_secret(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

impl Slapd {
    fn from_env_file(path: &Path) -> Slapd {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "{ENV_VAR}={} cannot be read ({e}): start slapd with `tests/services/slapd start \
                 DIR` and point {ENV_VAR} at DIR/env",
                path.display()
            )
        });
        let values: HashMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key, value.trim_matches('\'')))
            .collect();
        let get = |key: &str| -> String {
            values
                .get(key)
                .unwrap_or_else(|| panic!("{} has no {key}", path.display()))
                .to_string()
        };
        Slapd {
            dir: path.parent().expect("env is in a directory").to_path_buf(),
            ldaps_url: get("LDAPS_URL"),
            starttls_url: get("STARTTLS_URL"),
            ca_file: get("CA_FILE").into(),
            base_dn: get("BASE_DN"),
            people_ou: get("PEOPLE_OU"),
            admin_dn: get("ADMIN_DN"),
            admin_password: read_secret(&get("ADMIN_PASSWORD_FILE")),
            svc_dn: get("SVC_DN"),
            svc_password: read_secret(&get("SVC_PASSWORD_FILE")),
            readonly_dn: get("READONLY_DN"),
            readonly_password: read_secret(&get("READONLY_PASSWORD_FILE")),
            policy_dn: get("POLICY_DN"),
            strict_policy_dn: get("STRICT_POLICY_DN"),
        }
    }

    /// The service account's DN and password.
    pub fn service_account(&self, which: ServiceAccount) -> (&str, &str) {
        match which {
            ServiceAccount::Writer => (&self.svc_dn, &self.svc_password),
            ServiceAccount::ReadOnly => (&self.readonly_dn, &self.readonly_password),
        }
    }

    fn tls(&self) -> LdapConnSettings {
        LdapConnSettings::new()
            .set_config(tls_config(&self.ca_file))
            .set_conn_timeout(Duration::from_secs(10))
    }

    /// A connection bound as `dn`, verified against the test CA; the bind's result code and
    /// text on failure.
    pub async fn connect_as(&self, dn: &str, password: &str) -> Result<ldap3::Ldap, String> {
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.tls(), &self.ldaps_url)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.ldaps_url))?;
        ldap3::drive!(conn);
        let result = ldap
            .simple_bind(dn, password)
            .await
            .map_err(|e| format!("bind: {e}"))?;
        if result.rc != 0 {
            return Err(format!("bind rc {}: {}", result.rc, result.text));
        }
        Ok(ldap)
    }

    /// An LDAPS bind as `dn` with `password`: Ok, or the server's answer. What a user logging
    /// on would see, so it is the proof that a password is (or is not) the account's.
    pub async fn bind(&self, dn: &str, password: &str) -> Result<(), String> {
        let mut ldap = self.connect_as(dn, password).await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// A connection bound as the rootdn (ppolicy does not apply to it).
    pub async fn admin(&self) -> ldap3::Ldap {
        self.connect_as(&self.admin_dn, &self.admin_password)
            .await
            .unwrap_or_else(|e| panic!("binding as the admin: {e}"))
    }

    /// Every value of `attribute` (operational ones too) of `dn`, read as the admin.
    pub async fn read_all(&self, dn: &str, attribute: &str) -> Vec<String> {
        let mut ldap = self.admin().await;
        let (entries, _) = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec![attribute])
            .await
            .expect("search")
            .success()
            .expect("search succeeded");
        let _ = ldap.unbind().await;
        let Some(entry) = entries.into_iter().next() else {
            return vec![];
        };
        let entry = SearchEntry::construct(entry);
        entry
            .attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .map(|(_, values)| values.clone())
            .unwrap_or_default()
    }

    /// The first value of `attribute` of `dn`, read as the admin.
    pub async fn read(&self, dn: &str, attribute: &str) -> Option<String> {
        self.read_all(dn, attribute).await.into_iter().next()
    }

    /// Modify `dn` as the admin (fixtures: a policy on a user, a lock).
    pub async fn admin_modify(&self, dn: &str, mods: Vec<Mod<Vec<u8>>>) {
        let mut ldap = self.admin().await;
        let result = ldap.modify(dn, mods).await.expect("modify");
        assert_eq!(result.rc, 0, "modifying {dn}: {}", result.text);
        let _ = ldap.unbind().await;
    }

    /// Create a user under ou=people with a random password, named from `prefix` plus a random
    /// suffix (so that tests never share a user and a rerun against the same server works).
    pub async fn create_user(&self, prefix: &str, spec: UserSpec<'_>) -> TestUser {
        let username = format!(
            "{}{:06x}",
            &prefix[..prefix.len().min(12)],
            rand_u32() & 0xff_ffff
        );
        let display_name = format!("Test {username}");
        let mail = format!("{username}@example.test");
        let password = random_password();
        let dn = format!("uid={username},{}", self.people_ou);
        let mut attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            attr("objectClass", &["inetOrgPerson"]),
            attr("uid", &[&username]),
            attr("cn", &[&display_name]),
            attr("sn", &[&username]),
            attr("mail", &[&mail]),
            attr("userPassword", &[&password]),
        ];
        if let Some(policy) = spec.policy {
            attrs.push(attr("pwdPolicySubentry", &[policy]));
        }
        let mut admin = self.admin().await;
        let result = admin.add(&dn, attrs).await.expect("add");
        assert_eq!(result.rc, 0, "creating {dn}: {}", result.text);
        let _ = admin.unbind().await;
        let id = self
            .read(&dn, "entryUUID")
            .await
            .expect("the new user's entryUUID");
        TestUser {
            username,
            dn,
            id,
            display_name,
            mail,
            password,
        }
    }
}

fn attr(name: &str, values: &[&str]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.as_bytes().to_vec()).collect(),
    )
}

/// A password that satisfies both test policies (8 to 64 bytes).
pub fn random_password() -> String {
    format!("Ol-{:08x}-Pw{:04x}", rand_u32(), rand_u32() & 0xffff)
}

/// What a test user should look like.
#[derive(Default)]
pub struct UserSpec<'a> {
    /// The user's own pwdPolicySubentry (e.g. the strict policy).
    pub policy: Option<&'a str>,
}

/// A user created for one test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub username: String,
    pub dn: String,
    /// Its entryUUID.
    pub id: String,
    pub display_name: String,
    pub mail: String,
    /// The password it was created with.
    pub password: String,
}

/// A registry holding the openldap plugin, shared by the tests of this process. (The shared
/// [`crate::registry`] loads the bundled connectors and the test guests; this connector is
/// not bundled.)
async fn registry() -> &'static PluginRegistry {
    static REGISTRY: OnceCell<(tempfile::TempDir, PluginRegistry)> = OnceCell::const_new();
    let (_, registry) = REGISTRY
        .get_or_init(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let registry =
                PluginRegistry::new(crate::runtime(&dir.path().join("cache")), crate::trust());
            let package = crate::signed_package("openldap", &dir.path().join("packages"));
            if let Err(error) = registry.install(&package).await {
                panic!("installing openldap: {error}");
            }
            (dir, registry)
        })
        .await;
    registry
}

/// The OpenLDAP connector of `tenant`, bound as `which` service account of the test server,
/// with users under ou=people and the default policy; `extra` is merged into its
/// configuration (e.g. `user_change_method`).
pub async fn openldap_connector(
    tenant: &str,
    which: ServiceAccount,
    extra: serde_json::Value,
) -> ConnectorInstance {
    let server = slapd();
    let (bind_dn, bind_password) = server.service_account(which);
    let mut config = serde_json::json!({
        "url": server.ldaps_url,
        "base_dn": server.people_ou,
        "bind_dn": bind_dn,
        "ca_file": server.ca_file,
        "policy_dn": server.policy_dn,
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
    let connector = format!("{tenant}-openldap");
    let directory = ldap::directory(
        config,
        &secrets,
        ldap::ConnectorTags::new(tenant, connector.as_str()),
    );
    let settings = ConnectorSettings {
        connector,
        config: config.clone(),
        ldap: Some(directory),
        ..crate::settings(
            tenant,
            &[Capability::Log, Capability::Config, Capability::Ldap],
        )
    };
    let plugin = registry()
        .await
        .get("openldap")
        .expect("openldap is installed");
    ConnectorInstance::new(plugin, settings).expect("instance")
}
