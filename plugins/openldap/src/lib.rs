//! Latchkey's OpenLDAP connector: a custom directory on OpenLDAP with the ppolicy overlay.
//!
//! The host opens an LDAP session over LDAPS or StartTLS, verifies the server's certificate and
//! binds as the service account; this plugin never sees the bind password. Every call runs in
//! a fresh instance with a fresh session, so nothing is kept between calls: an account is found
//! again by its entryUUID each time, and paging cursors carry their own position.
//!
//! This file only glues the contract to the modules: `account` (finding and resolving users),
//! `policy` (the pwdPolicy in force and the check against it), `password` (reset and change),
//! `diagnostics` (test-connection), `errors` (the server's refusals in words), `ber` (the
//! Password Modify request and the ppolicy response control), `session` (the only caller of the
//! `ldap` capability), `cursor`, `gtime` and `config`; filters and entries are the SDK's
//! (`ldap_filter`, `ldap_entry`).

mod account;
mod ber;
mod config;
mod cursor;
mod diagnostics;
mod errors;
mod gtime;
mod password;
mod policy;
mod session;

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, Connector, ConnectorError, Features, Info, PasswordPolicy,
    Report, SetOptions, SetOutcome, Timestamp, Violation, error_message, export_connector,
};

use crate::account::DirectoryUser;
use crate::config::Settings;
use crate::policy::EffectivePolicy;
use crate::session::Directory;

struct OpenLdap;

/// A session, the settings and the user `account` names, as the directory has it now.
fn open_and_resolve(
    account: &Account,
) -> Result<(Directory, Settings, DirectoryUser), ConnectorError> {
    let settings = Settings::from_config()?;
    let directory = Directory::open()?;
    let user = account::resolve(&directory, &settings, &account.id)?;
    Ok((directory, settings, user))
}

/// The user's policy for a write: one that cannot be read does not stop the write (the server
/// applies its policy either way), it only leaves the violations without numbers.
fn policy_for_write(
    directory: &Directory,
    settings: &Settings,
    user: &DirectoryUser,
) -> EffectivePolicy {
    policy::effective(directory, settings, user).unwrap_or_else(|error| {
        let message = error_message(&error);
        latchkey_plugin_sdk::log::log(
            latchkey_plugin_sdk::log::Level::Warn,
            &format!(
                "the password policy of {} could not be read: {message}",
                user.dn
            ),
        );
        policy::unknown(format!("unreadable: {message}"))
    })
}

/// The same, with the user's policy.
fn open_with_policy(
    account: &Account,
) -> Result<(Directory, Settings, DirectoryUser, EffectivePolicy), ConnectorError> {
    let (directory, settings, user) = open_and_resolve(account)?;
    let effective = policy::effective(&directory, &settings, &user)?;
    Ok((directory, settings, user, effective))
}

impl Connector for OpenLdap {
    fn describe() -> Info {
        Info {
            id: "openldap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "OpenLDAP (ppolicy)".into(),
            description: "A custom directory on OpenLDAP with the ppolicy overlay, over LDAPS or \
                          StartTLS: finds people under a base DN, reads the pwdPolicy that \
                          applies to each (their pwdPolicySubentry or the default), resets \
                          passwords as a service account (with unlock and \"must change at next \
                          logon\" through pwdReset) and lets users change theirs with the \
                          Password Modify operation. Refusals come back as ppolicy's own \
                          reasons: too short, too long, in history, too young."
                .into(),
            supports: Features::SET_PASSWORD
                | Features::CHANGE_PASSWORD
                | Features::POLICY
                | Features::IMPORT
                | Features::VERIFY,
            config_schema: config::CONFIG_SCHEMA.into(),
            secrets_schema: config::SECRETS_SCHEMA.into(),
        }
    }

    fn test_connection() -> Result<Report, ConnectorError> {
        diagnostics::run()
    }

    fn find_accounts(
        query: AccountQuery,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        let settings = Settings::from_config()?;
        let directory = Directory::open()?;
        account::find(&directory, &settings, &query, cursor.as_deref(), limit)
    }

    fn get_policy(account: Account) -> Result<PasswordPolicy, ConnectorError> {
        open_with_policy(&account).map(|(_, _, _, effective)| effective.policy)
    }

    fn check_password(account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        match open_with_policy(&account) {
            Ok((_, _, user, effective)) => {
                let violations =
                    policy::violations(&candidate, &effective, &user, password::unix_now());
                if violations.is_empty() {
                    Ok(())
                } else {
                    Err(violations)
                }
            }
            Err(error) => Err(vec![Violation::RejectedByDirectory(format!(
                "the password policy could not be read, so the password was not checked: {}",
                error_message(&error)
            ))]),
        }
    }

    fn set_password(
        account: Account,
        password: String,
        options: SetOptions,
    ) -> Result<SetOutcome, ConnectorError> {
        let (directory, settings, user) = open_and_resolve(&account)?;
        let effective = policy_for_write(&directory, &settings, &user);
        password::set(
            &directory, &settings, &effective, &user, &password, &options,
        )
    }

    fn change_password(
        account: Account,
        old: String,
        new: String,
    ) -> Result<SetOutcome, ConnectorError> {
        let (directory, settings, user) = open_and_resolve(&account)?;
        let effective = policy_for_write(&directory, &settings, &user);
        password::change(&directory, &settings, &effective, &user, &old, &new)
    }

    fn password_changed_at(account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        let (_, _, user) = open_and_resolve(&account)?;
        Ok(user.changed_at)
    }
}

export_connector!(OpenLdap);
