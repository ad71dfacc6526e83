//! A Microsoft Graph emulator for Latchkey's tests: the Entra ID token endpoint (client
//! credentials) and the slice of Graph a password-reset connector uses (`/users`,
//! `/organization`), following Microsoft's documented contract — status codes, error bodies,
//! AADSTS numbers, advanced-query rules, paging, throttling — plus a simulated password hash
//! sync from the Samba AD DC for hybrid users.
//!
//! Tests start it in-process on `127.0.0.1:0` with [`GraphEmulator::start`], point their client
//! at [`GraphEmulator::url`], seed and inspect state through its methods, inject faults, and
//! scan its request log.
//!
//! Code map:
//! - `token`: the token endpoint and bearer-token checks; `app`: the registered application.
//! - `graph`: routing, fault injection, auth and ids for every Graph request.
//! - `users`, `organization`: the resources; `query`: OData query options; `user`: the user
//!   model and its JSON; `password_policy`: Entra's cloud password rules.
//! - `errors`: Graph's and Entra's error bodies; `clock`: Microsoft's date formats.
//! - `sync`: the simulated password hash sync; `state`: the shared tenant; `request_log`.
//!
//! It never reaches Microsoft, and it writes nothing to AD: the sync only reads.

mod app;
mod clock;
mod errors;
mod graph;
mod organization;
mod password_policy;
mod query;
mod request_log;
mod state;
mod sync;
mod token;
mod user;
mod users;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use tokio::task::JoinHandle;

pub use app::{AppRegistration, DirectoryRole, permission};
pub use clock::parse_graph_datetime;
pub use password_policy::DEFAULT_BANNED_PASSWORDS;
pub use request_log::RequestRecord;
pub use state::OrganizationState;
pub use sync::{OnPremSource, SyncSettings, SyncStatus};
pub use user::{NewUser, PasswordProfileRecord, UserState};

use state::{Fault, Shared, Tenant};
use sync::SyncControl;

/// The scope a client-credentials request for Graph names.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// How to start an emulator. `EmulatorOptions::default()` gives a fresh tenant with random ids,
/// an application holding the three permissions Latchkey asks for, hour-long tokens, no
/// on-premises source (so no sync) and a port of the system's choosing on loopback.
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    pub listen: SocketAddr,
    /// The tenant (directory) id, a GUID.
    pub tenant_id: String,
    /// The tenant's initial domain; the token endpoint accepts it in place of the id.
    pub tenant_domain: String,
    pub organization_name: String,
    pub app: AppRegistration,
    /// The lifetime of issued tokens (`expires_in`); Entra's usual is 3599 s.
    pub token_lifetime: Duration,
    /// Terms no cloud password may contain (case-insensitive, after Entra's normalisation).
    pub banned_passwords: Vec<String>,
    /// Where the password hash sync reads on-premises accounts; `None`: no sync.
    pub on_prem: Option<OnPremSource>,
    pub sync: SyncSettings,
}

impl Default for EmulatorOptions {
    fn default() -> EmulatorOptions {
        EmulatorOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant_id: uuid::Uuid::new_v4().to_string(),
            tenant_domain: "latchkeytest.onmicrosoft.com".to_string(),
            organization_name: "Latchkey Test".to_string(),
            app: AppRegistration::default(),
            token_lifetime: Duration::from_secs(3599),
            banned_passwords: DEFAULT_BANNED_PASSWORDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            on_prem: None,
            sync: SyncSettings::default(),
        }
    }
}

/// The router serving both the token endpoint and Graph over `shared`, without a socket.
fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", any(token::endpoint))
        .fallback(graph::dispatch)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            request_log::record,
        ))
        .with_state(shared)
}

/// A running emulator. Dropping it stops the server and the sync.
pub struct GraphEmulator {
    shared: Arc<Shared>,
    url: String,
    server: JoinHandle<()>,
    sync: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GraphEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphEmulator")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for GraphEmulator {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(sync) = &self.sync {
            sync.abort();
        }
    }
}

impl GraphEmulator {
    /// Starts the emulator (and, with an on-premises source, the password hash sync).
    ///
    /// # Panics
    /// When it cannot listen on `options.listen`; see [`GraphEmulator::try_start`].
    pub async fn start(options: EmulatorOptions) -> GraphEmulator {
        let listen = options.listen;
        GraphEmulator::try_start(options)
            .await
            .unwrap_or_else(|e| panic!("starting the Graph emulator on {listen}: {e:#}"))
    }

    /// Starts the emulator, or says why it could not.
    pub async fn try_start(options: EmulatorOptions) -> anyhow::Result<GraphEmulator> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("listening on {}", options.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        let now = SystemTime::now();
        let tenant = Tenant {
            organization: OrganizationState {
                id: options.tenant_id.to_lowercase(),
                display_name: options.organization_name,
                domain: options.tenant_domain,
                on_premises_sync_enabled: None,
                on_premises_last_sync: None,
                created: now,
            },
            users: Vec::new(),
            app: options.app,
            tokens: HashMap::new(),
            token_lifetime: options.token_lifetime,
            token_requests: 0,
            tokens_issued: 0,
            token_endpoint_down: false,
            faults: VecDeque::new(),
            banned_passwords: options.banned_passwords,
        };
        let shared = Arc::new(Shared {
            base_url: url.clone(),
            tenant: Mutex::new(tenant),
            log: Mutex::new(Vec::new()),
            sync: SyncControl::new(options.on_prem.is_some(), options.sync.delay),
        });
        let router = app(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "the Graph emulator stopped serving");
            }
        });
        let sync = options
            .on_prem
            .map(|source| tokio::spawn(sync::run(shared.clone(), source, options.sync.interval)));
        Ok(GraphEmulator {
            shared,
            url,
            server,
            sync,
        })
    }

    fn tenant(&self) -> std::sync::MutexGuard<'_, Tenant> {
        self.shared.tenant()
    }

    // --- Where it is -----------------------------------------------------------------------

    /// The base URL, e.g. `http://127.0.0.1:41234`: the token endpoint is
    /// `{url}/{tenant}/oauth2/v2.0/token`, Graph is `{url}/v1.0` (and `{url}/beta`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `{url}/{tenant id}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.url, self.tenant_id())
    }

    /// `{url}/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.url)
    }

    pub fn tenant_id(&self) -> String {
        self.tenant().tenant_id().to_string()
    }

    pub fn client_id(&self) -> String {
        self.tenant().app.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.tenant().app.client_secret.clone()
    }

    // --- The registered application ---------------------------------------------------------

    /// The registered application as it is now.
    pub fn app(&self) -> AppRegistration {
        self.tenant().app.clone()
    }

    /// Replaces the application's permissions (tokens issued before keep theirs).
    pub fn set_app_permissions(&self, permissions: &[&str]) {
        self.tenant().app.permissions = permissions.iter().map(|p| p.to_string()).collect();
    }

    /// Replaces the directory roles of the application's service principal.
    pub fn set_directory_roles(&self, roles: &[DirectoryRole]) {
        self.tenant().app.directory_roles = roles.iter().copied().collect();
    }

    /// Replaces the client secret (the old one stops working at once).
    pub fn set_client_secret(&self, secret: &str) {
        self.tenant().app.client_secret = secret.to_string();
    }

    // --- Tokens ------------------------------------------------------------------------------

    /// The lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.tenant().token_lifetime = lifetime;
    }

    /// Makes every token issued so far expired (Graph then answers 401).
    pub fn expire_tokens(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for token in self.tenant().tokens.values_mut() {
            token.expires_at = past;
        }
    }

    /// How many requests reached the token endpoint (successful or not).
    pub fn token_requests(&self) -> u64 {
        self.tenant().token_requests
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.tenant().tokens_issued
    }

    // --- Users -------------------------------------------------------------------------------

    /// Adds a user; fails on a taken id or userPrincipalName.
    pub fn add_user(&self, user: NewUser) -> anyhow::Result<UserState> {
        self.tenant().add_user(user)
    }

    /// Adds a cloud-only user.
    ///
    /// # Panics
    /// When the userPrincipalName is taken or malformed.
    pub fn add_cloud_user(&self, user_principal_name: &str, display_name: &str) -> UserState {
        self.add_user(NewUser::cloud(user_principal_name, display_name))
            .unwrap_or_else(|e| panic!("adding {user_principal_name}: {e:#}"))
    }

    /// Adds a user synced from on-premises AD, linked to the account `sam_account_name`.
    ///
    /// # Panics
    /// When the userPrincipalName is taken or malformed.
    pub fn add_synced_user(
        &self,
        user_principal_name: &str,
        display_name: &str,
        sam_account_name: &str,
    ) -> UserState {
        self.add_user(NewUser::synced(
            user_principal_name,
            display_name,
            sam_account_name,
        ))
        .unwrap_or_else(|e| panic!("adding {user_principal_name}: {e:#}"))
    }

    /// A user (by id or userPrincipalName) as it is now.
    pub fn user(&self, id_or_upn: &str) -> Option<UserState> {
        self.tenant().user(id_or_upn).map(user::User::state)
    }

    /// All users, in the order added.
    pub fn users(&self) -> Vec<UserState> {
        self.tenant().users.iter().map(user::User::state).collect()
    }

    /// Sets a user's `passwordPolicies` (e.g. `Some("DisableStrongPassword")`); false when
    /// there is no such user.
    pub fn set_password_policies(&self, id_or_upn: &str, policies: Option<&str>) -> bool {
        match self.tenant().user_mut(id_or_upn) {
            Some(user) => {
                user.password_policies = policies.map(str::to_string);
                true
            }
            None => false,
        }
    }

    /// Marks a user as holding (or not) an administrator role; false when there is no such
    /// user.
    pub fn set_privileged(&self, id_or_upn: &str, privileged: bool) -> bool {
        match self.tenant().user_mut(id_or_upn) {
            Some(user) => {
                user.privileged = privileged;
                true
            }
            None => false,
        }
    }

    /// Removes a user; false when there was none.
    pub fn remove_user(&self, id_or_upn: &str) -> bool {
        let mut tenant = self.tenant();
        let before = tenant.users.len();
        tenant.users.retain(|u| !u.is_named(id_or_upn));
        tenant.users.len() != before
    }

    /// The organization as it is now.
    pub fn organization(&self) -> OrganizationState {
        self.tenant().organization.clone()
    }

    // --- Faults ------------------------------------------------------------------------------

    /// The next `count` Graph requests answer 429 with `Retry-After: retry_after_seconds` and
    /// have no effect. Queued after faults already injected.
    pub fn throttle_next(&self, count: u32, retry_after_seconds: u64) {
        self.tenant().push_fault(
            Fault::Throttle {
                retry_after_seconds,
            },
            count,
        );
    }

    /// The next `count` Graph requests answer `status` (a 5xx) and have no effect.
    ///
    /// # Panics
    /// When `status` is not a 5xx status.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.fail_next_with_retry_after(count, status, None);
    }

    /// Like [`GraphEmulator::fail_next`], with a `Retry-After` header.
    pub fn fail_next_with_retry_after(
        &self,
        count: u32,
        status: u16,
        retry_after_seconds: Option<u64>,
    ) {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(StatusCode::is_server_error)
            .unwrap_or_else(|| panic!("{status} is not a 5xx status"));
        self.tenant().push_fault(
            Fault::ServerError {
                status,
                retry_after_seconds,
            },
            count,
        );
    }

    /// Makes the token endpoint answer 503 (`temporarily_unavailable`) until set back.
    pub fn set_token_endpoint_down(&self, down: bool) {
        self.tenant().token_endpoint_down = down;
    }

    /// Drops every injected fault not yet served.
    pub fn clear_faults(&self) {
        let mut tenant = self.tenant();
        tenant.faults.clear();
        tenant.token_endpoint_down = false;
    }

    // --- Request log -------------------------------------------------------------------------

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log().clone()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }

    // --- Password hash sync ------------------------------------------------------------------

    /// Stops the sync from reading AD and from landing changes, until resumed.
    pub fn pause_sync(&self) {
        self.shared.sync.pause(true);
    }

    pub fn resume_sync(&self) {
        self.shared.sync.pause(false);
    }

    /// How long a change seen from now on takes to land.
    pub fn set_sync_delay(&self, delay: Duration) {
        self.shared.sync.set_delay(delay);
    }

    pub fn sync_status(&self) -> SyncStatus {
        self.shared.sync.status()
    }

    /// Waits until a sync cycle that started after this call has completed (successfully or
    /// not); fails after `timeout`, when paused, or when no sync runs.
    pub async fn wait_for_sync_cycle(&self, timeout: Duration) -> anyhow::Result<()> {
        self.shared.sync.wait_for_cycle(timeout).await
    }
}
