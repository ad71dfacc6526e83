//! Checking a candidate password against a [`PasswordPolicy`], with Active Directory's rules
//! (MS-SAMR 3.1.1.7.2) as the model: length in Unicode scalar values, character classes, the
//! account name and display-name tokens, and Entra ID's allowed-character rule.
//!
//! Violations name the rule and never echo any part of the password.

use crate::{Account, CharClass, PasswordPolicy, Violation};

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

/// Which of the five classes occur in `password`.
pub fn classes_present(password: &str) -> [bool; 5] {
    let mut present = [false; 5];
    for c in password.chars() {
        present[class_of(c) as usize] = true;
    }
    present
}

/// The display-name tokens MS-SAMR forbids: split on space , . tab - _ #, longer than 2.
pub fn display_name_tokens(display_name: &str) -> impl Iterator<Item = &str> {
    display_name
        .split([' ', ',', '.', '\t', '-', '_', '#'])
        .filter(|token| token.chars().count() > 2)
}

/// Whether `haystack` contains `needle`, ignoring case.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Whether `c` is accepted under an allowed-symbols rule: ASCII letters, digits, or one of
/// `symbols`.
fn allowed(c: char, symbols: &str) -> bool {
    c.is_ascii_alphanumeric() || symbols.contains(c)
}

/// Every way `password` breaks `policy` for `account`; empty when it satisfies it. History and
/// minimum age need the directory's state and are not checked here.
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
        let present = classes_present(password);
        let found = rule
            .classes
            .iter()
            .filter(|class| present[**class as usize])
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

/// Active Directory's default domain policy as Samba provisions it: 7 characters, complexity
/// (3 of 5 classes), no account name or display-name tokens, 24 remembered, 1 day minimum age,
/// 42 days maximum.
pub fn ad_default_policy() -> PasswordPolicy {
    PasswordPolicy {
        min_length: 7,
        max_length: 256,
        complexity: Some(crate::Complexity {
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
        source: "Active Directory default domain policy".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
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

    #[test]
    fn a_strong_password_passes() {
        assert!(check("Tr0ub4dor&3x", &account(), &ad_default_policy()).is_empty());
    }

    #[test]
    fn each_rule_is_named() {
        let policy = ad_default_policy();
        assert_eq!(
            check("Ab1!", &account(), &policy),
            vec![Violation::TooShort(7)]
        );
        assert_eq!(
            check("abcdefgh", &account(), &policy),
            vec![Violation::NotComplex(3)]
        );
        // "jdoe" also contains "Doe", a token of the display name: both rules are broken.
        assert_eq!(
            check("xxJDOE12!", &account(), &policy),
            vec![
                Violation::ContainsAccountName,
                Violation::ContainsDisplayName
            ]
        );
        let mut other = account();
        other.username = "mallory".into();
        assert_eq!(
            check("xxMALLORY12!", &other, &policy),
            vec![Violation::ContainsAccountName]
        );
        // "Smith" is a token of "John Q. Doe-Smith"; "Q." is too short to count.
        assert_eq!(
            check("smith-99-Q", &account(), &policy),
            vec![Violation::ContainsDisplayName]
        );
        let long = "Aa1!".repeat(65);
        assert_eq!(
            check(&long, &account(), &policy),
            vec![Violation::TooLong(256)]
        );
    }

    #[test]
    fn all_violations_come_together() {
        let v = check("jdoe", &account(), &ad_default_policy());
        assert!(v.contains(&Violation::TooShort(7)));
        assert!(v.contains(&Violation::NotComplex(3)));
        assert!(v.contains(&Violation::ContainsAccountName));
    }

    #[test]
    fn unicode_letters_without_case_are_the_fifth_class() {
        assert_eq!(class_of('漢'), CharClass::OtherLetter);
        assert_eq!(class_of('É'), CharClass::Uppercase);
        assert_eq!(class_of('ß'), CharClass::Lowercase);
        assert_eq!(class_of(' '), CharClass::Symbol);
        // lower + other-letter + digit = 3 classes.
        assert!(check("abc漢字12", &account(), &ad_default_policy()).is_empty());
    }

    #[test]
    fn short_usernames_are_not_checked() {
        let mut short = account();
        short.username = "jd".into();
        assert!(check("Xjd12345!", &short, &ad_default_policy()).is_empty());
    }

    #[test]
    fn allowed_symbols_reject_other_characters() {
        let mut policy = ad_default_policy();
        policy.allowed_symbols = Some("!@#".into());
        assert!(check("Passw0rd!x", &account(), &policy).is_empty());
        assert_eq!(
            check("Passw0rd€x", &account(), &policy),
            vec![Violation::InvalidCharacter]
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut policy = ad_default_policy();
        policy.complexity = None;
        assert_eq!(check("ééééééé", &account(), &policy), vec![]);
    }
}
