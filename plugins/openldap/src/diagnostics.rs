//! `test-connection`: what an administrator needs to know before the first reset, as checks
//! they can act on. Directory problems are failed or warning checks in the report, never the
//! call's error; only a configuration that cannot be read is an error.
//!
//! Whether the service account may write userPassword is *not* probed: OpenLDAP has no
//! attribute like AD's `allowedAttributesEffective`, and no write is harmless (a modify that
//! "changes nothing" still runs ppolicy, and a refused one is indistinguishable from a missing
//! right only after it was tried on a real user). That check says so, as a warning, and the
//! first reset shows the answer (a missing right is a `denied` error naming the ACL).

use latchkey_plugin_sdk::ldap::{LdapError, Scope as LdapScope};
use latchkey_plugin_sdk::{Check, CheckStatus, ConnectorError, Report, error_message};

use crate::account::{self, DirectoryUser};
use crate::config::{Settings, optional};
use crate::errors;
use crate::password::PASSWORD_MODIFY;
use crate::policy::{self, POLICY_ATTRIBUTES};
use crate::session::{Directory, PPOLICY_CONTROL, Search};

fn check(name: &str, status: CheckStatus, detail: String, advice: Option<String>) -> Check {
    Check {
        name: name.into(),
        status,
        detail,
        advice,
    }
}

fn ok(name: &str, detail: String) -> Check {
    check(name, CheckStatus::Ok, detail, None)
}

/// The first check, when the host could not open a bound session.
pub fn bind_check(error: &LdapError, url: &str) -> Check {
    const NAME: &str = "connect and bind as the service account";
    let (detail, advice) = match error {
        LdapError::Unavailable(text) => (
            format!("could not reach {url}: {text}"),
            "check host, port and firewall: the Latchkey server must reach the LDAP server".into(),
        ),
        LdapError::Tls(text) => (
            format!("TLS with {url} failed: {text}"),
            "make sure the server's certificate is issued by the CA in ca_file and names the host \
             in url (subjectAltName); for an ldap:// URL turn on starttls"
                .into(),
        ),
        LdapError::BindFailed(text) => (
            format!("the server refused the service account's bind: {text}"),
            "check bind_dn and the bind_password secret, and that the service account is not \
             locked out by its own password policy (pwdAccountLockedTime)"
                .into(),
        ),
        LdapError::Timeout(text) => (
            format!("{url} did not answer in time: {text}"),
            "check that the server is up and reachable; raise timeout_ms if the network is slow"
                .into(),
        ),
        LdapError::NotConfigured(text) => (
            text.clone(),
            "complete the connector's configuration (url, bind_dn) and the bind_password secret"
                .into(),
        ),
        LdapError::LimitExceeded(text) | LdapError::InvalidRequest(text) => (
            format!("the host refused the request: {text}"),
            "report this with Latchkey's log: it is not a directory problem".into(),
        ),
    };
    check(NAME, CheckStatus::Failed, detail, Some(advice))
}

/// What the root DSE says about ppolicy and Password Modify.
pub fn features_check(controls: &[String], extensions: &[String]) -> Check {
    const NAME: &str = "ppolicy control and Password Modify";
    let has = |list: &[String], oid: &str| list.iter().any(|v| v.trim() == oid);
    match (
        has(controls, PPOLICY_CONTROL),
        has(extensions, PASSWORD_MODIFY),
    ) {
        (true, true) => ok(
            NAME,
            "the server supports the password policy control (refusals name the rule) and the \
             Password Modify operation (user changes)"
                .into(),
        ),
        (ppolicy, modify) => {
            let mut missing = vec![];
            if !ppolicy {
                missing.push(format!(
                    "the password policy control ({PPOLICY_CONTROL}): refusals will be \
                     reported from the server's text only"
                ));
            }
            if !modify {
                missing.push(format!(
                    "the Password Modify operation ({PASSWORD_MODIFY}): set user_change_method \
                     to delete-add"
                ));
            }
            check(
                NAME,
                CheckStatus::Warning,
                format!("the root DSE does not list {}", missing.join("; nor ")),
                Some("load the ppolicy overlay on the users' database (moduleload ppolicy, overlay ppolicy)".into()),
            )
        }
    }
}

/// Whether the policy entry reads as a pwdPolicy.
pub fn policy_check(
    dn: Option<&str>,
    entry: Option<&latchkey_plugin_sdk::ldap_entry::DirEntry>,
) -> Check {
    const NAME: &str = "default password policy readable";
    match (dn, entry) {
        (None, _) => check(
            NAME,
            CheckStatus::Warning,
            "no policy_dn is configured: users without a pwdPolicySubentry are reported as \
             having no password policy, although the server may apply its ppolicy_default"
                .into(),
            Some("set policy_dn to the DN in the server's ppolicy_default".into()),
        ),
        (Some(dn), Some(entry)) if entry.first("pwdAttribute").is_some() => {
            let effective = policy::from_entry(entry, "the default policy_dn");
            let p = &effective.policy;
            ok(
                NAME,
                format!(
                    "{dn}: min length {}, history {}, min age {} s, lockout after {} failures",
                    p.min_length, p.history_length, p.min_age_seconds, p.lockout_threshold
                ),
            )
        }
        (Some(dn), _) => check(
            NAME,
            CheckStatus::Failed,
            format!("{dn} cannot be read as a pwdPolicy entry by the service account"),
            Some(format!(
                "check policy_dn, and grant the service account read access to {dn}"
            )),
        ),
    }
}

/// Run every check.
pub fn run() -> Result<Report, ConnectorError> {
    let settings = Settings::from_config()?;
    let url = optional("url").unwrap_or_else(|| "the configured url".into());
    let bind_dn = optional("bind_dn").unwrap_or_else(|| "the service account".into());
    let mut checks = vec![];

    let directory = match Directory::open_raw() {
        Ok(directory) => directory,
        Err(error) => {
            checks.push(bind_check(&error, &url));
            return Ok(Report { checks });
        }
    };
    checks.push(ok(
        "connect and bind as the service account",
        format!("connected to {url} and bound as {bind_dn}"),
    ));

    match directory.root_dse_raw(&["supportedControl", "supportedExtension"]) {
        Ok(root) => checks.push(features_check(
            root.values("supportedControl"),
            root.values("supportedExtension"),
        )),
        Err(error) => checks.push(check(
            "ppolicy control and Password Modify",
            CheckStatus::Warning,
            format!(
                "the root DSE could not be read: {}",
                error_message(&errors::from_host(&error))
            ),
            Some("allow the service account to read the root DSE".into()),
        )),
    }

    let base = Search::new(
        &settings.base_dn,
        LdapScope::Base,
        "(objectClass=*)".into(),
        &["objectClass"],
    );
    let base_ok = match directory.search_raw(&base) {
        Ok(Ok(found)) if !found.entries.is_empty() => {
            checks.push(ok(
                "base_dn readable",
                format!("base_dn {} exists", settings.base_dn),
            ));
            true
        }
        Ok(Ok(_)) | Ok(Err(_)) => {
            checks.push(check(
                "base_dn readable",
                CheckStatus::Failed,
                format!(
                    "base_dn {} does not exist or cannot be read by {bind_dn}",
                    settings.base_dn
                ),
                Some("correct base_dn, or grant the service account read access to it".into()),
            ));
            false
        }
        Err(error) => {
            checks.push(check(
                "base_dn readable",
                CheckStatus::Failed,
                error_message(&errors::from_host(&error)),
                Some("run the test again; if it persists, check the server".into()),
            ));
            false
        }
    };

    if base_ok {
        checks.push(users_check(&directory, &settings));
    }

    let policy_entry = match &settings.policy_dn {
        Some(dn) => directory.read(dn, POLICY_ATTRIBUTES).ok().flatten(),
        None => None,
    };
    checks.push(policy_check(
        settings.policy_dn.as_deref(),
        policy_entry.as_ref(),
    ));

    checks.push(check(
        "write access to userPassword and pwdReset",
        CheckStatus::Warning,
        "not probed: OpenLDAP offers no harmless way to test a write right (no \
         allowedAttributesEffective, and every password write runs ppolicy on a real user)"
            .into(),
        Some(format!(
            "make sure the ACL gives {bind_dn} write (not manage, so that ppolicy applies) to \
             userPassword, pwdReset and pwdAccountLockedTime under {}; the first \
             reset reports a missing right as \"denied\"",
            settings.base_dn
        )),
    ));
    Ok(Report { checks })
}

fn users_check(directory: &Directory, settings: &Settings) -> Check {
    const NAME: &str = "users readable";
    let attributes = account::account_attributes(settings);
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let search = Search {
        size_limit: 1,
        ..Search::new(
            &settings.base_dn,
            LdapScope::Subtree,
            account::users_filter(settings, None),
            &attributes,
        )
    };
    match directory.search(&search) {
        Ok(found) => match found.entries.first() {
            None => check(
                NAME,
                CheckStatus::Warning,
                format!(
                    "no entry under {} matches {}",
                    settings.base_dn, settings.user_filter
                ),
                Some("check base_dn and user_filter".into()),
            ),
            Some(entry) => match DirectoryUser::from_entry(settings, entry) {
                Ok(user) => ok(
                    NAME,
                    format!(
                        "found {} ({}) with its {} and {}",
                        user.account.username,
                        user.dn,
                        settings.id_attribute,
                        settings.username_attribute
                    ),
                ),
                Err(error) => check(
                    NAME,
                    CheckStatus::Failed,
                    error_message(&error),
                    Some(format!(
                        "grant the service account read access to {} and {} (entryUUID is \
                         operational: it must be readable too)",
                        settings.id_attribute, settings.username_attribute
                    )),
                ),
            },
        },
        Err(error) => check(
            NAME,
            CheckStatus::Failed,
            error_message(&error),
            Some("grant the service account read access to the users".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_plugin_sdk::ldap_entry::DirEntry;

    #[test]
    fn features() {
        let controls = vec![PPOLICY_CONTROL.to_string()];
        let extensions = vec![PASSWORD_MODIFY.to_string()];
        assert_eq!(
            features_check(&controls, &extensions).status,
            CheckStatus::Ok
        );
        let missing = features_check(&[], &extensions);
        assert_eq!(missing.status, CheckStatus::Warning);
        assert!(missing.detail.contains(PPOLICY_CONTROL));
        let no_modify = features_check(&controls, &[]);
        assert!(no_modify.detail.contains("delete-add"));
    }

    #[test]
    fn policies() {
        assert_eq!(policy_check(None, None).status, CheckStatus::Warning);
        let bare = DirEntry::new("cn=p");
        assert_eq!(
            policy_check(Some("cn=p"), Some(&bare)).status,
            CheckStatus::Failed
        );
        assert_eq!(policy_check(Some("cn=p"), None).status, CheckStatus::Failed);
        let entry = DirEntry::new("cn=p")
            .with("pwdAttribute", &["userPassword"])
            .with("pwdMinLength", &["8"])
            .with("pwdCheckQuality", &["2"]);
        let good = policy_check(Some("cn=p"), Some(&entry));
        assert_eq!(good.status, CheckStatus::Ok);
        assert!(good.detail.contains("min length 8"));
    }

    #[test]
    fn bind_failures_have_advice() {
        let failed = bind_check(&LdapError::BindFailed("Invalid credentials".into()), "u");
        assert_eq!(failed.status, CheckStatus::Failed);
        assert!(failed.advice.unwrap().contains("bind_password"));
    }
}
