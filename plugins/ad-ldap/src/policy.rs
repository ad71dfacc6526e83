//! The password policy in force for one user: the fine-grained policy (PSO) that the user's
//! constructed `msDS-ResultantPSO` names, or else the domain's, read from the domain object.
//!
//! A PSO that is named but cannot be read is an error naming the missing right, never a
//! silent fallback to the domain policy: the PSO is usually the stricter one, and checking
//! against the wrong policy would let the DC refuse what Latchkey approved.
//!
//! Which DC enforces the policy matters for the character classes ([`DcKind`]): Windows and
//! Samba count them differently (see `rules`). The name rules (account name, display-name
//! tokens) are MS-SAMR's definition of complexity and are part of the policy on every DC:
//! Windows enforces them itself, while Samba (4.17) leaves them to its optional "check password
//! script" — which is how a Samba domain gets Windows' behaviour, and what the test DC runs. On a
//! Samba without one, Latchkey is stricter than the DC here, never looser.

use latchkey_plugin_sdk::{CharClass, Complexity, ConnectorError, ErrorInfo, PasswordPolicy};

use crate::filetime;
use crate::session::Directory;
use latchkey_plugin_sdk::ldap_entry::DirEntry;

/// pwdProperties DOMAIN_PASSWORD_COMPLEX.
const DOMAIN_PASSWORD_COMPLEX: i64 = 0x1;

/// MS-SAMR's limit on a password's length, which Windows enforces. (Samba accepts longer ones:
/// 2400 characters were accepted on 4.17. Latchkey holds itself to 256 either way.)
pub const MAX_LENGTH: u32 = 256;

/// The domain object's policy attributes.
pub const DOMAIN_ATTRIBUTES: &[&str] = &[
    "minPwdLength",
    "pwdProperties",
    "pwdHistoryLength",
    "minPwdAge",
    "maxPwdAge",
    "lockoutThreshold",
];

/// A PSO's policy attributes.
pub const PSO_ATTRIBUTES: &[&str] = &[
    "msDS-MinimumPasswordLength",
    "msDS-PasswordComplexityEnabled",
    "msDS-PasswordHistoryLength",
    "msDS-MinimumPasswordAge",
    "msDS-MaximumPasswordAge",
    "msDS-LockoutThreshold",
];

/// Which implementation runs the domain controller: it decides which rules "complexity"
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcKind {
    /// Windows Server: MS-SAMR 3.1.1.7.2 (classes, account name, display-name tokens).
    Windows,
    /// Samba: its own class counting (`check_password_quality`); the name rules only through a
    /// "check password script".
    Samba,
}

impl DcKind {
    /// From the root DSE's `vendorName` (Samba publishes "Samba Team (https://www.samba.org)";
    /// Windows publishes none).
    pub fn from_root_dse(root_dse: &DirEntry) -> Self {
        match root_dse.first("vendorName") {
            Some(vendor) if vendor.to_ascii_lowercase().contains("samba") => Self::Samba,
            _ => Self::Windows,
        }
    }
}

/// A policy with the DC that enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub policy: PasswordPolicy,
    pub dc: DcKind,
}

/// The rule values, however the directory stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rules {
    min_length: i64,
    complexity: bool,
    history_length: i64,
    min_age: i64,
    max_age: i64,
    lockout_threshold: i64,
}

fn assemble(rules: Rules, source: String) -> PasswordPolicy {
    let clamp = |value: i64| u32::try_from(value.max(0)).unwrap_or(u32::MAX);
    // MS-SAMR counts the name checks as part of complexity (see the module's comment for Samba).
    let names = rules.complexity;
    PasswordPolicy {
        min_length: clamp(rules.min_length),
        max_length: MAX_LENGTH,
        complexity: rules.complexity.then(|| Complexity {
            required: 3,
            classes: vec![
                CharClass::Uppercase,
                CharClass::Lowercase,
                CharClass::Digit,
                CharClass::Symbol,
                CharClass::OtherLetter,
            ],
        }),
        allowed_symbols: None,
        forbid_username: names,
        forbid_display_name: names,
        history_length: clamp(rules.history_length),
        min_age_seconds: filetime::interval_seconds(rules.min_age),
        max_age_seconds: filetime::max_age_seconds(rules.max_age),
        lockout_threshold: clamp(rules.lockout_threshold),
        source,
    }
}

/// The domain policy from the domain object's attributes.
pub fn domain_policy(domain: &DirEntry) -> Result<PasswordPolicy, ConnectorError> {
    let min_length = domain.integer("minPwdLength").ok_or_else(|| {
        ConnectorError::Denied(ErrorInfo {
            message: format!(
                "the service account cannot read the password policy on the domain object {}: \
                 grant it Read on the domain object (Authenticated Users can by default)",
                domain.dn
            ),
            directory_text: None,
        })
    })?;
    let rules = Rules {
        min_length,
        complexity: domain
            .integer("pwdProperties")
            .is_some_and(|p| p & DOMAIN_PASSWORD_COMPLEX != 0),
        history_length: domain.integer("pwdHistoryLength").unwrap_or(0),
        min_age: domain.integer("minPwdAge").unwrap_or(0),
        max_age: domain.integer("maxPwdAge").unwrap_or(0),
        lockout_threshold: domain.integer("lockoutThreshold").unwrap_or(0),
    };
    Ok(assemble(rules, format!("domain policy {}", domain.dn)))
}

/// The Password Settings Container of the domain `domain_dn`.
pub fn password_settings_container(domain_dn: &str) -> String {
    format!("CN=Password Settings Container,CN=System,{domain_dn}")
}

/// The error for a PSO the service account cannot read.
pub fn unreadable_pso(pso_dn: &str, domain_dn: Option<&str>) -> ConnectorError {
    let container = domain_dn.map_or_else(
        || "CN=Password Settings Container,CN=System,<domain>".to_string(),
        password_settings_container,
    );
    ConnectorError::Denied(ErrorInfo {
        message: format!(
            "this user's fine-grained password policy {pso_dn} cannot be read by the service \
             account, and the domain policy does not apply to this user: grant the service \
             account Read on {container}"
        ),
        directory_text: None,
    })
}

/// A PSO's policy from its attributes. `None` for the entry means the DC did not return the
/// object at all (it hides what an account may not read).
pub fn pso_policy(
    pso_dn: &str,
    pso: Option<&DirEntry>,
    domain_dn: Option<&str>,
) -> Result<PasswordPolicy, ConnectorError> {
    let Some(pso) = pso else {
        return Err(unreadable_pso(pso_dn, domain_dn));
    };
    // Without Read on the container, AD returns the object with no attributes at all.
    let Some(min_length) = pso.integer("msDS-MinimumPasswordLength") else {
        return Err(unreadable_pso(pso_dn, domain_dn));
    };
    let rules = Rules {
        min_length,
        complexity: pso
            .boolean("msDS-PasswordComplexityEnabled")
            .unwrap_or(false),
        history_length: pso.integer("msDS-PasswordHistoryLength").unwrap_or(0),
        min_age: pso.integer("msDS-MinimumPasswordAge").unwrap_or(0),
        max_age: pso.integer("msDS-MaximumPasswordAge").unwrap_or(0),
        lockout_threshold: pso.integer("msDS-LockoutThreshold").unwrap_or(0),
    };
    Ok(assemble(rules, format!("fine-grained policy {}", pso.dn)))
}

/// The policy in force for the user at `user_dn`.
pub fn effective(directory: &Directory, user_dn: &str) -> Result<EffectivePolicy, ConnectorError> {
    let root_dse = directory.root_dse(&["defaultNamingContext", "vendorName"])?;
    let dc = DcKind::from_root_dse(&root_dse);
    let domain_dn = root_dse.first("defaultNamingContext");
    // msDS-ResultantPSO is constructed; Windows computes some constructed attributes only for
    // base-scope reads, so it is read here rather than with the user search.
    let resultant = directory
        .read(user_dn, &["msDS-ResultantPSO"])?
        .and_then(|user| user.first("msDS-ResultantPSO").map(str::to_string));
    let policy = match resultant {
        Some(pso_dn) => {
            // A refusal to read it is the same missing right as an empty answer.
            let pso = match directory.read(&pso_dn, PSO_ATTRIBUTES) {
                Ok(pso) => pso,
                Err(ConnectorError::Denied(_)) => None,
                Err(other) => return Err(other),
            };
            pso_policy(&pso_dn, pso.as_ref(), domain_dn)?
        }
        None => {
            let domain_dn = domain_dn.ok_or_else(|| {
                ConnectorError::Internal(ErrorInfo {
                    message: "the domain controller's root DSE has no defaultNamingContext".into(),
                    directory_text: None,
                })
            })?;
            let domain = directory
                .read(domain_dn, DOMAIN_ATTRIBUTES)?
                .ok_or_else(|| {
                    ConnectorError::Denied(ErrorInfo {
                        message: format!(
                            "the domain object {domain_dn} cannot be read by the service account"
                        ),
                        directory_text: None,
                    })
                })?;
            domain_policy(&domain)?
        }
    };
    Ok(EffectivePolicy { policy, dc })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test DC's domain object, as read there.
    fn corp_test() -> DirEntry {
        DirEntry::new("DC=corp,DC=test")
            .with("minPwdLength", &["7"])
            .with("pwdProperties", &["1"])
            .with("pwdHistoryLength", &["24"])
            .with("minPwdAge", &["-864000000000"])
            .with("maxPwdAge", &["-36288000000000"])
            .with("lockoutThreshold", &["3"])
    }

    /// The test DC's PSO, as read there by the delegated service account.
    fn latchkey_pso() -> DirEntry {
        DirEntry::new("CN=latchkey-pso,CN=Password Settings Container,CN=System,DC=corp,DC=test")
            .with("msDS-MaximumPasswordAge", &["-36288000000000"])
            .with("msDS-MinimumPasswordAge", &["0"])
            .with("msDS-MinimumPasswordLength", &["12"])
            .with("msDS-PasswordHistoryLength", &["5"])
            .with("msDS-PasswordComplexityEnabled", &["TRUE"])
            .with("msDS-LockoutThreshold", &["0"])
    }

    #[test]
    fn the_domain_policy() {
        let policy = domain_policy(&corp_test()).unwrap();
        assert_eq!(
            policy,
            PasswordPolicy {
                min_length: 7,
                max_length: 256,
                complexity: Some(Complexity {
                    required: 3,
                    classes: vec![
                        CharClass::Uppercase,
                        CharClass::Lowercase,
                        CharClass::Digit,
                        CharClass::Symbol,
                        CharClass::OtherLetter,
                    ],
                }),
                allowed_symbols: None,
                forbid_username: true,
                forbid_display_name: true,
                history_length: 24,
                min_age_seconds: 86_400,
                max_age_seconds: Some(42 * 86_400),
                lockout_threshold: 3,
                source: "domain policy DC=corp,DC=test".into(),
            }
        );
    }

    #[test]
    fn the_name_rules_come_with_complexity() {
        let policy = domain_policy(&corp_test()).unwrap();
        assert!(policy.forbid_username && policy.forbid_display_name);
        assert!(policy.complexity.is_some());
    }

    #[test]
    fn no_complexity_no_name_rules_and_never_expiring() {
        let domain = DirEntry::new("DC=x")
            .with("minPwdLength", &["0"])
            .with("pwdProperties", &["0"])
            .with("maxPwdAge", &["-9223372036854775808"]);
        let policy = domain_policy(&domain).unwrap();
        assert_eq!(policy.complexity, None);
        assert!(!policy.forbid_username && !policy.forbid_display_name);
        assert_eq!(policy.max_age_seconds, None);
        assert_eq!((policy.min_age_seconds, policy.history_length), (0, 0));
        assert_eq!(policy.lockout_threshold, 0);
    }

    #[test]
    fn an_unreadable_domain_object_is_a_denial() {
        assert!(matches!(
            domain_policy(&DirEntry::new("DC=x")),
            Err(ConnectorError::Denied(_))
        ));
    }

    #[test]
    fn the_pso() {
        let policy = pso_policy(
            &latchkey_pso().dn,
            Some(&latchkey_pso()),
            Some("DC=corp,DC=test"),
        )
        .unwrap();
        assert_eq!(
            (
                policy.min_length,
                policy.history_length,
                policy.min_age_seconds,
                policy.max_age_seconds,
                policy.lockout_threshold
            ),
            (12, 5, 0, Some(42 * 86_400), 0)
        );
        assert_eq!(policy.complexity.map(|c| c.required), Some(3));
        assert_eq!(
            policy.source,
            "fine-grained policy CN=latchkey-pso,CN=Password Settings Container,CN=System,DC=corp,DC=test"
        );
    }

    #[test]
    fn a_pso_read_without_rights_is_a_denial_naming_the_container() {
        let dn = latchkey_pso().dn;
        // What svc-noreset gets on the test DC: the DN, no attributes.
        let bare = DirEntry::new(dn.clone());
        for pso in [Some(&bare), None] {
            let Err(ConnectorError::Denied(info)) = pso_policy(&dn, pso, Some("DC=corp,DC=test"))
            else {
                panic!("must be denied")
            };
            assert!(
                info.message.contains(
                    "grant the service account Read on CN=Password Settings \
                     Container,CN=System,DC=corp,DC=test"
                ),
                "{}",
                info.message
            );
        }
    }

    #[test]
    fn the_dc_kind_comes_from_the_vendor() {
        let samba = DirEntry::new("").with("vendorName", &["Samba Team (https://www.samba.org)"]);
        assert_eq!(DcKind::from_root_dse(&samba), DcKind::Samba);
        assert_eq!(DcKind::from_root_dse(&DirEntry::new("")), DcKind::Windows);
    }
}
