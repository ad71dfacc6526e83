//! `check-password`: every rule of Entra ID's cloud policy a candidate breaks, at once.
//!
//! It runs as the administrator types, so it avoids Graph where it can:
//! - an account synced from on-premises (by the account's own flag) is accepted up to
//!   [`policy::MAX_LENGTH`] characters: its password is set on-premises and checked by that
//!   connector;
//! - a cloud-only account is checked against the full cloud policy, without Graph;
//! - only when that finds the candidate not complex enough does it ask Graph for the user's
//!   `passwordPolicies`, because `DisableStrongPassword` (readable nowhere else) waives exactly
//!   that rule; the check is then repeated against the user's actual policy. If Graph cannot
//!   answer, the stricter verdict stands: Latchkey may refuse what Entra ID would accept, never
//!   the other way round.
//!
//! The banned-password list is not published, so a password it holds passes here and is
//! refused by the reset.

use latchkey_plugin_sdk::log::{self, Level};
use latchkey_plugin_sdk::{Account, PasswordPolicy, Violation, complexity, error_message};

use crate::account;
use crate::policy::{self, PasswordPolicies};

/// What can be decided without Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLook {
    Accepted,
    Refused(Vec<Violation>),
    /// Refused by the full cloud policy, partly for complexity, which the user's own
    /// `passwordPolicies` may waive.
    AskUserPolicy(Vec<Violation>),
}

/// The violations of `candidate` under `policy` (the SDK's checks: length in characters,
/// classes, allowed characters).
pub fn violations(candidate: &str, account: &Account, policy: &PasswordPolicy) -> Vec<Violation> {
    complexity::check(candidate, account, policy)
}

/// The verdict from the account's flags and the full cloud policy.
pub fn first_look(candidate: &str, account: &Account) -> FirstLook {
    if account.synced_from_on_premises {
        let found = violations(candidate, account, &policy::synced());
        return if found.is_empty() {
            FirstLook::Accepted
        } else {
            FirstLook::Refused(found)
        };
    }
    let found = violations(
        candidate,
        account,
        &policy::cloud(PasswordPolicies::default()),
    );
    if found.is_empty() {
        FirstLook::Accepted
    } else if found.iter().any(|v| matches!(v, Violation::NotComplex(_))) {
        FirstLook::AskUserPolicy(found)
    } else {
        FirstLook::Refused(found)
    }
}

fn verdict(found: Vec<Violation>) -> Result<(), Vec<Violation>> {
    if found.is_empty() { Ok(()) } else { Err(found) }
}

/// Check `candidate` for `account`, asking Graph only when the user's own policy may matter.
pub fn check(candidate: &str, account: &Account) -> Result<(), Vec<Violation>> {
    match first_look(candidate, account) {
        FirstLook::Accepted => Ok(()),
        FirstLook::Refused(found) => Err(found),
        FirstLook::AskUserPolicy(strict) => {
            match account::object_id(account).and_then(|id| policy::read(&id)) {
                Ok(policy) => verdict(violations(candidate, account, &policy)),
                Err(error) => {
                    log::log(
                        Level::Warn,
                        &format!(
                            "the user's password policy could not be read, so the full cloud \
                             policy was applied: {}",
                            error_message(&error)
                        ),
                    );
                    Err(strict)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud_user() -> Account {
        Account {
            id: "9c8b66a4-19ec-497c-b0be-c764ff1c6391".into(),
            username: "alice".into(),
            principal_name: Some("alice@corp.test".into()),
            display_name: Some("Alice Example".into()),
            email: None,
            location: Some("Entra ID".into()),
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        }
    }

    fn synced_user() -> Account {
        Account {
            synced_from_on_premises: true,
            ..cloud_user()
        }
    }

    fn strict(candidate: &str) -> Vec<Violation> {
        violations(
            candidate,
            &cloud_user(),
            &policy::cloud(PasswordPolicies::default()),
        )
    }

    #[test]
    fn a_strong_password_passes() {
        assert_eq!(
            first_look("Tr0ub4dor&3x", &cloud_user()),
            FirstLook::Accepted
        );
        // Space and every listed symbol are accepted characters.
        assert_eq!(
            first_look(
                "Correct horse 9 @#$%^&*-_!+=[]{}|\\:',.?/`~\"();<>",
                &cloud_user()
            ),
            FirstLook::Accepted
        );
        // Entra has no name rules: the username is allowed.
        assert_eq!(
            first_look("alice-Example-1", &cloud_user()),
            FirstLook::Accepted
        );
    }

    #[test]
    fn each_rule_is_named_and_all_come_together() {
        assert_eq!(strict("Ab1!"), vec![Violation::TooShort(8)]);
        assert_eq!(strict(&"Aa1!".repeat(65)), vec![Violation::TooLong(256)]);
        assert_eq!(strict("abcdefgh"), vec![Violation::NotComplex(3)]);
        assert_eq!(strict("Abcdefg1€"), vec![Violation::InvalidCharacter]);
        assert_eq!(strict("Pässwort12"), vec![Violation::InvalidCharacter]);
        assert_eq!(
            strict("ab€"),
            vec![
                Violation::TooShort(8),
                Violation::NotComplex(3),
                Violation::InvalidCharacter
            ]
        );
    }

    #[test]
    fn only_a_complexity_failure_asks_graph() {
        assert_eq!(
            first_look("Ab1!", &cloud_user()),
            FirstLook::Refused(vec![Violation::TooShort(8)])
        );
        assert_eq!(
            first_look("abcdefgh", &cloud_user()),
            FirstLook::AskUserPolicy(vec![Violation::NotComplex(3)])
        );
        assert_eq!(
            first_look("abc", &cloud_user()),
            FirstLook::AskUserPolicy(vec![Violation::TooShort(8), Violation::NotComplex(3)])
        );
    }

    #[test]
    fn the_users_own_policy_decides_complexity() {
        let weak = policy::cloud(PasswordPolicies {
            disable_strong_password: true,
            disable_password_expiration: false,
        });
        assert!(violations("abcdefgh", &cloud_user(), &weak).is_empty());
        assert_eq!(
            violations("abc", &cloud_user(), &weak),
            vec![Violation::TooShort(8)]
        );
        assert_eq!(
            violations("abcdefg€", &cloud_user(), &weak),
            vec![Violation::InvalidCharacter]
        );
        assert!(violations("x", &synced_user(), &policy::synced()).is_empty());
    }

    #[test]
    fn a_synced_account_is_accepted_without_graph() {
        for candidate in ["", "a", "abcdefgh", "€€€", &"x".repeat(256)] {
            assert_eq!(first_look(candidate, &synced_user()), FirstLook::Accepted);
        }
        // The one rule it shares with its get-policy: Latchkey's 256 characters.
        assert_eq!(
            first_look(&"x".repeat(257), &synced_user()),
            FirstLook::Refused(vec![Violation::TooLong(256)])
        );
    }
}
