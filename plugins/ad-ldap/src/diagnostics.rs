//! `test-connection`: what an administrator needs to know before the first reset, as checks
//! they can act on. Directory problems are failed or warning checks in the report, never the
//! call's error; only a configuration that cannot be read is an error.
//!
//! The Reset Password right cannot be read as an attribute: it is probed with a modify that
//! the DC refuses either way, but differently. unicodePwd written *without* its quotes is
//! refused with `00002035` by Samba 4.17 ("it's not allowed to set the NT hash password
//! directly", rc 53) and with `0000216C` by Windows when the right is there, and with rc 50
//! (insufficientAccessRights) when it is not. Nothing changes on the user either way (seen on
//! Samba 4.17).

use latchkey_plugin_sdk::ldap::{BinaryAttribute, LdapError, Modification, Scope as LdapScope};
use latchkey_plugin_sdk::{Check, CheckStatus, ConnectorError, Report};

use crate::config::{Scope, optional};
use crate::errors::{
    self, ERROR_ACCESS_DENIED, ERROR_DS_UNWILLING_UNQUOTED, ERROR_SAMBA_NT_HASH_DIRECTLY,
    RC_CONSTRAINT_VIOLATION, RC_INSUFFICIENT_ACCESS, RC_NO_SUCH_OBJECT, RC_UNWILLING_TO_PERFORM,
    bind_failure,
};
use crate::filter;
use crate::password::{POLICY_HINTS, POLICY_HINTS_DEPRECATED};
use crate::policy::{DcKind, password_settings_container};
use crate::session::{Directory, Search};
use latchkey_plugin_sdk::ldap_entry::DirEntry;

const RESET_ADVICE: &str = "delegate Reset password on the OU holding the users (Active \
     Directory Users and Computers → Delegate Control → Reset user passwords and force password \
     change at next logon)";

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
            "check host/port/firewall: the Latchkey server must reach the DC on that port".into(),
        ),
        LdapError::Tls(text) => (
            format!("TLS with {url} failed: {text}"),
            "make sure the DC's certificate is issued by the CA in ca_file and names the host in \
             url (subjectAltName); for an ldap:// URL turn on starttls"
                .into(),
        ),
        LdapError::BindFailed(text) => {
            let (what, advice) = bind_failure(text);
            (format!("{what} ({text})"), advice.to_string())
        }
        LdapError::Timeout(text) => (
            format!("{url} did not answer in time: {text}"),
            "check that the DC is up and reachable; raise timeout_ms if the network is slow".into(),
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

/// The RDNs of a DN, lowercased and trimmed, split on commas that are not escaped.
fn rdns(dn: &str) -> Vec<String> {
    let mut parts = vec![];
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => {
                current.push(c);
                escaped = true;
            }
            ',' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|rdn| {
            rdn.split('=')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("=")
                .to_lowercase()
        })
        .filter(|rdn| !rdn.is_empty())
        .collect()
}

/// Whether `dn` is `suffix` or below it.
pub fn dn_within(dn: &str, suffix: &str) -> bool {
    let dn = rdns(dn);
    let suffix = rdns(suffix);
    !suffix.is_empty() && dn.ends_with(&suffix)
}

/// How the DC answered the Reset Password probe.
pub fn probe_verdict(code: u32, text: &str, sample: &str) -> Check {
    const NAME: &str = "Reset Password right";
    match (code, errors::windows_code(text)) {
        (RC_INSUFFICIENT_ACCESS, _) | (_, Some(ERROR_ACCESS_DENIED)) => check(
            NAME,
            CheckStatus::Failed,
            format!("the service account lacks the Reset Password right on {sample}"),
            Some(RESET_ADVICE.into()),
        ),
        (RC_UNWILLING_TO_PERFORM | RC_CONSTRAINT_VIOLATION, _)
        | (_, Some(ERROR_DS_UNWILLING_UNQUOTED | ERROR_SAMBA_NT_HASH_DIRECTLY)) => ok(
            NAME,
            format!(
                "the service account holds Reset Password on {sample} (probed with a write the \
                 DC refuses for its form, which changes nothing)"
            ),
        ),
        _ => check(
            NAME,
            CheckStatus::Warning,
            format!("the probe on {sample} got an unexpected answer, LDAP result {code}: {text}"),
            Some(format!(
                "make sure the service account may reset passwords on {sample}: {RESET_ADVICE}"
            )),
        ),
    }
}

/// Whether the service account may write what unlock and must-change need, from
/// `allowedAttributesEffective`.
pub fn write_rights_check(sample: &str, allowed: &[String]) -> Check {
    const NAME: &str = "write lockoutTime and pwdLastSet (unlock, must change at next logon)";
    let may = |attribute: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(attribute));
    let missing: Vec<&str> = [
        ("lockoutTime", "unlock"),
        ("pwdLastSet", "must change at next logon"),
    ]
    .into_iter()
    .filter(|(attribute, _)| !may(attribute))
    .map(|(attribute, _)| attribute)
    .collect();
    match missing.as_slice() {
        [] => ok(
            NAME,
            format!(
                "the service account may write lockoutTime (unlock) and pwdLastSet (must \
                 change at next logon) on {sample}"
            ),
        ),
        _ => {
            let mut detail = format!(
                "the service account may not write {}",
                missing.join(" nor ")
            );
            detail.push_str(&format!(
                " on {sample}, so resets with {} will set the password but not do that part",
                missing
                    .iter()
                    .map(|a| if *a == "lockoutTime" {
                        "unlock"
                    } else {
                        "must change at next logon"
                    })
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
            check(
                NAME,
                CheckStatus::Warning,
                detail,
                Some(format!(
                    "grant the service account Read and write {} on user objects of the OU \
                     holding the users (Delegate Control → custom task → User objects → \
                     Property-specific)",
                    missing.join(" and ")
                )),
            )
        }
    }
}

/// Whether the fine-grained policies that exist can be read.
pub fn pso_check(container: &str, psos: &[DirEntry]) -> Check {
    const NAME: &str = "fine-grained password policies readable";
    let unreadable: Vec<&str> = psos
        .iter()
        .filter(|pso| pso.first("msDS-MinimumPasswordLength").is_none())
        .map(|pso| pso.dn.as_str())
        .collect();
    match (psos.len(), unreadable.as_slice()) {
        (0, _) => ok(
            NAME,
            "no fine-grained password policy is visible to the service account; users get the \
             domain policy (if some have a PSO, the account cannot list the Password Settings \
             Container, and their policy will be refused as unreadable)"
                .into(),
        ),
        (n, []) => ok(
            NAME,
            format!("the service account can read all {n} fine-grained password policies"),
        ),
        (n, unreadable) => check(
            NAME,
            CheckStatus::Warning,
            format!(
                "{} of {n} fine-grained password policies cannot be read by the service account \
                 (e.g. {}); get-policy and check-password fail for their members",
                unreadable.len(),
                unreadable[0]
            ),
            Some(format!(
                "grant the service account Read on {container} (it is not readable by default)"
            )),
        ),
    }
}

/// Whether the DC enforces history on resets when asked.
pub fn hints_check(supported_controls: &[String]) -> Check {
    const NAME: &str = "history on resets (LDAP_SERVER_POLICY_HINTS)";
    let has = |oid: &str| supported_controls.iter().any(|c| c.trim() == oid);
    if has(POLICY_HINTS) || has(POLICY_HINTS_DEPRECATED) {
        ok(
            NAME,
            "the DC supports LDAP_SERVER_POLICY_HINTS: it can refuse a reset to a password from \
             the account's history"
                .into(),
        )
    } else {
        check(
            NAME,
            CheckStatus::Warning,
            "the DC does not support LDAP_SERVER_POLICY_HINTS: history on resets is enforced by \
             Latchkey only"
                .into(),
            Some(
                "nothing is required; a DC that lists 1.2.840.113556.1.4.2239 in its root DSE \
                 (Windows Server 2012 or later, Samba 4.24 or later) also enforces the domain's \
                 history on resets"
                    .into(),
            ),
        )
    }
}

/// Run every check.
pub fn run() -> Result<Report, ConnectorError> {
    let scope = Scope::from_config()?;
    let url = optional("url").unwrap_or_else(|| "the configured url".into());
    let bind_dn = optional("bind_dn");
    let mut checks = vec![];

    // (1) Connect and bind.
    let directory = match Directory::open_raw() {
        Ok(directory) => directory,
        Err(error) => {
            checks.push(bind_check(&error, &url));
            return Ok(Report { checks });
        }
    };
    checks.push(ok(
        "connect and bind as the service account",
        format!(
            "connected to {url} and bound as {}",
            bind_dn.as_deref().unwrap_or("the service account")
        ),
    ));

    // (2) The root DSE, and where base_dn sits.
    let root_dse =
        directory.root_dse_raw(&["defaultNamingContext", "supportedControl", "vendorName"]);
    let domain_dn = match &root_dse {
        Ok(root_dse) => {
            let domain = root_dse.first("defaultNamingContext").map(str::to_string);
            checks.push(root_dse_check(root_dse, domain.as_deref(), &scope.base_dn));
            domain
        }
        Err(error) => {
            checks.push(check(
                "read the root DSE",
                CheckStatus::Failed,
                format!(
                    "the root DSE could not be read: {}",
                    latchkey_plugin_sdk::error_message(&errors::from_host(error))
                ),
                Some("check that the DC answers LDAP requests from the service account".into()),
            ));
            None
        }
    };

    // (3) base_dn and group_dn exist.
    let base_exists = object_check(
        &directory,
        "base_dn exists",
        "base_dn",
        &scope.base_dn,
        "(objectClass=*)",
    );
    let base_ok = base_exists.status == CheckStatus::Ok;
    checks.push(base_exists);
    if let Some(group) = &scope.group_dn {
        checks.push(object_check(
            &directory,
            "group_dn exists",
            "group_dn",
            group,
            "(objectClass=group)",
        ));
    }

    // (4) Rights, on a sample user.
    if base_ok {
        checks.extend(rights_checks(&directory, &scope, bind_dn.as_deref()));
    }

    // (5) Fine-grained policies.
    if let Some(domain) = &domain_dn {
        checks.push(pso_readability(&directory, domain));
    }

    // (6) History on resets.
    if let Ok(root_dse) = &root_dse {
        checks.push(hints_check(root_dse.values("supportedControl")));
    }
    Ok(Report { checks })
}

fn root_dse_check(root_dse: &DirEntry, domain: Option<&str>, base_dn: &str) -> Check {
    const NAME: &str = "read the root DSE";
    let vendor = match DcKind::from_root_dse(root_dse) {
        DcKind::Samba => "a Samba domain controller",
        DcKind::Windows => "a Windows domain controller",
    };
    match domain {
        None => check(
            NAME,
            CheckStatus::Failed,
            format!("{vendor} without a defaultNamingContext in its root DSE"),
            Some("point url at an Active Directory domain controller".into()),
        ),
        Some(domain) if dn_within(base_dn, domain) => ok(
            NAME,
            format!("{vendor} of the domain {domain}; base_dn {base_dn} is inside it"),
        ),
        Some(domain) => check(
            NAME,
            CheckStatus::Failed,
            format!("{vendor} of the domain {domain}, but base_dn {base_dn} is not inside it"),
            Some(format!(
                "set base_dn to the OU holding the users, inside {domain} (e.g. OU=Staff,{domain}), \
                 or point url at a DC of base_dn's domain"
            )),
        ),
    }
}

fn object_check(
    directory: &Directory,
    name: &str,
    key: &str,
    dn: &str,
    object_filter: &str,
) -> Check {
    let search = Search::new(dn, LdapScope::Base, object_filter.into(), &["objectClass"]);
    match directory.search_raw(&search) {
        Ok(Ok(found)) if !found.entries.is_empty() => ok(name, format!("{key} {dn} exists")),
        Ok(Ok(_)) => check(
            name,
            CheckStatus::Failed,
            format!("{key} {dn} exists but is not what it should be (or cannot be read)"),
            Some(format!(
                "set {key} to the DN of a {} the service account can read",
                if key == "group_dn" {
                    "group"
                } else {
                    "container"
                }
            )),
        ),
        Ok(Err(refusal)) if refusal.code == RC_NO_SUCH_OBJECT => check(
            name,
            CheckStatus::Failed,
            format!("{key} {dn} does not exist on the DC"),
            Some(format!(
                "correct {key} in the connector's configuration (copy the DN from the \
                 object's distinguishedName attribute)"
            )),
        ),
        Ok(Err(refusal)) => check(
            name,
            CheckStatus::Failed,
            format!(
                "reading {key} {dn} was refused: LDAP result {}: {}",
                refusal.code, refusal.text
            ),
            Some(format!("grant the service account Read on {dn}")),
        ),
        Err(error) => check(
            name,
            CheckStatus::Failed,
            format!(
                "reading {key} {dn} failed: {}",
                latchkey_plugin_sdk::error_message(&errors::from_host(&error))
            ),
            Some("run the test again; if it persists, check the DC".into()),
        ),
    }
}

/// The first user in scope that the delegation should cover: not an AdminSDHolder-protected
/// account (adminCount=1; delegation does not reach those) and not the service account.
fn sample_user(
    directory: &Directory,
    scope: &Scope,
    bind_dn: Option<&str>,
) -> Result<Option<DirEntry>, String> {
    let mut clauses = vec!["(!(adminCount=1))".to_string()];
    if let Some(bind_dn) = bind_dn {
        clauses.push(format!(
            "(!{})",
            filter::equals("distinguishedName", bind_dn)
        ));
    }
    let search = Search {
        size_limit: 1,
        page_size: 1,
        ..Search::new(
            &scope.base_dn,
            LdapScope::Subtree,
            crate::account::users_filter(scope, Some(&filter::all_of(&clauses)), None),
            &["sAMAccountName"],
        )
    };
    match directory.search(&search) {
        Ok(found) => Ok(found.entries.into_iter().next()),
        Err(error) => Err(latchkey_plugin_sdk::error_message(&error)),
    }
}

fn rights_checks(directory: &Directory, scope: &Scope, bind_dn: Option<&str>) -> Vec<Check> {
    const NAME: &str = "rights on users";
    let sample = match sample_user(directory, scope, bind_dn) {
        Ok(Some(sample)) => sample,
        Ok(None) => {
            return vec![check(
                NAME,
                CheckStatus::Warning,
                format!(
                    "no user {} to check the Reset Password right and write access to \
                     lockoutTime and pwdLastSet on",
                    scope.describe()
                ),
                Some("put a user in scope and run the test again".into()),
            )];
        }
        Err(message) => {
            return vec![check(
                NAME,
                CheckStatus::Failed,
                format!("searching users {} failed: {message}", scope.describe()),
                Some("grant the service account Read on the OU holding the users".into()),
            )];
        }
    };
    let name = sample.first("sAMAccountName").unwrap_or("?");
    let described = format!("{name} ({})", sample.dn);
    let mut checks = vec![];

    // allowedAttributesEffective is constructed: read with a base search.
    match directory.read(&sample.dn, &["allowedAttributesEffective"]) {
        Ok(entry) => {
            let entry = entry.unwrap_or_default();
            checks.push(write_rights_check(
                &described,
                entry.values("allowedAttributesEffective"),
            ));
        }
        Err(error) => checks.push(check(
            "write lockoutTime and pwdLastSet (unlock, must change at next logon)",
            CheckStatus::Warning,
            format!(
                "could not read which attributes the service account may write on {described} \
                 (lockoutTime, pwdLastSet): {}",
                latchkey_plugin_sdk::error_message(&error)
            ),
            Some("grant the service account Read on the OU holding the users".into()),
        )),
    }

    // "x" in UTF-16LE, deliberately without the quotes AD requires: refused either way.
    let probe = [Modification::Replace(BinaryAttribute {
        name: "unicodePwd".into(),
        values: vec![vec![b'x', 0]],
    })];
    checks.push(
        match directory.modify(
            "Reset Password probe (unquoted value)",
            &sample.dn,
            &probe,
            &[],
        ) {
            Ok(Err(refusal)) => probe_verdict(refusal.code, &refusal.text, &described),
            Ok(Ok(())) => check(
                "Reset Password right",
                CheckStatus::Warning,
                format!(
                    "the DC accepted the unquoted probe value on {described}, which AD never does"
                ),
                Some("check that url points at an Active Directory domain controller".into()),
            ),
            Err(error) => check(
                "Reset Password right",
                CheckStatus::Warning,
                format!(
                    "the probe on {described} failed: {}",
                    latchkey_plugin_sdk::error_message(&error)
                ),
                Some("run the test again; if it persists, check the DC".into()),
            ),
        },
    );
    checks
}

fn pso_readability(directory: &Directory, domain: &str) -> Check {
    let container = password_settings_container(domain);
    let search = Search::new(
        &container,
        LdapScope::OneLevel,
        "(objectClass=*)".into(),
        &["msDS-MinimumPasswordLength"],
    );
    match directory.search_raw(&search) {
        Ok(Ok(found)) => pso_check(&container, &found.entries),
        Ok(Err(refusal)) if refusal.code == RC_NO_SUCH_OBJECT => ok(
            "fine-grained password policies readable",
            format!("{container} does not exist or is not visible: users get the domain policy"),
        ),
        Ok(Err(refusal)) => check(
            "fine-grained password policies readable",
            CheckStatus::Warning,
            format!(
                "listing {container} was refused: LDAP result {}: {}",
                refusal.code, refusal.text
            ),
            Some(format!("grant the service account Read on {container}")),
        ),
        Err(error) => check(
            "fine-grained password policies readable",
            CheckStatus::Warning,
            format!(
                "listing {container} failed: {}",
                latchkey_plugin_sdk::error_message(&errors::from_host(&error))
            ),
            Some(format!("grant the service account Read on {container}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_inside_a_domain() {
        assert!(dn_within("OU=Staff,DC=corp,DC=test", "DC=corp,DC=test"));
        assert!(dn_within("ou=staff, dc=CORP ,dc = test", "DC=corp,DC=test"));
        assert!(dn_within("DC=corp,DC=test", "DC=corp,DC=test"));
        assert!(!dn_within("OU=Staff,DC=other,DC=test", "DC=corp,DC=test"));
        assert!(!dn_within("OU=Staff,DC=xcorp,DC=test", "DC=corp,DC=test"));
        assert!(!dn_within("OU=Staff,DC=corp,DC=test", ""));
        // An escaped comma is part of the RDN, not a separator.
        assert!(!dn_within(r"OU=a\,DC=corp,DC=test", "DC=a,DC=corp,DC=test"));
    }

    #[test]
    fn the_probe_verdicts() {
        let samba_ok = probe_verdict(
            53,
            "00002035: setup_io: it's not allowed to set the NT hash password directly'",
            "alice",
        );
        assert_eq!(samba_ok.status, CheckStatus::Ok);
        assert!(samba_ok.detail.contains("Reset Password"));
        assert_eq!(
            probe_verdict(53, "0000216C: SvcErr: DSID-031A126C", "alice").status,
            CheckStatus::Ok
        );
        assert_eq!(probe_verdict(19, "", "alice").status, CheckStatus::Ok);

        let missing = probe_verdict(
            50,
            "error in module acl: insufficient access rights during LDB_MODIFY (50)",
            "alice",
        );
        assert_eq!(missing.status, CheckStatus::Failed);
        assert!(missing.detail.contains("Reset Password") && missing.detail.contains("alice"));
        assert!(missing.advice.unwrap().contains("Delegate Control"));
        assert_eq!(
            probe_verdict(1, "00000005: SecErr", "alice").status,
            CheckStatus::Failed
        );

        let odd = probe_verdict(80, "00000057: something else", "alice");
        assert_eq!(odd.status, CheckStatus::Warning);
        assert!(odd.detail.contains("00000057: something else"));
    }

    #[test]
    fn write_rights() {
        let both: Vec<String> = ["cn", "lockoutTime", "pwdLastSet"]
            .map(String::from)
            .to_vec();
        assert_eq!(write_rights_check("alice", &both).status, CheckStatus::Ok);

        let none = write_rights_check("alice", &[]);
        assert_eq!(none.status, CheckStatus::Warning);
        assert!(none.detail.contains("lockoutTime") && none.detail.contains("pwdLastSet"));
        assert!(none.advice.unwrap().contains("lockoutTime and pwdLastSet"));

        let one = write_rights_check("alice", &["pwdlastset".to_string()]);
        assert!(one.detail.contains("lockoutTime") && !one.detail.contains("pwdLastSet"));
        assert!(one.detail.contains("unlock"));
    }

    #[test]
    fn pso_readability_verdicts() {
        let container = "CN=Password Settings Container,CN=System,DC=corp,DC=test";
        assert_eq!(pso_check(container, &[]).status, CheckStatus::Ok);
        let readable = DirEntry::new("CN=p,".to_string() + container)
            .with("msDS-MinimumPasswordLength", &["12"]);
        assert_eq!(
            pso_check(container, std::slice::from_ref(&readable)).status,
            CheckStatus::Ok
        );
        let bare = DirEntry::new("CN=q,".to_string() + container);
        let warning = pso_check(container, &[readable, bare]);
        assert_eq!(warning.status, CheckStatus::Warning);
        assert!(warning.detail.contains("CN=q,"));
        assert!(warning.advice.unwrap().contains(container));
    }

    #[test]
    fn hints() {
        assert_eq!(
            hints_check(&[POLICY_HINTS.to_string()]).status,
            CheckStatus::Ok
        );
        assert_eq!(
            hints_check(&[POLICY_HINTS_DEPRECATED.to_string()]).status,
            CheckStatus::Ok
        );
        let samba = hints_check(&["1.2.840.113556.1.4.473".to_string()]);
        assert_eq!(samba.status, CheckStatus::Warning);
        assert!(samba.detail.contains("Latchkey only"));
    }

    #[test]
    fn bind_failures_say_what_to_fix() {
        let wrong = bind_check(
            &LdapError::BindFailed(
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data \
                 52e, v1db1"
                    .into(),
            ),
            "ldaps://dc:636",
        );
        assert_eq!(wrong.status, CheckStatus::Failed);
        assert!(wrong.detail.contains("password"));
        assert!(wrong.advice.unwrap().contains("bind_password"));

        let unreachable = bind_check(
            &LdapError::Unavailable("connection refused".into()),
            "ldaps://dc:636",
        );
        assert!(
            unreachable
                .detail
                .starts_with("could not reach ldaps://dc:636")
        );
        assert!(unreachable.advice.unwrap().contains("firewall"));

        let tls = bind_check(&LdapError::Tls("unknown issuer".into()), "ldaps://dc:636");
        assert!(tls.advice.unwrap().contains("ca_file"));

        let host = bind_check(
            &LdapError::NotConfigured("this connector has no LDAP server configured".into()),
            "x",
        );
        assert_eq!(host.detail, "this connector has no LDAP server configured");
        for error in [
            LdapError::Timeout("5 s".into()),
            LdapError::LimitExceeded("x".into()),
            LdapError::InvalidRequest("x".into()),
        ] {
            let c = bind_check(&error, "x");
            assert_eq!(c.status, CheckStatus::Failed);
            assert!(c.advice.is_some());
        }
    }

    #[test]
    fn the_root_dse_check() {
        let samba = DirEntry::new("")
            .with("defaultNamingContext", &["DC=corp,DC=test"])
            .with("vendorName", &["Samba Team (https://www.samba.org)"]);
        let inside = root_dse_check(&samba, Some("DC=corp,DC=test"), "OU=Staff,DC=corp,DC=test");
        assert_eq!(inside.status, CheckStatus::Ok);
        assert!(inside.detail.contains("Samba"));
        let outside = root_dse_check(&samba, Some("DC=corp,DC=test"), "OU=Staff,DC=other");
        assert_eq!(outside.status, CheckStatus::Failed);
        assert!(outside.advice.unwrap().contains("DC=corp,DC=test"));
    }
}
