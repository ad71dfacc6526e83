//! The guest SDK for Latchkey connector plugins.
//!
//! A connector is a WebAssembly component implementing the `latchkey:connector` contract
//! (`wit/connector.wit`). With this crate, writing one in Rust is: implement [`Connector`]
//! (every method but `describe` has a default that answers `unsupported`), call
//! [`export_connector!`], and build with `cargo build --target wasm32-wasip2 --release`.
//!
//! ```
//! use latchkey_plugin_sdk::{Connector, Features, Info, export_connector};
//!
//! struct Acme;
//!
//! impl Connector for Acme {
//!     fn describe() -> Info {
//!         Info {
//!             id: "acme-directory".into(),
//!             version: "0.1.0".into(),
//!             name: "Acme Directory".into(),
//!             description: "Passwords in the Acme HR directory.".into(),
//!             supports: Features::POLICY,
//!             config_schema: r#"{"type":"object"}"#.into(),
//!             secrets_schema: r#"{"type":"object"}"#.into(),
//!         }
//!     }
//! }
//!
//! export_connector!(Acme);
//! # fn main() {}
//! ```
//!
//! Every call runs in a fresh instance, so a connector keeps no state between calls. The
//! host's capabilities (`ldap`, `graph`, `log`, `config`) are re-exported here; each must be
//! requested in the plugin's manifest and granted by the tenant.
//!
//! What this crate must never do: hold or print secrets, or touch anything outside the
//! contract (no files, no sockets: the sandbox refuses them anyway).

pub mod complexity;
pub mod ldap_entry;
pub mod ldap_filter;
pub mod policy;
pub mod unicode_pwd;

/// The generated bindings of the contract. Plugins rarely need this module directly.
#[allow(unsafe_code, clippy::all, missing_docs, rust_2018_idioms)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "latchkey_plugin_sdk::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::exports::latchkey::connector::connector::Guest;
pub use bindings::latchkey::connector::types::{
    Account, AccountPage, AccountQuery, CharClass, Check, CheckStatus, Complexity, ConnectorError,
    ErrorInfo, Features, Info, MatchMode, PasswordPolicy, Report, SetOptions, SetOutcome,
    SetStatus, Step, StepOutcome, Timestamp, Violation,
};
/// The host capabilities a plugin may call (each only when requested and granted).
pub use bindings::latchkey::connector::{config, graph, ldap, log};

/// The version of the `latchkey:connector` contract this SDK implements. [`export_connector!`]
/// stamps it into the component's `latchkey:wit-version` custom section, which the host reads
/// before loading a plugin.
pub const WIT_VERSION: &str = "0.1.0";

/// The same version as bytes, for the custom section (its length must match the array type
/// used by [`export_connector!`]).
#[doc(hidden)]
pub const WIT_VERSION_BYTES: [u8; 5] = *b"0.1.0";

/// A connector: what a plugin implements. Only [`Connector::describe`] is required; every other
/// method answers `unsupported` unless overridden (and `check_password` checks the candidate
/// against [`Connector::get_policy`]).
pub trait Connector {
    /// Who this connector is and what it supports. Must not call any capability.
    fn describe() -> Info;

    /// Reachability, credentials and rights, as checks an administrator can act on.
    fn test_connection() -> Result<Report, ConnectorError> {
        Err(unsupported("test-connection"))
    }

    /// Search accounts; at most `limit` per page.
    fn find_accounts(
        _query: AccountQuery,
        _cursor: Option<String>,
        _limit: u32,
    ) -> Result<AccountPage, ConnectorError> {
        Err(unsupported("find-accounts"))
    }

    /// The password policy in force for this account.
    fn get_policy(_account: Account) -> Result<PasswordPolicy, ConnectorError> {
        Err(unsupported("get-policy"))
    }

    /// Every violation of the candidate, or `Ok`. The default checks it against
    /// [`Connector::get_policy`] with [`complexity::check`].
    fn check_password(account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        match Self::get_policy(account.clone()) {
            Ok(policy) => {
                let violations = complexity::check(&candidate, &account, &policy);
                if violations.is_empty() {
                    Ok(())
                } else {
                    Err(violations)
                }
            }
            Err(error) => Err(vec![Violation::RejectedByDirectory(format!(
                "the policy could not be read: {}",
                error_message(&error)
            ))]),
        }
    }

    /// An administrator's reset.
    fn set_password(
        _account: Account,
        _password: String,
        _options: SetOptions,
    ) -> Result<SetOutcome, ConnectorError> {
        Err(unsupported("set-password"))
    }

    /// A change made by the user with their current password.
    fn change_password(
        _account: Account,
        _old: String,
        _new: String,
    ) -> Result<SetOutcome, ConnectorError> {
        Err(unsupported("change-password"))
    }

    /// When the directory last recorded a password change for this account.
    fn password_changed_at(_account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        Err(unsupported("password-changed-at"))
    }
}

/// The `unsupported` error for an operation this connector does not implement.
pub fn unsupported(operation: &str) -> ConnectorError {
    ConnectorError::Unsupported(ErrorInfo {
        message: format!("this connector does not support {operation}"),
        directory_text: None,
    })
}

/// An error's message for people, whatever its kind.
pub fn error_message(error: &ConnectorError) -> String {
    match error {
        ConnectorError::Policy(violations) => format!("{} policy violation(s)", violations.len()),
        ConnectorError::NotFound(info)
        | ConnectorError::Denied(info)
        | ConnectorError::WrongOldPassword(info)
        | ConnectorError::Unavailable(info)
        | ConnectorError::InvalidConfig(info)
        | ConnectorError::Unsupported(info)
        | ConnectorError::Internal(info) => info.message.clone(),
    }
}

/// An error's raw directory text (for the audit), whatever its kind; none for violations.
pub fn error_directory_text(error: &ConnectorError) -> Option<&str> {
    match error {
        ConnectorError::Policy(_) => None,
        ConnectorError::NotFound(info)
        | ConnectorError::Denied(info)
        | ConnectorError::WrongOldPassword(info)
        | ConnectorError::Unavailable(info)
        | ConnectorError::InvalidConfig(info)
        | ConnectorError::Unsupported(info)
        | ConnectorError::Internal(info) => info.directory_text.as_deref(),
    }
}

/// A configured string, trimmed; none when absent or blank.
pub fn optional_config(key: &str) -> Option<String> {
    config::get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A required configuration key, or an `invalid-config` error naming it.
pub fn require_config(key: &str) -> Result<String, ConnectorError> {
    config::get(key).ok_or_else(|| {
        ConnectorError::InvalidConfig(ErrorInfo {
            message: format!("the connector's configuration has no `{key}`; set it and save"),
            directory_text: None,
        })
    })
}

/// Export a [`Connector`] implementation as this component's `connector` interface, and stamp
/// the contract version into the component.
///
/// ```text
/// latchkey_plugin_sdk::export_connector!(MyConnector);
/// ```
#[macro_export]
macro_rules! export_connector {
    ($connector:ty) => {
        #[doc(hidden)]
        pub struct __LatchkeyConnectorExport;

        impl $crate::Guest for __LatchkeyConnectorExport {
            fn describe() -> $crate::Info {
                <$connector as $crate::Connector>::describe()
            }
            fn test_connection() -> ::core::result::Result<$crate::Report, $crate::ConnectorError> {
                <$connector as $crate::Connector>::test_connection()
            }
            fn find_accounts(
                query: $crate::AccountQuery,
                cursor: ::core::option::Option<::std::string::String>,
                limit: u32,
            ) -> ::core::result::Result<$crate::AccountPage, $crate::ConnectorError> {
                <$connector as $crate::Connector>::find_accounts(query, cursor, limit)
            }
            fn get_policy(
                account: $crate::Account,
            ) -> ::core::result::Result<$crate::PasswordPolicy, $crate::ConnectorError> {
                <$connector as $crate::Connector>::get_policy(account)
            }
            fn check_password(
                account: $crate::Account,
                candidate: ::std::string::String,
            ) -> ::core::result::Result<(), ::std::vec::Vec<$crate::Violation>> {
                <$connector as $crate::Connector>::check_password(account, candidate)
            }
            fn set_password(
                account: $crate::Account,
                password: ::std::string::String,
                options: $crate::SetOptions,
            ) -> ::core::result::Result<$crate::SetOutcome, $crate::ConnectorError> {
                <$connector as $crate::Connector>::set_password(account, password, options)
            }
            fn change_password(
                account: $crate::Account,
                old: ::std::string::String,
                new: ::std::string::String,
            ) -> ::core::result::Result<$crate::SetOutcome, $crate::ConnectorError> {
                <$connector as $crate::Connector>::change_password(account, old, new)
            }
            fn password_changed_at(
                account: $crate::Account,
            ) -> ::core::result::Result<::core::option::Option<$crate::Timestamp>, $crate::ConnectorError>
            {
                <$connector as $crate::Connector>::password_changed_at(account)
            }
        }

        $crate::bindings::__export_plugin_world!(
            __LatchkeyConnectorExport with_types_in $crate::bindings
        );

        /// The contract version, read by the host before it loads this component.
        #[allow(unsafe_code)]
        #[unsafe(link_section = "latchkey:wit-version")]
        #[used]
        static __LATCHKEY_WIT_VERSION: [u8; 5] = $crate::WIT_VERSION_BYTES;
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn wit_version_matches_the_contract_file() {
        let wit = include_str!("../../../wit/connector.wit");
        let line = wit
            .lines()
            .find(|l| l.starts_with("package "))
            .expect("package line");
        assert_eq!(
            line,
            format!("package latchkey:connector@{};", super::WIT_VERSION)
        );
        assert_eq!(super::WIT_VERSION.as_bytes(), super::WIT_VERSION_BYTES);
    }
}
