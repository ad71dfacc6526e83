//! Latchkey's on-prem Active Directory connector.
//!
//! The host opens an LDAP session to the configured domain controller over LDAPS or StartTLS,
//! verifies its certificate and binds as the service account; this plugin never sees the bind
//! password. Every call runs in a fresh instance with a fresh session, so nothing is kept
//! between calls: an account is found again by its objectGUID each time, and paging cursors
//! carry their own position.
//!
//! This file only glues the contract to the modules: `account` (finding and resolving users),
//! `policy` and `rules` (the policy in force and the check against it), `password` (reset and
//! change), `diagnostics` (test-connection), `errors` (AD's refusals in words), `session` (the
//! only caller of the `ldap` capability), `filter` (AD's own filters; escaping is the SDK's
//! `ldap_filter`, entries its `ldap_entry`), `cursor`, `filetime` and `config`.

mod account;
mod config;
mod cursor;
mod diagnostics;
mod errors;
mod filetime;
mod filter;
mod password;
mod policy;
mod rules;
mod session;

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, Connector, ConnectorError, Features, Info, PasswordPolicy,
    Report, SetOptions, SetOutcome, Timestamp, Violation, error_message, export_connector,
};

use crate::account::DirectoryUser;
use crate::config::Scope;
use crate::session::Directory;

struct ActiveDirectory;

/// A session and the user `account` names, as the directory has them now.
fn open_and_resolve(account: &Account) -> Result<(Directory, DirectoryUser), ConnectorError> {
    let scope = Scope::from_config()?;
    let directory = Directory::open()?;
    let user = account::resolve(&directory, &scope, &account.id)?;
    Ok((directory, user))
}

impl Connector for ActiveDirectory {
    fn describe() -> Info {
        Info {
            id: "ad-ldap".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Active Directory (LDAP)".into(),
            description: "On-prem Active Directory over LDAPS or StartTLS: finds users under a \
                          base DN (optionally only members of a group), reads the domain's or \
                          the user's fine-grained password policy, checks candidates the way \
                          the domain controller does, resets passwords (with unlock and \
                          \"must change at next logon\") and changes them with the old one. \
                          Needs a service account with Reset Password on the users' OU."
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
        let scope = Scope::from_config()?;
        let directory = Directory::open()?;
        account::find(&directory, &scope, &query, cursor.as_deref(), limit)
    }

    fn get_policy(account: Account) -> Result<PasswordPolicy, ConnectorError> {
        let (directory, user) = open_and_resolve(&account)?;
        Ok(policy::effective(&directory, &user.dn)?.policy)
    }

    fn check_password(account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        let checked = open_and_resolve(&account).and_then(|(directory, user)| {
            let effective = policy::effective(&directory, &user.dn)?;
            // The names as the directory has them now, not as the host remembers them.
            Ok(rules::violations(
                &candidate,
                &user.account,
                &effective.policy,
                effective.dc,
            ))
        });
        match checked {
            Ok(violations) if violations.is_empty() => Ok(()),
            Ok(violations) => Err(violations),
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
        let (directory, user) = open_and_resolve(&account)?;
        password::set(&directory, &user, &password, &options)
    }

    fn change_password(
        account: Account,
        old: String,
        new: String,
    ) -> Result<SetOutcome, ConnectorError> {
        let (directory, user) = open_and_resolve(&account)?;
        password::change(&directory, &user, &old, &new)
    }

    fn password_changed_at(account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        let (_, user) = open_and_resolve(&account)?;
        Ok(user.pwd_last_set.and_then(filetime::filetime_to_unix))
    }
}

export_connector!(ActiveDirectory);
