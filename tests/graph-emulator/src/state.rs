//! The emulated tenant's state, shared by the HTTP handlers, the password hash sync and the
//! test-facing [`GraphEmulator`](crate::GraphEmulator): the directory (users and the
//! organization), the registered application, issued tokens, injected faults and the request
//! log.
//!
//! Everything sits behind one `std::sync::Mutex`, held only for short, non-async stretches;
//! nothing here talks to the network.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, ensure};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppRegistration;
use crate::clock;
use crate::request_log::RequestRecord;
use crate::sync::SyncControl;
use crate::user::{NewUser, User, UserState};

/// What every handler and the sync task share.
pub(crate) struct Shared {
    /// Where the emulator listens, e.g. `http://127.0.0.1:41234` (for absolute links).
    pub base_url: String,
    pub tenant: Mutex<Tenant>,
    pub log: Mutex<Vec<RequestRecord>>,
    pub sync: SyncControl,
}

impl Shared {
    /// The tenant, locked. A panic elsewhere while holding the lock does not make the state
    /// unusable for the rest of a test.
    pub fn tenant(&self) -> std::sync::MutexGuard<'_, Tenant> {
        self.tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The organization (tenant) object Graph returns from `/organization`.
#[derive(Clone, Debug)]
pub struct OrganizationState {
    /// The tenant id.
    pub id: String,
    pub display_name: String,
    /// The initial `*.onmicrosoft.com` domain.
    pub domain: String,
    /// `null` until the tenant has a synced user, then true.
    pub on_premises_sync_enabled: Option<bool>,
    /// When the (simulated) sync last ran.
    pub on_premises_last_sync: Option<SystemTime>,
    pub created: SystemTime,
}

impl OrganizationState {
    pub(crate) fn to_json(&self) -> serde_json::Map<String, Value> {
        let value = json!({
            "id": self.id,
            "displayName": self.display_name,
            "createdDateTime": clock::graph_datetime(self.created),
            "countryLetterCode": "US",
            "tenantType": "AAD",
            "onPremisesSyncEnabled": self.on_premises_sync_enabled,
            "onPremisesLastSyncDateTime": self.on_premises_last_sync.map(clock::graph_datetime),
            "verifiedDomains": [{
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": true,
                "isInitial": true,
                "name": self.domain,
                "type": "Managed",
            }],
        });
        match value {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }
}

/// A token the endpoint issued.
#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub expires_at: SystemTime,
    /// The application's permissions when the token was issued.
    pub permissions: BTreeSet<String>,
}

/// A fault injected into Graph's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 429 with `Retry-After`.
    Throttle { retry_after_seconds: u64 },
    /// A 5xx, optionally with `Retry-After`.
    ServerError {
        status: StatusCode,
        retry_after_seconds: Option<u64>,
    },
}

/// The tenant's data.
pub(crate) struct Tenant {
    pub organization: OrganizationState,
    pub users: Vec<User>,
    pub app: AppRegistration,
    pub tokens: HashMap<String, IssuedToken>,
    pub token_lifetime: Duration,
    /// Every request the token endpoint received, and how many of them got a token.
    pub token_requests: u64,
    pub tokens_issued: u64,
    pub token_endpoint_down: bool,
    /// Faults for the next Graph requests, in order, each with how many requests it still hits.
    pub faults: VecDeque<(Fault, u32)>,
    pub banned_passwords: Vec<String>,
}

impl Tenant {
    pub fn tenant_id(&self) -> &str {
        &self.organization.id
    }

    pub fn user(&self, key: &str) -> Option<&User> {
        self.users.iter().find(|u| u.is_named(key))
    }

    pub fn user_mut(&mut self, key: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.is_named(key))
    }

    /// Adds a user; refuses a taken id or userPrincipalName, or a UPN without a domain.
    pub fn add_user(&mut self, spec: NewUser) -> anyhow::Result<UserState> {
        ensure!(
            spec.user_principal_name.contains('@'),
            "userPrincipalName {:?} has no @domain",
            spec.user_principal_name
        );
        ensure!(
            !spec.display_name.is_empty(),
            "user {} has no displayName",
            spec.user_principal_name
        );
        if let Some(id) = &spec.id {
            ensure!(
                uuid::Uuid::parse_str(id).is_ok(),
                "user id {id:?} is not a GUID"
            );
        }
        let user = User::new(spec, SystemTime::now());
        if self
            .users
            .iter()
            .any(|u| u.is_named(&user.id) || u.is_named(&user.user_principal_name))
        {
            bail!(
                "a user with id {} or userPrincipalName {} already exists",
                user.id,
                user.user_principal_name
            );
        }
        if user.is_synced() {
            self.organization.on_premises_sync_enabled = Some(true);
            self.organization
                .on_premises_last_sync
                .get_or_insert(user.created);
        }
        let state = user.state();
        self.users.push(user);
        Ok(state)
    }

    /// The fault the next Graph request meets, if any (consuming it).
    pub fn take_fault(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.faults.front_mut()?;
        let fault = *fault;
        *remaining -= 1;
        if *remaining == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    pub fn push_fault(&mut self, fault: Fault, count: u32) {
        if count > 0 {
            self.faults.push_back((fault, count));
        }
    }
}
