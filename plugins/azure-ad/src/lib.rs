//! Latchkey's Entra ID (Azure AD) connector.
//!
//! The host reaches Microsoft Graph for this plugin: it acquires and caches the app's token
//! (client credentials for the configured tenant and cloud), picks the endpoint, applies
//! timeouts and throttling rules; this plugin never sees the client secret. Every call runs in
//! a fresh instance, so nothing is kept between calls: an account is addressed again by its
//! object id each time, and paging cursors are Graph's own next-page links.
//!
//! Two kinds of users: cloud-only ones, whose passwords this connector resets through Graph,
//! and users synced from on-premises Active Directory, whose passwords are set by the AD
//! connector and reach Entra ID through password hash sync; for those this connector only
//! reports `awaiting-sync` and, later, when the change landed.
//!
//! This file only glues the contract to the modules: `account` (finding and reading users),
//! `policy` and `rules` (the policy in force and the check against it), `password` (reset,
//! change, last change), `diagnostics` (test-connection), `errors` (Graph's refusals in
//! words), `client` (the only caller of the `graph` capability), `odata`, `cursor`,
//! `datetime` and `config`.

mod account;
mod client;
mod config;
mod cursor;
mod datetime;
mod diagnostics;
mod errors;
mod odata;
mod password;
mod policy;
mod rules;

use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, Connector, ConnectorError, Features, Info, PasswordPolicy,
    Report, SetOptions, SetOutcome, Timestamp, Violation, export_connector,
};

struct EntraId;

impl Connector for EntraId {
    fn describe() -> Info {
        Info {
            id: "azure-ad".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Entra ID (Microsoft Graph)".into(),
            description: "Entra ID (Azure AD) through Microsoft Graph, as an app registration \
                          with client credentials: finds users, reads the cloud password \
                          policy (and each user's DisableStrongPassword and \
                          DisablePasswordExpiration), checks candidates against it, and resets \
                          cloud-only users' passwords (with \"must change at next sign-in\"). \
                          Users synced from on-premises Active Directory are not written here: \
                          with the AD connector as primary, Latchkey waits for password hash \
                          sync to carry the change and verifies that it landed. Needs the \
                          application permissions User.Read.All and \
                          User-PasswordProfile.ReadWrite.All with admin consent, and the User \
                          Administrator role."
                .into(),
            supports: Features::SET_PASSWORD
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
        account::find(&query, cursor.as_deref(), limit)
    }

    fn get_policy(account: Account) -> Result<PasswordPolicy, ConnectorError> {
        policy::read(&account::object_id(&account)?)
    }

    fn check_password(account: Account, candidate: String) -> Result<(), Vec<Violation>> {
        rules::check(&candidate, &account)
    }

    fn set_password(
        account: Account,
        password: String,
        options: SetOptions,
    ) -> Result<SetOutcome, ConnectorError> {
        password::set(&account, &password, &options)
    }

    fn change_password(
        account: Account,
        _old: String,
        _new: String,
    ) -> Result<SetOutcome, ConnectorError> {
        password::change(&account)
    }

    fn password_changed_at(account: Account) -> Result<Option<Timestamp>, ConnectorError> {
        password::changed_at(&account)
    }
}

export_connector!(EntraId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_matches_the_manifest() {
        let manifest = include_str!("../manifest.toml");
        let info = EntraId::describe();
        assert!(manifest.contains(&format!("id = \"{}\"", info.id)));
        assert!(manifest.contains(&format!("version = \"{}\"", info.version)));
        assert!(manifest.contains(&format!("name = \"{}\"", info.name)));
        assert!(manifest.contains("wit = \"0.1.0\""));
        assert!(manifest.contains(r#"capabilities = ["log", "config", "graph"]"#));
        assert!(!info.supports.contains(Features::CHANGE_PASSWORD));
        for schema in [&info.config_schema, &info.secrets_schema] {
            serde_json::from_str::<serde_json::Value>(schema).unwrap();
        }
    }
}
