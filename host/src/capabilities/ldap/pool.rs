//! The directory of one connector instance: a small pool of connections bound as its service
//! account, and the one place that connects and binds (for the service account, and unpooled
//! for a user).
//!
//! It owns connecting (TCP, TLS or StartTLS, and the bind, all within the connector's
//! timeout), reusing idle connections and dropping dead ones, bounding the service account's
//! connections at `pool_size`, and logging connects, reconnects and exhaustion under
//! `latchkey::ldap`. It must never pool a connection bound as a user, keep a user's password
//! after the bind, or log a password.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::convert::check_dn;
use super::failure::connect_failure;
use super::session::Session;
use super::settings::{InvalidLdapSettings, LdapSettings};
use crate::capabilities::ldap::{ConnectorTags, LdapDirectory, LdapError, LdapSession};
use crate::capabilities::secrets::Secrets;

/// The `ldap` capability of one connector instance, bound to its server and service account.
#[derive(Clone)]
pub struct LdapPool {
    shared: Arc<PoolShared>,
}

/// What the pool and its sessions share.
pub(super) struct PoolShared {
    pub(super) settings: LdapSettings,
    pub(super) tags: ConnectorTags,
    idle: Mutex<Vec<Ldap>>,
    permits: Arc<Semaphore>,
}

impl LdapPool {
    /// A pool for `settings`; connects nothing until the first session is opened.
    pub fn new(settings: LdapSettings, tags: ConnectorTags) -> LdapPool {
        if !settings.verifies_certificate() {
            tracing::warn!(
                target: "latchkey::ldap",
                tenant = %tags.tenant,
                connector = %tags.connector,
                url = %settings.url,
                "tls_verify is false for this connector: the DC's certificate will not be \
                 verified, so whoever sits between Latchkey and the DC can read the service \
                 account's password; set ca_file to the CA that issued the DC's certificate and \
                 remove tls_verify"
            );
        }
        let permits = Arc::new(Semaphore::new(settings.pool_size));
        LdapPool {
            shared: Arc::new(PoolShared {
                settings,
                tags,
                idle: Mutex::new(Vec::new()),
                permits,
            }),
        }
    }

    /// A pool from a connector's configuration and secrets (see [`LdapSettings::from_connector`]).
    pub fn from_connector(
        config: &Map<String, Value>,
        secrets: &Secrets,
        tags: ConnectorTags,
    ) -> Result<LdapPool, InvalidLdapSettings> {
        Ok(LdapPool::new(
            LdapSettings::from_connector(config, secrets)?,
            tags,
        ))
    }

    /// The settings this pool connects with.
    pub fn settings(&self) -> &LdapSettings {
        &self.shared.settings
    }

    /// How many bound connections wait idle for the next session.
    pub fn idle_connections(&self) -> usize {
        self.shared.lock_idle().len()
    }
}

#[async_trait]
impl LdapDirectory for LdapPool {
    async fn open(&self) -> Result<Box<dyn LdapSession>, LdapError> {
        let deadline = Instant::now() + self.shared.settings.timeout;
        let permit = self.shared.permit(deadline).await?;
        if let Some(ldap) = self.shared.take_idle() {
            return Ok(Box::new(Session::service_account(
                self.shared.clone(),
                permit,
                ldap,
                true,
            )));
        }
        let ldap = self.shared.connect_service_account(deadline, false).await?;
        Ok(Box::new(Session::service_account(
            self.shared.clone(),
            permit,
            ldap,
            false,
        )))
    }

    async fn open_as_user(
        &self,
        dn: &str,
        password: &SecretString,
    ) -> Result<Box<dyn LdapSession>, LdapError> {
        check_dn(dn)?;
        if password.expose_secret().is_empty() {
            // A simple bind with a DN and no password is an anonymous bind that succeeds.
            return Err(LdapError::BindFailed(
                "the password is empty; a bind with an empty password would be anonymous, so it \
                 is refused"
                    .to_string(),
            ));
        }
        let deadline = Instant::now() + self.shared.settings.timeout;
        let ldap = self
            .shared
            .connect(dn, password, deadline, Identity::User)
            .await?;
        Ok(Box::new(Session::user(self.shared.clone(), ldap, dn)))
    }
}

/// Who a connection binds as, for messages and logs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    ServiceAccount,
    User,
}

impl PoolShared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Ldap>> {
        // A panic elsewhere while holding the lock leaves a plain Vec behind: still usable.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One of the `pool_size` places for a service-account connection; waiting counts
    /// against the timeout.
    async fn permit(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, LdapError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let settings = &self.settings;
        tracing::warn!(
            target: "latchkey::ldap",
            tenant = %self.tags.tenant,
            connector = %self.tags.connector,
            url = %settings.url,
            pool_size = settings.pool_size,
            "all service-account connections of this connector are in use; waiting for one"
        );
        match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(LdapError::Unavailable(
                "this connector's LDAP pool is shut down".to_string(),
            )),
            Err(_) => Err(LdapError::Timeout(format!(
                "all {} connections to {} (pool_size) stayed in use for {} ms; try again, or \
                 raise pool_size",
                settings.pool_size,
                settings.url,
                settings.timeout_ms()
            ))),
        }
    }

    /// An idle connection that is still open, if any.
    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = self.lock_idle();
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
            tracing::debug!(
                target: "latchkey::ldap",
                tenant = %self.tags.tenant,
                connector = %self.tags.connector,
                url = %self.settings.url,
                "an idle connection was closed by the server; discarded"
            );
        }
        None
    }

    /// Back to the pool from a session that ends with a healthy connection.
    pub(super) fn give_back(&self, mut ldap: Ldap) {
        if ldap.is_closed() {
            return;
        }
        let mut idle = self.lock_idle();
        if idle.len() < self.settings.pool_size {
            idle.push(ldap);
        }
    }

    /// A new connection bound as the service account.
    pub(super) async fn connect_service_account(
        &self,
        deadline: Instant,
        reconnect: bool,
    ) -> Result<Ldap, LdapError> {
        let started = Instant::now();
        let ldap = self
            .connect(
                &self.settings.bind_dn,
                &self.settings.bind_password,
                deadline,
                Identity::ServiceAccount,
            )
            .await?;
        tracing::info!(
            target: "latchkey::ldap",
            tenant = %self.tags.tenant,
            connector = %self.tags.connector,
            url = %self.settings.url,
            elapsed_ms = millis(started.elapsed()),
            "{} and bound as the service account",
            if reconnect { "reconnected" } else { "connected" }
        );
        Ok(ldap)
    }

    /// Connects, secures (LDAPS or StartTLS) and binds as `dn`, all before `deadline`.
    async fn connect(
        &self,
        dn: &str,
        password: &SecretString,
        deadline: Instant,
        identity: Identity,
    ) -> Result<Ldap, LdapError> {
        let settings = &self.settings;
        let attempt = async {
            let conn_settings = LdapConnSettings::new()
                .set_config(settings.tls.clone())
                .set_starttls(!settings.url.is_ldaps());
            let (conn, mut ldap) =
                LdapConnAsync::with_settings(conn_settings, &settings.url.connect_url())
                    .await
                    .map_err(|e| connect_failure(e, settings))?;
            let tags = self.tags.clone();
            tokio::spawn(async move {
                if let Err(error) = conn.drive().await {
                    tracing::debug!(
                        target: "latchkey::ldap",
                        tenant = %tags.tenant,
                        connector = %tags.connector,
                        %error,
                        "an LDAP connection ended with an error"
                    );
                }
            });
            let result = ldap
                .simple_bind(dn, password.expose_secret())
                .await
                .map_err(|e| connect_failure(e, settings))?;
            Ok::<_, LdapError>((ldap, result))
        };
        let (ldap, result) = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(bound) => bound?,
            Err(_) => {
                return Err(LdapError::Timeout(format!(
                    "no answer from {} within {} ms while connecting (TCP, TLS handshake and \
                     bind); check that the DC is up and answering",
                    settings.url,
                    settings.timeout_ms()
                )));
            }
        };
        if result.rc != 0 {
            let said = if result.text.is_empty() {
                format!("the server refused the bind (result code {})", result.rc)
            } else {
                result.text
            };
            return Err(LdapError::BindFailed(match identity {
                Identity::User => said,
                Identity::ServiceAccount => format!(
                    "{} refused the service account's bind as {}: {said}; check bind_dn and the \
                     bind_password secret",
                    settings.url, settings.bind_dn
                ),
            }));
        }
        if !settings.verifies_certificate() {
            tracing::warn!(
                target: "latchkey::ldap",
                tenant = %self.tags.tenant,
                connector = %self.tags.connector,
                url = %settings.url,
                "connected without verifying the DC's certificate (tls_verify is false)"
            );
        }
        if identity == Identity::User {
            tracing::debug!(
                target: "latchkey::ldap",
                tenant = %self.tags.tenant,
                connector = %self.tags.connector,
                url = %settings.url,
                dn,
                "bound as a user for a user's own operation"
            );
        }
        Ok(ldap)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
