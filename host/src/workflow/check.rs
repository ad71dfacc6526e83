//! Checking a candidate against a [`PasswordPolicy`] on the host, with the semantics of the
//! SDK's `complexity::check` (MS-SAMR 3.1.1.7.2: length in Unicode scalar values, character
//! classes, the account name and display-name tokens, Entra's allowed characters), written
//! against the host's generated types so the generator's output is verified independently of
//! any plugin.
//!
//! It owns these rules. It must never echo any part of the password: violations name rules.

use zeroize::Zeroizing;

use crate::runtime::wit::types::{Account, CharClass, PasswordPolicy, Violation};

/// The class MS-SAMR counts a character in.
pub fn class_of(c: char) -> CharClass {
    if c.is_uppercase() {
        CharClass::Uppercase
    } else if c.is_lowercase() {
        CharClass::Lowercase
    } else if c.is_ascii_digit() {
        CharClass::Digit
    } else if c.is_alphabetic() {
        CharClass::OtherLetter
    } else {
        CharClass::Symbol
    }
}

/// The display-name tokens MS-SAMR forbids: split on space , . tab - _ #, longer than 2.
pub fn display_name_tokens(display_name: &str) -> impl Iterator<Item = &str> {
    display_name
        .split([' ', ',', '.', '\t', '-', '_', '#'])
        .filter(|token| token.chars().count() > 2)
}

/// Whether `password` contains `needle`, ignoring case (the lowered copy is zeroized).
fn contains_ignoring_case(password: &str, needle: &str) -> bool {
    let lowered = Zeroizing::new(password.to_lowercase());
    lowered.contains(&needle.to_lowercase())
}

/// Whether `c` is accepted under an allowed-symbols rule: ASCII letters, digits, or a symbol.
fn allowed(c: char, symbols: &str) -> bool {
    c.is_ascii_alphanumeric() || symbols.contains(c)
}

/// Every way `password` breaks `policy` for `account`; empty when it satisfies it. History and
/// minimum age need state and are checked elsewhere.
pub fn check(password: &str, account: &Account, policy: &PasswordPolicy) -> Vec<Violation> {
    let mut violations = Vec::new();
    let length = password.chars().count();
    if length < policy.min_length as usize {
        violations.push(Violation::TooShort(policy.min_length));
    }
    if length > policy.max_length as usize {
        violations.push(Violation::TooLong(policy.max_length));
    }
    if let Some(rule) = &policy.complexity {
        let found = rule
            .classes
            .iter()
            .enumerate()
            // A class listed twice counts once.
            .filter(|(i, class)| !rule.classes[..*i].contains(class))
            .filter(|(_, class)| password.chars().any(|c| class_of(c) == **class))
            .count();
        if found < rule.required as usize {
            violations.push(Violation::NotComplex(rule.required));
        }
    }
    if let Some(symbols) = &policy.allowed_symbols
        && !password.chars().all(|c| allowed(c, symbols))
    {
        violations.push(Violation::InvalidCharacter);
    }
    if policy.forbid_username
        && account.username.chars().count() > 2
        && contains_ignoring_case(password, &account.username)
    {
        violations.push(Violation::ContainsAccountName);
    }
    if policy.forbid_display_name
        && let Some(display_name) = &account.display_name
        && display_name_tokens(display_name).any(|t| contains_ignoring_case(password, t))
    {
        violations.push(Violation::ContainsDisplayName);
    }
    violations
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runtime::wit::types::Complexity;

    pub(crate) fn account() -> Account {
        Account {
            id: "1".into(),
            username: "jdoe".into(),
            principal_name: None,
            display_name: Some("John Q. Doe-Smith".into()),
            email: None,
            location: None,
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        }
    }

    /// Active Directory's default domain policy as Samba provisions it.
    pub(crate) fn ad_default() -> PasswordPolicy {
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
            lockout_threshold: 0,
            source: "Active Directory default domain policy".into(),
        }
    }

    #[test]
    fn a_strong_password_passes() {
        assert!(check("Tr0ub4dor&3x", &account(), &ad_default()).is_empty());
    }

    #[test]
    fn each_rule_is_named() {
        let policy = ad_default();
        assert_eq!(
            check("Ab1!", &account(), &policy),
            vec![Violation::TooShort(7)]
        );
        assert_eq!(
            check("abcdefgh", &account(), &policy),
            vec![Violation::NotComplex(3)]
        );
        assert_eq!(
            check("xxJDOE12!", &account(), &policy),
            vec![
                Violation::ContainsAccountName,
                Violation::ContainsDisplayName
            ]
        );
        assert_eq!(
            check("smith-99-Q", &account(), &policy),
            vec![Violation::ContainsDisplayName]
        );
        assert_eq!(
            check(&"Aa1!".repeat(65), &account(), &policy),
            vec![Violation::TooLong(256)]
        );
        let mut entra = policy.clone();
        entra.allowed_symbols = Some("!@#".into());
        assert_eq!(
            check("Passw0rd€x", &account(), &entra),
            vec![Violation::InvalidCharacter]
        );
    }

    #[test]
    fn classes_follow_ms_samr() {
        assert_eq!(class_of('漢'), CharClass::OtherLetter);
        assert_eq!(class_of('É'), CharClass::Uppercase);
        assert_eq!(class_of('ß'), CharClass::Lowercase);
        assert_eq!(class_of(' '), CharClass::Symbol);
        assert!(check("abc漢字12", &account(), &ad_default()).is_empty());
        let mut short = account();
        short.username = "jd".into();
        assert!(check("Xjd12345!", &short, &ad_default()).is_empty());
    }
}
