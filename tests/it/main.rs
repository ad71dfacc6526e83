//! Latchkey's workspace-level tests. One test binary; each module is one capability.

mod ad_ldap;
mod cache;
mod capabilities;
mod conformance;
mod console;
mod console_admin;
mod console_connectors;
mod console_pages;
mod crash;
mod faults;
mod graph;
mod hybrid;
mod openldap;
mod packages;
mod replicas;
mod sandbox;
mod security;
mod server_core;
mod soak;
mod store;
mod workflow;

use latchkey::runtime::wit::types::{Account, SetOptions};

/// A directory account for tests.
pub fn account(username: &str) -> Account {
    Account {
        id: format!("id-{username}"),
        username: username.to_string(),
        principal_name: Some(format!("{username}@corp.test")),
        display_name: Some(format!("Test {username}")),
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    }
}

/// Reset options with nothing extra.
pub fn plain_reset() -> SetOptions {
    SetOptions {
        must_change_at_next_logon: false,
        unlock: false,
        enforce_history: false,
    }
}
