//! Merging the policies of several directories into one that a password must satisfy to be
//! accepted by all of them: the strictest value of every rule wins.
//!
//! Complexity rules with different class sets are merged conservatively: the merged rule
//! counts only classes every directory counts, and requires the largest `required`. A password
//! meeting it meets each original rule (its classes are a subset of each rule's classes).

use crate::{CharClass, Complexity, PasswordPolicy};

/// The strictest combination of `a` and `b`.
pub fn merge(a: &PasswordPolicy, b: &PasswordPolicy) -> PasswordPolicy {
    PasswordPolicy {
        min_length: a.min_length.max(b.min_length),
        max_length: a.max_length.min(b.max_length),
        complexity: merge_complexity(a.complexity.as_ref(), b.complexity.as_ref()),
        allowed_symbols: match (&a.allowed_symbols, &b.allowed_symbols) {
            (None, None) => None,
            (Some(s), None) | (None, Some(s)) => Some(s.clone()),
            (Some(x), Some(y)) => Some(x.chars().filter(|c| y.contains(*c)).collect()),
        },
        forbid_username: a.forbid_username || b.forbid_username,
        forbid_display_name: a.forbid_display_name || b.forbid_display_name,
        history_length: a.history_length.max(b.history_length),
        min_age_seconds: a.min_age_seconds.max(b.min_age_seconds),
        max_age_seconds: match (a.max_age_seconds, b.max_age_seconds) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        lockout_threshold: match (a.lockout_threshold, b.lockout_threshold) {
            (0, y) => y,
            (x, 0) => x,
            (x, y) => x.min(y),
        },
        source: if a.source.is_empty() {
            b.source.clone()
        } else {
            format!("{}; {}", a.source, b.source)
        },
    }
}

fn merge_complexity(a: Option<&Complexity>, b: Option<&Complexity>) -> Option<Complexity> {
    match (a, b) {
        (None, None) => None,
        (Some(c), None) | (None, Some(c)) => Some(c.clone()),
        (Some(x), Some(y)) => Some(Complexity {
            required: x.required.max(y.required),
            classes: x
                .classes
                .iter()
                .copied()
                .filter(|class| y.classes.contains(class))
                .collect(),
        }),
    }
}

/// Whether any password can satisfy `policy`: a length range that is not empty and a
/// complexity rule that does not require more classes than it counts (or than the allowed
/// characters can provide).
pub fn satisfiable(policy: &PasswordPolicy) -> bool {
    if policy.min_length > policy.max_length {
        return false;
    }
    match &policy.complexity {
        None => true,
        Some(rule) => {
            let usable = rule
                .classes
                .iter()
                .filter(|class| {
                    policy
                        .allowed_symbols
                        .as_ref()
                        .is_none_or(|symbols| match class {
                            CharClass::Symbol => !symbols.is_empty(),
                            CharClass::OtherLetter => false,
                            _ => true,
                        })
                })
                .count();
            usable >= rule.required as usize && policy.max_length >= rule.required as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::complexity::ad_default_policy;

    fn entra() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            max_length: 256,
            complexity: Some(Complexity {
                required: 3,
                classes: vec![
                    CharClass::Lowercase,
                    CharClass::Uppercase,
                    CharClass::Digit,
                    CharClass::Symbol,
                ],
            }),
            allowed_symbols: Some("@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ".into()),
            forbid_username: false,
            forbid_display_name: false,
            history_length: 1,
            min_age_seconds: 0,
            max_age_seconds: None,
            lockout_threshold: 10,
            source: "Entra ID".into(),
        }
    }

    #[test]
    fn strictest_rule_wins() {
        let merged = merge(&ad_default_policy(), &entra());
        assert_eq!(merged.min_length, 8);
        assert_eq!(merged.max_length, 256);
        assert_eq!(merged.history_length, 24);
        assert_eq!(merged.min_age_seconds, 86_400);
        assert_eq!(merged.max_age_seconds, Some(42 * 86_400));
        assert_eq!(merged.lockout_threshold, 10);
        assert!(merged.forbid_username && merged.forbid_display_name);
        assert_eq!(merged.allowed_symbols, entra().allowed_symbols);
        let rule = merged.complexity.unwrap();
        assert_eq!(rule.required, 3);
        assert!(!rule.classes.contains(&CharClass::OtherLetter));
        assert_eq!(rule.classes.len(), 4);
        assert_eq!(
            merged.source,
            "Active Directory default domain policy; Entra ID"
        );
    }

    #[test]
    fn unsatisfiable_merges_are_detected() {
        let mut a = ad_default_policy();
        a.max_length = 5;
        assert!(!satisfiable(&a));
        assert!(satisfiable(&merge(&ad_default_policy(), &entra())));
        let mut only_letters = entra();
        only_letters.allowed_symbols = Some(String::new());
        only_letters.complexity = Some(Complexity {
            required: 4,
            classes: vec![
                CharClass::Lowercase,
                CharClass::Uppercase,
                CharClass::Digit,
                CharClass::Symbol,
            ],
        });
        assert!(!satisfiable(&only_letters));
    }
}
