//! The password policy Entra ID applies to one user.
//!
//! A cloud-only user gets Entra ID's cloud policy, which is fixed by Microsoft, not configured
//! per tenant: 8 to 256 characters; 3 of 4 classes (lowercase, uppercase, digit, symbol);
//! only ASCII letters, digits, the symbols in [`ENTRA_SYMBOLS`] and space; the current
//! password may not be reused; smart lockout after 10 failed sign-ins (its default); and the
//! banned-password list, which Graph does not publish, so only a refused reset reveals it.
//! The user's `passwordPolicies` can loosen it: `DisableStrongPassword` drops the complexity
//! rule (the length and the allowed characters stay), `DisablePasswordExpiration` the expiry.
//! Otherwise passwords expire after 90 days, the cloud default this connector assumes (the
//! tenant's own validity period is a domain setting it does not read).
//!
//! A user synced from on-premises (`onPremisesSyncEnabled`) gets its password from Active
//! Directory through password hash sync, and the cloud policy does not apply to it: the
//! on-premises connector's policy is the one that counts, so this one restricts nothing.

use latchkey_plugin_sdk::{CharClass, Complexity, ConnectorError, PasswordPolicy};

use crate::account::{self, GraphUser};

/// The symbols Entra ID accepts besides ASCII letters and digits, and the space.
pub const ENTRA_SYMBOLS: &str = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ";

/// The cloud policy's length limits.
pub const MIN_LENGTH: u32 = 8;
pub const MAX_LENGTH: u32 = 256;

/// Smart lockout's default threshold of failed sign-ins.
pub const SMART_LOCKOUT_THRESHOLD: u32 = 10;

/// How long a cloud password lives unless `DisablePasswordExpiration` is set.
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 90 * 86_400;

/// The user properties a policy is read from.
pub const POLICY_PROPERTIES: &str = "passwordPolicies,onPremisesSyncEnabled";

/// The flags of a user's `passwordPolicies` ("DisablePasswordExpiration, DisableStrongPassword").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordPolicies {
    pub disable_strong_password: bool,
    pub disable_password_expiration: bool,
}

impl PasswordPolicies {
    /// Read Graph's comma-separated list (case and spaces as they come; unknown flags ignored).
    pub fn parse(text: Option<&str>) -> Self {
        let mut flags = Self::default();
        for flag in text.unwrap_or_default().split(',').map(str::trim) {
            if flag.eq_ignore_ascii_case("DisableStrongPassword") {
                flags.disable_strong_password = true;
            } else if flag.eq_ignore_ascii_case("DisablePasswordExpiration") {
                flags.disable_password_expiration = true;
            }
        }
        flags
    }
}

/// Entra ID's cloud policy for a user with these `passwordPolicies`.
pub fn cloud(flags: PasswordPolicies) -> PasswordPolicy {
    PasswordPolicy {
        min_length: MIN_LENGTH,
        max_length: MAX_LENGTH,
        complexity: (!flags.disable_strong_password).then(|| Complexity {
            required: 3,
            classes: vec![
                CharClass::Uppercase,
                CharClass::Lowercase,
                CharClass::Digit,
                CharClass::Symbol,
            ],
        }),
        allowed_symbols: Some(ENTRA_SYMBOLS.to_string()),
        forbid_username: false,
        forbid_display_name: false,
        // The current password may not be set again.
        history_length: 1,
        min_age_seconds: 0,
        max_age_seconds: (!flags.disable_password_expiration).then_some(DEFAULT_MAX_AGE_SECONDS),
        lockout_threshold: SMART_LOCKOUT_THRESHOLD,
        source: if flags.disable_strong_password {
            "Entra ID cloud password policy, without its complexity rule for this user \
             (DisableStrongPassword)"
                .to_string()
        } else {
            "Entra ID cloud password policy".to_string()
        },
    }
}

/// The policy of a user synced from on-premises: none of Entra ID's rules apply to its
/// password. Smart lockout still guards its cloud sign-ins, so the threshold is kept.
pub fn synced() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 0,
        max_length: MAX_LENGTH,
        complexity: None,
        allowed_symbols: None,
        forbid_username: false,
        forbid_display_name: false,
        history_length: 0,
        min_age_seconds: 0,
        max_age_seconds: None,
        lockout_threshold: SMART_LOCKOUT_THRESHOLD,
        source: "the on-premises Active Directory's policy applies: this account is synced to \
                 Entra ID by password hash sync, and Entra ID's cloud policy does not apply to it"
            .to_string(),
    }
}

/// The policy for a user as Graph has it.
pub fn for_user(user: &GraphUser) -> PasswordPolicy {
    if user.synced() {
        synced()
    } else {
        cloud(PasswordPolicies::parse(user.password_policies.as_deref()))
    }
}

/// The policy in force for the user `id`, read from Graph now.
pub fn read(id: &str) -> Result<PasswordPolicy, ConnectorError> {
    Ok(for_user(&account::read(id, POLICY_PROPERTIES)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(policies: Option<&str>, synced: Option<bool>) -> GraphUser {
        GraphUser {
            password_policies: policies.map(str::to_string),
            on_premises_sync_enabled: synced,
            ..GraphUser::default()
        }
    }

    #[test]
    fn password_policies_flags() {
        assert_eq!(PasswordPolicies::parse(None), PasswordPolicies::default());
        assert_eq!(
            PasswordPolicies::parse(Some("None")),
            PasswordPolicies::default()
        );
        assert_eq!(
            PasswordPolicies::parse(Some("DisablePasswordExpiration, DisableStrongPassword")),
            PasswordPolicies {
                disable_strong_password: true,
                disable_password_expiration: true
            }
        );
        assert_eq!(
            PasswordPolicies::parse(Some("disablestrongpassword")),
            PasswordPolicies {
                disable_strong_password: true,
                disable_password_expiration: false
            }
        );
    }

    #[test]
    fn the_cloud_policy() {
        let policy = for_user(&user(None, None));
        assert_eq!(
            policy,
            PasswordPolicy {
                min_length: 8,
                max_length: 256,
                complexity: Some(Complexity {
                    required: 3,
                    classes: vec![
                        CharClass::Uppercase,
                        CharClass::Lowercase,
                        CharClass::Digit,
                        CharClass::Symbol,
                    ],
                }),
                allowed_symbols: Some("@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ".into()),
                forbid_username: false,
                forbid_display_name: false,
                history_length: 1,
                min_age_seconds: 0,
                max_age_seconds: Some(90 * 86_400),
                lockout_threshold: 10,
                source: "Entra ID cloud password policy".into(),
            }
        );
        assert!(latchkey_plugin_sdk::policy::satisfiable(&policy));
        // onPremisesSyncEnabled false or null is cloud-only.
        assert_eq!(for_user(&user(None, Some(false))), policy);
    }

    #[test]
    fn disable_strong_password_drops_complexity_only() {
        let policy = for_user(&user(Some("DisableStrongPassword"), None));
        assert_eq!(policy.complexity, None);
        assert_eq!((policy.min_length, policy.max_length), (8, 256));
        assert_eq!(policy.allowed_symbols.as_deref(), Some(ENTRA_SYMBOLS));
        assert_eq!(policy.max_age_seconds, Some(90 * 86_400));
        assert!(policy.source.contains("DisableStrongPassword"));
    }

    #[test]
    fn disable_password_expiration_drops_the_maximum_age() {
        let policy = for_user(&user(Some("DisablePasswordExpiration"), Some(false)));
        assert_eq!(policy.max_age_seconds, None);
        assert!(policy.complexity.is_some());
    }

    #[test]
    fn a_synced_user_gets_no_cloud_rules() {
        let policy = for_user(&user(Some("DisableStrongPassword"), Some(true)));
        assert_eq!(policy, synced());
        assert_eq!((policy.min_length, policy.max_length), (0, 256));
        assert_eq!(policy.complexity, None);
        assert_eq!(policy.allowed_symbols, None);
        assert_eq!(policy.history_length, 0);
        assert_eq!(policy.max_age_seconds, None);
        assert!(policy.source.contains("on-premises"));
        // Merged with the on-premises policy, it changes none of its rules.
        let ad = latchkey_plugin_sdk::complexity::ad_default_policy();
        let merged = latchkey_plugin_sdk::policy::merge(&ad, &policy);
        assert_eq!(
            (merged.min_length, merged.max_length, merged.complexity),
            (ad.min_length, ad.max_length, ad.complexity)
        );
        assert_eq!(merged.allowed_symbols, None);
    }
}
