//! Passwords built from a connector's own policy to probe its `check-password`: one valid, and
//! one breaking each rule the policy states (too short, too long, not complex, containing the
//! account name or a display-name token), each verified with the host's own check
//! ([`crate::workflow::check`]) to break that rule.
//!
//! It owns building them. Passwords stay [`SecretString`]s; what a candidate says about itself
//! (its [`Candidate::description`]) names lengths and rules, never characters.

use rand_core::{OsRng, RngCore as _};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::runtime::wit::types::{Account, CharClass, PasswordPolicy, Violation};
use crate::workflow::check::{check, display_name_tokens};
use crate::workflow::generator::{self, GeneratorError};

/// The most characters the suite will send (a max-length above it is not probed).
pub const LONGEST: u32 = 1024;

/// A rule a candidate breaks on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    TooShort,
    TooLong,
    NotComplex,
    ContainsAccountName,
    ContainsDisplayName,
}

impl Rule {
    pub const ALL: [Rule; 5] = [
        Rule::TooShort,
        Rule::TooLong,
        Rule::NotComplex,
        Rule::ContainsAccountName,
        Rule::ContainsDisplayName,
    ];

    /// The rule's name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Rule::TooShort => "too short",
            Rule::TooLong => "too long",
            Rule::NotComplex => "not complex",
            Rule::ContainsAccountName => "contains the account name",
            Rule::ContainsDisplayName => "contains the display name",
        }
    }

    /// Whether `violation` is this rule's.
    pub fn reported_by(self, violation: &Violation) -> bool {
        matches!(
            (self, violation),
            (Rule::TooShort, Violation::TooShort(_))
                | (Rule::TooLong, Violation::TooLong(_))
                | (Rule::NotComplex, Violation::NotComplex(_))
                | (Rule::ContainsAccountName, Violation::ContainsAccountName)
                | (Rule::ContainsDisplayName, Violation::ContainsDisplayName)
        )
    }
}

/// A password breaking one rule of the policy.
pub struct Candidate {
    pub rule: Rule,
    pub password: SecretString,
    /// What it is, for people ("a password of 11 characters (min-length 12)").
    pub description: String,
}

/// A violation as the table shows it (`too-short(12)`).
pub fn violation_text(violation: &Violation) -> String {
    match violation {
        Violation::TooShort(n) => format!("too-short({n})"),
        Violation::TooLong(n) => format!("too-long({n})"),
        Violation::NotComplex(n) => format!("not-complex({n})"),
        Violation::ContainsAccountName => "contains-account-name".into(),
        Violation::ContainsDisplayName => "contains-display-name".into(),
        Violation::InHistory => "in-history".into(),
        Violation::TooYoung(s) => format!("too-young({s})"),
        Violation::InvalidCharacter => "invalid-character".into(),
        Violation::BannedWord => "banned-word".into(),
        Violation::RejectedByDirectory(text) => format!("rejected-by-directory({text})"),
    }
}

/// Violations as the table shows them.
pub fn violations_text(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(violation_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A password satisfying `policy` for `account`.
pub fn valid(policy: &PasswordPolicy, account: &Account) -> Result<SecretString, GeneratorError> {
    generator::generate(policy, account, None)
}

/// The candidate breaking `rule`, or why the policy gives no such rule to break.
pub fn breaking(
    rule: Rule,
    policy: &PasswordPolicy,
    account: &Account,
) -> Result<Candidate, String> {
    let (min, max) = (policy.min_length, policy.max_length);
    let (password, description) = match rule {
        Rule::TooShort => {
            if min < 2 {
                return Err(format!(
                    "min-length is {min}: there is no shorter password to try"
                ));
            }
            let length = min - 1;
            (
                exactly(policy, account, length)?,
                format!("a password of {length} characters (min-length {min})"),
            )
        }
        Rule::TooLong => {
            if max >= LONGEST {
                return Err(format!(
                    "max-length is {max}: the suite tries lengths below {LONGEST} only"
                ));
            }
            let length = max + 1;
            (
                exactly(policy, account, length)?,
                format!("a password of {length} characters (max-length {max})"),
            )
        }
        Rule::NotComplex => {
            let Some(rule) = &policy.complexity else {
                return Err("the policy has no complexity rule".into());
            };
            // One class only, and one the rule counts as fewer than it requires.
            let choice = [
                (
                    CharClass::Lowercase,
                    b"abcdefghijklmnopqrstuvwxyz".as_slice(),
                    "lowercase letters",
                ),
                (
                    CharClass::Uppercase,
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ".as_slice(),
                    "uppercase letters",
                ),
                (CharClass::Digit, b"0123456789".as_slice(), "digits"),
            ]
            .into_iter()
            .find(|(class, _, _)| {
                usize::from(rule.required) > usize::from(rule.classes.contains(class))
            });
            let Some((_, alphabet, what)) = choice else {
                return Err(format!(
                    "the complexity rule requires {} of its classes: one class meets it",
                    rule.required
                ));
            };
            let length = 16.clamp(min.max(1), max.max(1));
            (
                drawn(alphabet, length as usize, |p| {
                    check(p, account, policy) == [Violation::NotComplex(rule.required)]
                })
                .ok_or("no draw broke only the complexity rule")?,
                format!(
                    "a password of {length} {what} only (complexity: {} of {} classes)",
                    rule.required,
                    rule.classes.len()
                ),
            )
        }
        Rule::ContainsAccountName => {
            if !policy.forbid_username {
                return Err("the policy does not forbid the account name".into());
            }
            if account.username.chars().count() <= 2 {
                return Err("the account name is too short for the rule to apply".into());
            }
            (
                embedding(policy, account, &account.username)?,
                "a valid password with the account name inside".to_string(),
            )
        }
        Rule::ContainsDisplayName => {
            if !policy.forbid_display_name {
                return Err("the policy does not forbid the display name".into());
            }
            let token = account
                .display_name
                .as_deref()
                .and_then(|name| display_name_tokens(name).next())
                .ok_or("the account has no display-name token longer than 2 characters")?;
            (
                embedding(policy, account, token)?,
                "a valid password with a token of the display name inside".to_string(),
            )
        }
    };
    let broken = check(password.expose_secret(), account, policy);
    if !broken.iter().any(|v| rule.reported_by(v)) {
        return Err(format!(
            "no candidate breaking the rule could be built ({})",
            violations_text(&broken)
        ));
    }
    Ok(Candidate {
        rule,
        password,
        description,
    })
}

/// A password of exactly `length` characters satisfying every other rule where it can.
fn exactly(
    policy: &PasswordPolicy,
    account: &Account,
    length: u32,
) -> Result<SecretString, String> {
    let exact = PasswordPolicy {
        min_length: length,
        max_length: length,
        ..policy.clone()
    };
    match generator::generate(&exact, account, None) {
        Ok(password) => Ok(password),
        // Too short for the complexity rule: the characters of a valid one, cut.
        Err(_) => {
            let long = valid(policy, account).map_err(|e| e.to_string())?;
            let mut text = Zeroizing::new(long.expose_secret().to_string());
            while (text.chars().count() as u32) < length {
                let again = Zeroizing::new(text.to_string());
                text.push_str(&again);
            }
            let cut: String = text.chars().take(length as usize).collect();
            Ok(SecretString::from(cut))
        }
    }
}

/// A valid password with `needle` put in its middle, within the maximum length.
fn embedding(
    policy: &PasswordPolicy,
    account: &Account,
    needle: &str,
) -> Result<SecretString, String> {
    let extra = needle.chars().count() as u32;
    let length = policy
        .min_length
        .max(12)
        .min(policy.max_length.saturating_sub(extra))
        .max(1);
    let base = generator::generate(policy, account, Some(length))
        .or_else(|_| valid(policy, account))
        .map_err(|e| e.to_string())?;
    let base = base.expose_secret();
    let middle = base
        .char_indices()
        .nth(base.chars().count() / 2)
        .map_or(base.len(), |(i, _)| i);
    let mut text = String::with_capacity(base.len() + needle.len());
    text.push_str(&base[..middle]);
    text.push_str(needle);
    text.push_str(&base[middle..]);
    Ok(SecretString::from(text))
}

/// `length` characters drawn from `alphabet` until `fits` accepts them (at most 100 draws).
fn drawn(alphabet: &[u8], length: usize, fits: impl Fn(&str) -> bool) -> Option<SecretString> {
    for _ in 0..100 {
        let text: String = (0..length)
            .map(|_| char::from(alphabet[OsRng.next_u32() as usize % alphabet.len()]))
            .collect();
        if fits(&text) {
            return Some(SecretString::from(text));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wit::types::Complexity;

    fn account() -> Account {
        Account {
            id: "id-jdoe".into(),
            username: "jdoe".into(),
            principal_name: None,
            display_name: Some("Jane Doe-Smith".into()),
            email: None,
            location: None,
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        }
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            max_length: 64,
            complexity: Some(Complexity {
                required: 3,
                classes: vec![
                    CharClass::Uppercase,
                    CharClass::Lowercase,
                    CharClass::Digit,
                    CharClass::Symbol,
                ],
            }),
            allowed_symbols: None,
            forbid_username: true,
            forbid_display_name: true,
            history_length: 0,
            min_age_seconds: 0,
            max_age_seconds: None,
            lockout_threshold: 0,
            source: "test".into(),
        }
    }

    #[test]
    fn each_candidate_breaks_its_rule_and_only_names_lengths() {
        let (policy, account) = (policy(), account());
        for rule in Rule::ALL {
            let candidate = breaking(rule, &policy, &account).unwrap();
            let violations = check(candidate.password.expose_secret(), &account, &policy);
            assert!(
                violations.iter().any(|v| rule.reported_by(v)),
                "{rule:?}: {violations:?}"
            );
            assert!(
                !candidate
                    .description
                    .contains(candidate.password.expose_secret())
            );
        }
        let short = breaking(Rule::TooShort, &policy, &account).unwrap();
        assert_eq!(short.password.expose_secret().chars().count(), 7);
        let long = breaking(Rule::TooLong, &policy, &account).unwrap();
        assert_eq!(long.password.expose_secret().chars().count(), 65);
        assert!(
            check(
                valid(&policy, &account).unwrap().expose_secret(),
                &account,
                &policy
            )
            .is_empty()
        );
    }

    #[test]
    fn rules_the_policy_does_not_state_are_not_probed() {
        let account = account();
        let lax = PasswordPolicy {
            min_length: 1,
            max_length: 4096,
            complexity: None,
            forbid_username: false,
            forbid_display_name: false,
            ..policy()
        };
        for rule in Rule::ALL {
            assert!(breaking(rule, &lax, &account).is_err(), "{rule:?}");
        }
        // One class required, and lowercase counts: an uppercase-only password breaks it.
        let one_of = PasswordPolicy {
            complexity: Some(Complexity {
                required: 1,
                classes: vec![CharClass::Lowercase],
            }),
            ..policy()
        };
        assert!(breaking(Rule::NotComplex, &one_of, &account).is_ok());
    }
}
