//! Simulated password hash sync (Entra Connect's PHS) from the Samba AD DC: a background task
//! that, every `interval`, reads `pwdLastSet` of each synced user's on-premises account (by
//! sAMAccountName) over LDAPS, and when it is newer than the last value seen, sets the Entra
//! user's `lastPasswordChangeDateTime` to the moment the change lands, `delay` later. Each
//! successful read also moves the organization's `onPremisesLastSyncDateTime`.
//!
//! A user's first "last seen" `pwdLastSet` is its `lastPasswordChangeDateTime` when linked, so
//! an on-premises change made after the link is carried over even if the task had not yet
//! looked. A reset that also sets "must change at next logon" leaves `pwdLastSet` at 0, yet
//! real PHS still carries the new hash; so a rise of `msDS-KeyVersionNumber` (which every
//! password set increments) counts as a change too, measured from the first value read.
//! While paused, nothing is read and nothing lands. A failed read (DC down, bad bind) is logged
//! and retried on the next interval. It reads AD and never writes it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::watch;

use crate::clock;
use crate::state::Shared;

/// The on-premises directory the sync reads: an LDAPS endpoint, the CA that signed its
/// certificate, an account that may read users, and where users live.
#[derive(Clone)]
pub struct OnPremSource {
    /// e.g. `ldaps://127.0.0.1:636`.
    pub ldaps_url: String,
    /// PEM file with the CA certificate(s) to trust.
    pub ca_file: PathBuf,
    pub bind_dn: String,
    bind_password: String,
    /// Where to search for accounts, e.g. `DC=corp,DC=test`.
    pub base_dn: String,
}

impl std::fmt::Debug for OnPremSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnPremSource")
            .field("ldaps_url", &self.ldaps_url)
            .field("ca_file", &self.ca_file)
            .field("bind_dn", &self.bind_dn)
            .field("base_dn", &self.base_dn)
            .finish_non_exhaustive()
    }
}

impl OnPremSource {
    pub fn new(
        ldaps_url: impl Into<String>,
        ca_file: impl Into<PathBuf>,
        bind_dn: impl Into<String>,
        bind_password: impl Into<String>,
        base_dn: impl Into<String>,
    ) -> OnPremSource {
        OnPremSource {
            ldaps_url: ldaps_url.into(),
            ca_file: ca_file.into(),
            bind_dn: bind_dn.into(),
            bind_password: bind_password.into(),
            base_dn: base_dn.into(),
        }
    }

    /// From the `env` file `tests/services/samba-dc start DIR` writes (`KEY='value'` lines):
    /// `LDAPS_URL`, `CA_FILE`, `BASE_DN`, `ADMIN_DN` and `ADMIN_PASSWORD_FILE`.
    pub fn from_samba_env(path: impl AsRef<Path>) -> anyhow::Result<OnPremSource> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the Samba DC's env file {} (start the DC with `tests/services/samba-dc \
                 start DIR` and use DIR/env)",
                path.display()
            )
        })?;
        let values = parse_env(&text);
        let get = |key: &str| {
            values
                .get(key)
                .cloned()
                .with_context(|| format!("{} has no {key}", path.display()))
        };
        let password_file = get("ADMIN_PASSWORD_FILE")?;
        let password = std::fs::read_to_string(&password_file)
            .with_context(|| format!("reading {password_file}"))?;
        Ok(OnPremSource::new(
            get("LDAPS_URL")?,
            get("CA_FILE")?,
            get("ADMIN_DN")?,
            password.trim_end_matches(['\n', '\r']),
            get("BASE_DN")?,
        ))
    }

    /// The bind password.
    pub fn bind_password(&self) -> &str {
        &self.bind_password
    }

    /// An LDAPS connection bound as the source's account, trusting only its CA.
    pub async fn connect(&self) -> anyhow::Result<ldap3::Ldap> {
        let settings = LdapConnSettings::new()
            .set_config(tls_config(&self.ca_file)?)
            .set_conn_timeout(Duration::from_secs(5));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.ldaps_url)
            .await
            .with_context(|| format!("connecting to {}", self.ldaps_url))?;
        ldap3::drive!(conn);
        ldap.with_timeout(Duration::from_secs(10))
            .simple_bind(&self.bind_dn, &self.bind_password)
            .await
            .context("bind")?
            .success()
            .with_context(|| format!("binding as {}", self.bind_dn))?;
        Ok(ldap)
    }
}

/// `KEY='value'` (or `KEY=value`, or `"value"`) lines; others ignored.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.trim().split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(value);
            (key.trim().to_string(), value.to_string())
        })
        .collect()
}

/// A rustls client configuration trusting only the certificates in `ca_file`.
fn tls_config(ca_file: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.with_context(|| format!("a certificate in {}", ca_file.display()))?)
            .context("adding a CA certificate")?;
    }
    if roots.is_empty() {
        bail!("{} holds no certificate", ca_file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// How often the sync reads AD and how long a detected change takes to land.
#[derive(Clone, Copy, Debug)]
pub struct SyncSettings {
    pub interval: Duration,
    pub delay: Duration,
}

impl Default for SyncSettings {
    /// Every second, landing two seconds after it is seen (real PHS: about two minutes).
    fn default() -> SyncSettings {
        SyncSettings {
            interval: Duration::from_secs(1),
            delay: Duration::from_secs(2),
        }
    }
}

/// How the sync is doing.
#[derive(Clone, Debug, Default)]
pub struct SyncStatus {
    /// Whether a sync task runs at all (an on-premises source was given).
    pub enabled: bool,
    pub paused: bool,
    /// Read cycles completed (successful or not).
    pub cycles: u64,
    /// The error of the last cycle, `None` once a cycle succeeds again.
    pub last_error: Option<String>,
    pub last_success: Option<SystemTime>,
    /// Changes seen but not landed yet.
    pub pending: usize,
}

/// The handles tests use to steer the running sync.
pub(crate) struct SyncControl {
    paused: AtomicBool,
    delay: Mutex<Duration>,
    status: Mutex<SyncStatus>,
    /// The number of the last cycle started, and (watched) of the last one completed.
    started: AtomicU64,
    completed: watch::Sender<u64>,
}

impl SyncControl {
    pub fn new(enabled: bool, delay: Duration) -> SyncControl {
        SyncControl {
            paused: AtomicBool::new(false),
            delay: Mutex::new(delay),
            status: Mutex::new(SyncStatus {
                enabled,
                ..SyncStatus::default()
            }),
            started: AtomicU64::new(0),
            completed: watch::channel(0).0,
        }
    }

    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self
            .delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = delay;
    }

    fn delay(&self) -> Duration {
        *self
            .delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn status_mut(&self) -> std::sync::MutexGuard<'_, SyncStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> SyncStatus {
        let mut status = self.status_mut().clone();
        status.paused = self.paused.load(Ordering::SeqCst);
        status
    }

    /// Waits until a cycle that started after this call has completed.
    pub async fn wait_for_cycle(&self, timeout: Duration) -> anyhow::Result<()> {
        if !self.status().enabled {
            bail!(
                "no password hash sync runs: the emulator was started without an on-premises source"
            );
        }
        let after = self.started.load(Ordering::SeqCst);
        let mut completed = self.completed.subscribe();
        tokio::time::timeout(timeout, completed.wait_for(|&n| n > after))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no password hash sync cycle completed within {timeout:?} (paused: {})",
                    self.paused.load(Ordering::SeqCst)
                )
            })?
            .context("the sync task ended")?;
        Ok(())
    }
}

/// What the sync last saw of an account.
struct Seen {
    pwd_last_set: i64,
    key_version: Option<u64>,
}

/// An on-premises account as read.
struct Account {
    dn: String,
    /// FILETIME; 0 when the user must change the password at next logon.
    pwd_last_set: i64,
    /// `msDS-KeyVersionNumber`, where the DC provides it.
    key_version: Option<u64>,
}

/// Whether `account`'s password changed since the sync last looked (remembering what it saw).
fn changed_since_last_seen(
    link: &Link,
    account: &Account,
    last_seen: &mut HashMap<String, Seen>,
) -> bool {
    let seen = last_seen
        .entry(link.user_id.clone())
        .or_insert_with(|| Seen {
            pwd_last_set: clock::to_filetime(link.last_password_change),
            key_version: account.key_version,
        });
    let changed =
        account.pwd_last_set > seen.pwd_last_set || account.key_version > seen.key_version;
    seen.pwd_last_set = seen.pwd_last_set.max(account.pwd_last_set);
    seen.key_version = seen.key_version.max(account.key_version);
    if changed {
        tracing::info!(
            sam = %link.sam_account_name,
            changed = %clock::from_filetime(account.pwd_last_set)
                .map_or_else(|| "must change at next logon".to_string(), clock::graph_datetime),
            "password hash sync: on-premises password change seen"
        );
    }
    changed
}

/// A synced user as the sync task sees it.
struct Link {
    user_id: String,
    sam_account_name: String,
    last_password_change: SystemTime,
}

/// The sync task: runs until aborted.
pub(crate) async fn run(shared: Arc<Shared>, source: OnPremSource, interval: Duration) {
    let control = &shared.sync;
    let tick = interval.min(Duration::from_millis(50));
    // What was last seen per Entra user id, and changes waiting to land.
    let mut last_seen: HashMap<String, Seen> = HashMap::new();
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let mut ldap: Option<ldap3::Ldap> = None;
    let mut next_read = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        if control.paused.load(Ordering::SeqCst) {
            continue;
        }
        land_due(&shared, &mut pending);
        if Instant::now() < next_read {
            continue;
        }
        next_read = Instant::now() + interval;
        let cycle = control.started.fetch_add(1, Ordering::SeqCst) + 1;
        let links = synced_users(&shared);
        match read_accounts(&source, &mut ldap, &links).await {
            Ok(found) => {
                let now = SystemTime::now();
                let delay = control.delay();
                let mut dns = Vec::new();
                for link in &links {
                    let Some(account) = found.get(&link.sam_account_name.to_lowercase()) else {
                        tracing::debug!(sam = %link.sam_account_name, "no on-premises account");
                        continue;
                    };
                    dns.push((link.user_id.clone(), account.dn.clone()));
                    if changed_since_last_seen(link, account, &mut last_seen) {
                        pending
                            .entry(link.user_id.clone())
                            .or_insert_with(|| Instant::now() + delay);
                    }
                }
                record_read(&shared, now, &dns);
                let mut status = control.status_mut();
                status.last_error = None;
                status.last_success = Some(now);
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "password hash sync: reading AD failed; retrying next interval");
                ldap = None;
                control.status_mut().last_error = Some(format!("{error:#}"));
            }
        }
        {
            let mut status = control.status_mut();
            status.cycles += 1;
            status.pending = pending.len();
        }
        control.completed.send_replace(cycle);
        land_due(&shared, &mut pending);
    }
}

fn synced_users(shared: &Shared) -> Vec<Link> {
    shared
        .tenant()
        .users
        .iter()
        .filter_map(|u| {
            u.on_premises.as_ref().map(|link| Link {
                user_id: u.id.clone(),
                sam_account_name: link.sam_account_name.clone(),
                last_password_change: u.last_password_change,
            })
        })
        .collect()
}

/// After a successful read: the organization's and the users' last sync time, and the DNs
/// of users seeded without one.
fn record_read(shared: &Shared, now: SystemTime, dns: &[(String, String)]) {
    let mut tenant = shared.tenant();
    tenant.organization.on_premises_last_sync = Some(now);
    for (user_id, dn) in dns {
        if let Some(link) = tenant
            .user_mut(user_id)
            .and_then(|u| u.on_premises.as_mut())
        {
            link.last_sync = now;
            link.distinguished_name.get_or_insert_with(|| dn.clone());
        }
    }
}

/// Lands the changes whose delay has passed.
fn land_due(shared: &Shared, pending: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    let due: Vec<String> = pending
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(id, _)| id.clone())
        .collect();
    if due.is_empty() {
        return;
    }
    let landed_at = SystemTime::now();
    let mut tenant = shared.tenant();
    for id in due {
        pending.remove(&id);
        if let Some(user) = tenant.user_mut(&id) {
            user.last_password_change = landed_at;
            user.synced_password_changes += 1;
            if let Some(link) = user.on_premises.as_mut() {
                link.last_sync = landed_at;
            }
            tracing::info!(user = %user.user_principal_name, "password hash sync: change landed");
        }
    }
    tenant.organization.on_premises_last_sync = Some(landed_at);
    shared.sync.status_mut().pending = pending.len();
}

/// Each linked account, keyed by lowercase sAMAccountName.
async fn read_accounts(
    source: &OnPremSource,
    ldap: &mut Option<ldap3::Ldap>,
    links: &[Link],
) -> anyhow::Result<HashMap<String, Account>> {
    let names: HashSet<String> = links
        .iter()
        .map(|l| l.sam_account_name.to_lowercase())
        .collect();
    let mut found = HashMap::new();
    if names.is_empty() {
        return Ok(found);
    }
    if ldap.is_none() {
        *ldap = Some(source.connect().await?);
    }
    let Some(conn) = ldap.as_mut() else {
        bail!("no LDAP connection");
    };
    let names: Vec<String> = names.into_iter().collect();
    for chunk in names.chunks(50) {
        let filter = format!(
            "(&(objectClass=user)(|{}))",
            chunk
                .iter()
                .map(|n| format!("(sAMAccountName={})", ldap3::ldap_escape(n.as_str())))
                .collect::<String>()
        );
        let (entries, _) = conn
            .with_timeout(Duration::from_secs(10))
            .search(
                &source.base_dn,
                Scope::Subtree,
                &filter,
                vec!["sAMAccountName", "pwdLastSet", "msDS-KeyVersionNumber"],
            )
            .await
            .context("searching for synced accounts")?
            .success()
            .context("searching for synced accounts")?;
        for entry in entries {
            let entry = SearchEntry::construct(entry);
            let first = |name: &str| {
                entry
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.first().cloned())
            };
            let (Some(sam), Some(pwd_last_set)) = (first("sAMAccountName"), first("pwdLastSet"))
            else {
                continue;
            };
            let pwd_last_set: i64 = pwd_last_set
                .parse()
                .with_context(|| format!("pwdLastSet of {} is {pwd_last_set:?}", entry.dn))?;
            let key_version = first("msDS-KeyVersionNumber").and_then(|v| v.parse().ok());
            found.insert(
                sam.to_lowercase(),
                Account {
                    dn: entry.dn.clone(),
                    pwd_last_set,
                    key_version,
                },
            );
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_like_a_shell_would() {
        let values = parse_env(
            "LDAPS_URL='ldaps://127.0.0.1:636'\nBASE_DN=\"DC=corp,DC=test\"\nPLAIN=x=y\n# comment\n",
        );
        assert_eq!(values["LDAPS_URL"], "ldaps://127.0.0.1:636");
        assert_eq!(values["BASE_DN"], "DC=corp,DC=test");
        assert_eq!(values["PLAIN"], "x=y");
    }
}
