//! The Samba AD domain controller the AD connector's tests talk to: where it is (the `env` file
//! `tests/services/samba-dc start DIR` writes), an administrator's LDAPS connection for
//! fixtures, per-test users, and the binds tests use as proof.
//!
//! `tests/run` starts the DC and points `LATCHKEY_SAMBA_ENV` at its `env` file. Without it, a
//! test fails with a message saying how to start one: a test never passes because its server
//! was missing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use latchkey_plugin_sdk::unicode_pwd;
use ldap3::{LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The variable naming the DC's `env` file.
pub const ENV_VAR: &str = "LATCHKEY_SAMBA_ENV";

/// The running DC, as its `env` file describes it.
#[derive(Debug)]
pub struct Dc {
    pub dir: PathBuf,
    pub ldaps_url: String,
    pub ca_file: PathBuf,
    pub base_dn: String,
    pub staff_ou: String,
    pub group_dn: String,
    pub pso_group_dn: String,
    pub pso_dn: String,
    pub admin_dn: String,
    admin_password: String,
    /// The service account delegated Reset Password, lockoutTime and pwdLastSet on OU=Staff.
    pub svc_dn: String,
    svc_password: String,
    /// A service account with no delegated right.
    pub noreset_dn: String,
    noreset_password: String,
}

/// Which service account a connector binds as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceAccount {
    /// svc-latchkey: may reset passwords and unlock under OU=Staff.
    Delegated,
    /// svc-noreset: may bind and read, nothing else.
    WithoutRights,
}

/// The DC of this test run.
pub fn dc() -> &'static Dc {
    static DC: OnceLock<Dc> = OnceLock::new();
    DC.get_or_init(|| {
        let Some(path) = std::env::var_os(ENV_VAR) else {
            panic!(
                "{ENV_VAR} is not set, so there is no Samba AD DC to test against. Run the whole \
                 suite with `tests/run` (it starts one), or start one yourself as root with \
                 `tests/services/samba-dc start /tmp/latchkey-dc` and run the tests with \
                 {ENV_VAR}=/tmp/latchkey-dc/env"
            )
        };
        Dc::from_env_file(Path::new(&path))
    })
}

fn read_secret(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

impl Dc {
    fn from_env_file(path: &Path) -> Dc {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "{ENV_VAR}={} cannot be read ({e}): start the DC with `tests/services/samba-dc \
                 start DIR` and point {ENV_VAR} at DIR/env",
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
        Dc {
            dir: path.parent().expect("env is in a directory").to_path_buf(),
            ldaps_url: get("LDAPS_URL"),
            ca_file: get("CA_FILE").into(),
            base_dn: get("BASE_DN"),
            staff_ou: get("STAFF_OU"),
            group_dn: get("GROUP_DN"),
            pso_group_dn: get("PSO_GROUP_DN"),
            pso_dn: get("PSO_DN"),
            admin_dn: get("ADMIN_DN"),
            admin_password: read_secret(&get("ADMIN_PASSWORD_FILE")),
            svc_dn: get("SVC_DN"),
            svc_password: read_secret(&get("SVC_PASSWORD_FILE")),
            noreset_dn: get("NORESET_DN"),
            noreset_password: read_secret(&get("NORESET_PASSWORD_FILE")),
        }
    }

    /// The service account's DN and password.
    pub fn service_account(&self, which: ServiceAccount) -> (&str, &str) {
        match which {
            ServiceAccount::Delegated => (&self.svc_dn, &self.svc_password),
            ServiceAccount::WithoutRights => (&self.noreset_dn, &self.noreset_password),
        }
    }

    /// TLS settings trusting only the DC's test CA.
    fn tls(&self) -> LdapConnSettings {
        LdapConnSettings::new()
            .set_config(tls_config(&self.ca_file))
            .set_conn_timeout(Duration::from_secs(10))
    }

    /// A connection bound as `dn`, verified against the test CA; the bind's error text on
    /// failure (e.g. `... data 52e ...`).
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

    /// An LDAPS bind as `dn` with `password`: Ok, or the server's text. What a user logging on
    /// would see, so it is the proof that a password is (or is not) the account's.
    pub async fn bind(&self, dn: &str, password: &str) -> Result<(), String> {
        let mut ldap = self.connect_as(dn, password).await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// A connection bound as Administrator, for fixtures and for reading what tests check.
    pub async fn admin(&self) -> ldap3::Ldap {
        self.connect_as(&self.admin_dn, &self.admin_password)
            .await
            .unwrap_or_else(|e| panic!("binding as Administrator: {e}"))
    }

    /// One attribute of `dn`, read as Administrator.
    pub async fn read(&self, dn: &str, attribute: &str) -> Option<String> {
        read_with(self.admin().await, dn, attribute).await
    }

    /// Create a user under OU=Staff with a random password, named from `prefix` plus a random
    /// suffix (so that tests never share a user and a rerun against the same DC works).
    pub async fn create_user(&self, prefix: &str, spec: UserSpec<'_>) -> TestUser {
        let suffix: u32 = rand_u32();
        let username = format!(
            "{}{:06x}",
            &prefix[..prefix.len().min(12)],
            suffix & 0xff_ffff
        );
        let display_name = spec
            .display_name
            .map(str::to_string)
            .unwrap_or_else(|| format!("Test {username}"));
        let password = random_password();
        let dn = format!("CN={username},{}", self.staff_ou);
        let upn = format!("{username}@corp.test");
        let quoted = unicode_pwd::encode(&password);
        let mut admin = self.admin().await;
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            attr(
                "objectClass",
                ["top", "person", "organizationalPerson", "user"],
            ),
            attr("sAMAccountName", [username.as_str()]),
            attr("userPrincipalName", [upn.as_str()]),
            attr("displayName", [display_name.as_str()]),
            attr("userAccountControl", ["512"]),
            (b"unicodePwd".to_vec(), HashSet::from([quoted])),
        ];
        let result = admin.add(&dn, attrs).await.expect("add");
        assert_eq!(result.rc, 0, "creating {dn}: {}", result.text);
        let guid = read_guid(&mut admin, &dn).await;
        let _ = admin.unbind().await;
        for group in spec.groups {
            self.add_to_group(group, &dn).await;
        }
        TestUser {
            username,
            dn,
            guid,
            display_name,
            upn,
            password,
        }
    }

    /// Create a group under OU=Staff, named from `prefix` plus a random suffix; its DN.
    pub async fn create_group(&self, prefix: &str) -> String {
        let name = format!("{prefix}{:06x}", rand_u32() & 0xff_ffff);
        let dn = format!("CN={name},{}", self.staff_ou);
        let mut admin = self.admin().await;
        let attrs = vec![
            attr("objectClass", ["top", "group"]),
            attr("sAMAccountName", [name.as_str()]),
        ];
        let result = admin.add(&dn, attrs).await.expect("add");
        assert_eq!(result.rc, 0, "creating {dn}: {}", result.text);
        let _ = admin.unbind().await;
        dn
    }

    /// Make `member` (a user or a group) a member of `group`.
    pub async fn add_to_group(&self, group: &str, member: &str) {
        let mut admin = self.admin().await;
        let result = admin
            .modify(
                group,
                vec![Mod::Add(
                    b"member".to_vec(),
                    HashSet::from([member.as_bytes().to_vec()]),
                )],
            )
            .await
            .expect("modify group");
        assert_eq!(result.rc, 0, "adding {member} to {group}: {}", result.text);
        let _ = admin.unbind().await;
    }

    /// The PID of the running samba root process, from the DC's pid file.
    pub fn samba_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("samba.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

async fn read_with(mut ldap: ldap3::Ldap, dn: &str, attribute: &str) -> Option<String> {
    let (entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec![attribute])
        .await
        .expect("search")
        .success()
        .expect("search succeeded");
    let _ = ldap.unbind().await;
    let entry = SearchEntry::construct(entries.into_iter().next()?);
    entry.attrs.get(attribute)?.first().cloned()
}

async fn read_guid(ldap: &mut ldap3::Ldap, dn: &str) -> String {
    let (entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["objectGUID"])
        .await
        .expect("search")
        .success()
        .expect("search succeeded");
    let entry = SearchEntry::construct(entries.into_iter().next().expect("the new user"));
    let bytes = entry.bin_attrs["objectGUID"][0].clone();
    guid_string(&bytes)
}

/// The canonical string of an objectGUID's 16 bytes (the first three fields little-endian).
pub fn guid_string(b: &[u8]) -> String {
    assert_eq!(b.len(), 16, "an objectGUID has 16 bytes");
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10..]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

fn attr<const N: usize>(name: &str, values: [&str; N]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.as_bytes().to_vec()).collect(),
    )
}

/// A random number (not for secrets: names and passwords of throwaway test users).
pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

/// A password that satisfies the domain policy and the PSO (16 characters, four classes) and
/// contains no account name or display-name token.
pub fn random_password() -> String {
    format!("Qx7-{:08x}-Zk9{:04x}", rand_u32(), rand_u32() & 0xffff)
}

/// What a test user should look like.
#[derive(Default)]
pub struct UserSpec<'a> {
    /// Defaults to "Test <username>".
    pub display_name: Option<&'a str>,
    /// Groups (DNs) to add the user to, e.g. the PSO group.
    pub groups: &'a [&'a str],
}

impl<'a> UserSpec<'a> {
    /// A user who is a member of `groups` (DNs).
    pub fn in_groups(groups: &'a [&'a str]) -> UserSpec<'a> {
        UserSpec {
            groups,
            ..Default::default()
        }
    }
}

/// A user created for one test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub username: String,
    pub dn: String,
    pub guid: String,
    pub display_name: String,
    pub upn: String,
    /// The password it was created with.
    pub password: String,
}

/// A rustls client configuration trusting only the CA certificates in `ca_file`.
pub fn tls_config(ca_file: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(ca_file).unwrap_or_else(|e| panic!("{}: {e}", ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("a PEM certificate")).expect("a CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
