//! `check-password`: the violations a DC would refuse a candidate for, all at once, so that
//! Latchkey refuses exactly what the DC refuses.
//!
//! The SDK's `complexity::check` does the account-name and display-name rules. Length and
//! character classes are counted here the way the DCs count them, which differs from the
//! SDK's general-purpose classes in ways a test against a real DC shows:
//! - length is in UTF-16 code units (Samba's `strlen_m`, Windows' UNICODE_STRING): an emoji
//!   counts twice. Seen on Samba 4.17: `Ab1!😀😀` (6 characters, 8 units) passes a minimum of 7.
//! - only ASCII punctuation is a symbol (`~!@#$%^&*_-+=`|\(){}[]:;"'<>,.?/`); a space counts
//!   in no class. Seen on Samba 4.17: `abcDEF gh` is refused as not complex.
//! - non-ASCII characters that are neither upper- nor lowercase: Windows counts only letters
//!   (its fifth class, e.g. CJK), and not symbols like `€`; Samba counts any of them (seen:
//!   `abcdef!€x` accepted, lower + symbol + `€`).

use latchkey_plugin_sdk::{Account, CharClass, PasswordPolicy, Violation, complexity};

use crate::policy::DcKind;

/// The class a DC counts `c` in; none when it counts in no class.
pub fn class_of(c: char, dc: DcKind) -> Option<CharClass> {
    if c.is_ascii() {
        return match c {
            '0'..='9' => Some(CharClass::Digit),
            'A'..='Z' => Some(CharClass::Uppercase),
            'a'..='z' => Some(CharClass::Lowercase),
            c if c.is_ascii_punctuation() => Some(CharClass::Symbol),
            _ => None,
        };
    }
    match dc {
        DcKind::Windows => {
            if c.is_uppercase() {
                Some(CharClass::Uppercase)
            } else if c.is_lowercase() {
                Some(CharClass::Lowercase)
            } else if c.is_alphabetic() {
                Some(CharClass::OtherLetter)
            } else {
                None
            }
        }
        // Samba's isupper_m/islower_m: "has a (one-character) lower/upper case mapping";
        // everything else non-ASCII is its "unicode" class.
        DcKind::Samba => {
            if maps_to_one_other(c.to_lowercase(), c) {
                Some(CharClass::Uppercase)
            } else if maps_to_one_other(c.to_uppercase(), c) {
                Some(CharClass::Lowercase)
            } else {
                Some(CharClass::OtherLetter)
            }
        }
    }
}

fn maps_to_one_other(mut mapping: impl Iterator<Item = char>, c: char) -> bool {
    matches!((mapping.next(), mapping.next()), (Some(m), None) if m != c)
}

/// Every rule of `policy` that `candidate` breaks for `account` on a `dc`.
pub fn violations(
    candidate: &str,
    account: &Account,
    policy: &PasswordPolicy,
    dc: DcKind,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let length = candidate.encode_utf16().count();
    if length < policy.min_length as usize {
        found.push(Violation::TooShort(policy.min_length));
    }
    if length > policy.max_length as usize {
        found.push(Violation::TooLong(policy.max_length));
    }
    if let Some(rule) = &policy.complexity {
        let mut present = Vec::new();
        for class in candidate.chars().filter_map(|c| class_of(c, dc)) {
            if rule.classes.contains(&class) && !present.contains(&class) {
                present.push(class);
            }
        }
        if present.len() < usize::from(rule.required) {
            found.push(Violation::NotComplex(rule.required));
        }
    }
    // The name rules, as the SDK implements MS-SAMR's: only those are left in this policy.
    let names_only = PasswordPolicy {
        min_length: 0,
        max_length: u32::MAX,
        complexity: None,
        allowed_symbols: None,
        ..policy.clone()
    };
    found.extend(complexity::check(candidate, account, &names_only));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::domain_policy;
    use latchkey_plugin_sdk::ldap_entry::DirEntry;

    fn domain() -> PasswordPolicy {
        let entry = DirEntry::new("DC=corp,DC=test")
            .with("minPwdLength", &["7"])
            .with("pwdProperties", &["1"]);
        domain_policy(&entry).unwrap()
    }

    /// The lead's test user: sAMAccountName and a display name with a hyphenated token.
    fn quentin() -> Account {
        Account {
            id: "9c8b66a4-19ec-497c-b0be-c764ff1c6391".into(),
            username: "tcheck1".into(),
            principal_name: None,
            display_name: Some("Quentin Marchbanks-Oyelaran".into()),
            email: None,
            location: None,
            enabled: true,
            locked_out: false,
            synced_from_on_premises: false,
        }
    }

    fn check(candidate: &str, dc: DcKind) -> Vec<Violation> {
        violations(candidate, &quentin(), &domain(), dc)
    }

    #[test]
    fn too_short() {
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(check("Ab1-x", dc), vec![Violation::TooShort(7)]);
        }
    }

    #[test]
    fn not_complex() {
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(
                check("alllowercaseletters", dc),
                vec![Violation::NotComplex(3)]
            );
        }
    }

    #[test]
    fn contains_the_account_name() {
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(
                check("Z9-TCHECK1-x", dc),
                vec![Violation::ContainsAccountName]
            );
        }
    }

    #[test]
    fn contains_a_display_name_token() {
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(
                check("Marchbanks-2024!", dc),
                vec![Violation::ContainsDisplayName]
            );
        }
    }

    #[test]
    fn a_compliant_one() {
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(check("Kp4-Xw9-J", dc), vec![]);
        }
    }

    #[test]
    fn two_hundred_fifty_seven_characters() {
        let long = format!("{}x", "Aa1!".repeat(64));
        assert_eq!(long.chars().count(), 257);
        assert_eq!(check(&long, DcKind::Windows), vec![Violation::TooLong(256)]);
        assert_eq!(
            check(&long[..256], DcKind::Windows),
            vec![],
            "256 is allowed"
        );
    }

    #[test]
    fn every_violation_at_once() {
        assert_eq!(
            check("tcheck1", DcKind::Windows),
            vec![Violation::NotComplex(3), Violation::ContainsAccountName]
        );
        assert_eq!(
            check("Oyelaran", DcKind::Windows),
            vec![Violation::NotComplex(3), Violation::ContainsDisplayName]
        );
        assert_eq!(
            check("abc", DcKind::Samba),
            vec![Violation::TooShort(7), Violation::NotComplex(3)]
        );
    }

    #[test]
    fn length_counts_utf16_units() {
        // Seen on Samba 4.17 with a minimum of 7: accepted.
        assert_eq!(check("Ab1!😀😀", DcKind::Samba), vec![]);
        assert_eq!(check("Ab1!😀", DcKind::Samba), vec![Violation::TooShort(7)]);
    }

    #[test]
    fn a_space_is_in_no_class() {
        // Seen on Samba 4.17: refused as not complex.
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(check("abcDEF gh", dc), vec![Violation::NotComplex(3)]);
        }
    }

    #[test]
    fn non_ascii_classes() {
        // Seen on Samba 4.17: accepted (€ and 😀 count as Samba's "unicode" class).
        assert_eq!(check("abcdef!€x", DcKind::Samba), vec![]);
        assert_eq!(check("abcdef😀1", DcKind::Samba), vec![]);
        // Windows does not count currency symbols.
        assert_eq!(
            check("abcdef!€x", DcKind::Windows),
            vec![Violation::NotComplex(3)]
        );
        // Seen on Samba 4.17: refused (lower + Han are two classes; é is lowercase).
        for dc in [DcKind::Windows, DcKind::Samba] {
            assert_eq!(check("abcdefgh漢", dc), vec![Violation::NotComplex(3)]);
            assert_eq!(check("ABCDEFGHé", dc), vec![Violation::NotComplex(3)]);
            assert_eq!(check("abcdef漢1", dc), vec![]);
        }
        assert_eq!(class_of('É', DcKind::Samba), Some(CharClass::Uppercase));
        assert_eq!(class_of('ß', DcKind::Windows), Some(CharClass::Lowercase));
        // ß has no one-character uppercase: Samba's tables count it in its fifth class.
        assert_eq!(class_of('ß', DcKind::Samba), Some(CharClass::OtherLetter));
        assert_eq!(class_of(' ', DcKind::Windows), None);
        assert_eq!(class_of('\t', DcKind::Samba), None);
    }

    #[test]
    fn without_complexity_only_length_counts() {
        let entry = DirEntry::new("DC=x")
            .with("minPwdLength", &["3"])
            .with("pwdProperties", &["0"]);
        let policy = domain_policy(&entry).unwrap();
        assert_eq!(
            violations("tcheck1", &quentin(), &policy, DcKind::Windows),
            vec![]
        );
    }
}
