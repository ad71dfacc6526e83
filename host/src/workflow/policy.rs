//! The policy a password must satisfy to be accepted by every enabled connector: their
//! `get-policy` answers merged into the strictest one, with the SDK's conservative rules
//! (`latchkey_plugin_sdk::policy::merge`), rewritten against the host's generated types.
//!
//! It owns the merge and the question "can any password satisfy this?". It must never relax
//! a rule: a password meeting the merged policy meets each connector's policy. When nothing
//! can, it says which connectors disagree, and never guesses which one to ignore.

use std::fmt;

use crate::runtime::wit::types::{CharClass, Complexity, PasswordPolicy};

/// One connector's policy for the account, as its `get-policy` returned it.
#[derive(Debug, Clone)]
pub struct ConnectorPolicy {
    /// The connector's name as admins know it (its id or plugin), for error messages.
    pub connector: String,
    pub policy: PasswordPolicy,
}

/// Why no password can satisfy every connector at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// There was no policy to merge (the workflow needs an enabled primary connector).
    #[error("no connector gave a password policy")]
    NoPolicy,
    /// The policies of `connectors` contradict each other (or one contradicts itself).
    #[error("the password policies of {} cannot all be met: {conflict}", Names(.connectors))]
    Unsatisfiable {
        connectors: Vec<String>,
        conflict: Conflict,
    },
}

/// The rule that cannot be met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The minimum length is above the maximum.
    Length { min: u32, max: u32 },
    /// Complexity needs more classes than the policies all count and allow (or than fit).
    Complexity { required: u8, usable: u8 },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Length { min, max } => {
                write!(f, "at least {min} characters but at most {max}")
            }
            Conflict::Complexity { required, usable } => write!(
                f,
                "{required} character classes are required but only {usable} are counted by \
                 every connector and allowed"
            ),
        }
    }
}

struct Names<'a>(&'a [String]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// The strictest combination of every connector's policy, or why there is none.
pub fn merge(policies: &[ConnectorPolicy]) -> Result<PasswordPolicy, PolicyError> {
    let (first, rest) = policies.split_first().ok_or(PolicyError::NoPolicy)?;
    let merged = rest.iter().fold(first.policy.clone(), |acc, next| {
        merge_two(&acc, &next.policy)
    });
    if merged.min_length > merged.max_length {
        let connectors = policies
            .iter()
            .filter(|p| {
                p.policy.min_length == merged.min_length || p.policy.max_length == merged.max_length
            })
            .map(|p| p.connector.clone())
            .collect();
        return Err(PolicyError::Unsatisfiable {
            connectors,
            conflict: Conflict::Length {
                min: merged.min_length,
                max: merged.max_length,
            },
        });
    }
    if let Some(rule) = &merged.complexity {
        let usable = usable_classes(&merged);
        let fits = u32::from(rule.required) <= merged.max_length;
        if usable < rule.required || !fits {
            let connectors = policies
                .iter()
                .filter(|p| p.policy.complexity.is_some() || p.policy.allowed_symbols.is_some())
                .map(|p| p.connector.clone())
                .collect();
            return Err(PolicyError::Unsatisfiable {
                connectors,
                conflict: Conflict::Complexity {
                    required: rule.required,
                    usable: if fits {
                        usable
                    } else {
                        usable.min(u8::try_from(merged.max_length).unwrap_or(u8::MAX))
                    },
                },
            });
        }
    }
    Ok(merged)
}

/// How many distinct classes of the complexity rule a password may use: a symbol only when
/// some symbol is allowed, and other letters only when any character is (an allowed-symbols
/// rule admits ASCII letters only). The SDK's `satisfiable` counts the same way.
pub fn usable_classes(policy: &PasswordPolicy) -> u8 {
    let Some(rule) = &policy.complexity else {
        return 0;
    };
    let mut seen: Vec<CharClass> = Vec::new();
    for class in &rule.classes {
        let usable = match (class, &policy.allowed_symbols) {
            (_, None) => true,
            (CharClass::Symbol, Some(symbols)) => symbols.chars().any(|c| !c.is_alphanumeric()),
            (CharClass::OtherLetter, Some(_)) => false,
            _ => true,
        };
        if usable && !seen.contains(class) {
            seen.push(*class);
        }
    }
    u8::try_from(seen.len()).unwrap_or(u8::MAX)
}

/// The strictest combination of `a` and `b` (the SDK's `merge`).
fn merge_two(a: &PasswordPolicy, b: &PasswordPolicy) -> PasswordPolicy {
    PasswordPolicy {
        min_length: a.min_length.max(b.min_length),
        max_length: a.max_length.min(b.max_length),
        complexity: match (&a.complexity, &b.complexity) {
            (None, None) => None,
            (Some(c), None) | (None, Some(c)) => Some(c.clone()),
            // Only classes both count: a password with `required` of them meets both rules.
            (Some(x), Some(y)) => Some(Complexity {
                required: x.required.max(y.required),
                classes: x
                    .classes
                    .iter()
                    .copied()
                    .filter(|class| y.classes.contains(class))
                    .collect(),
            }),
        },
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
        } else if b.source.is_empty() {
            a.source.clone()
        } else {
            format!("{}; {}", a.source, b.source)
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::workflow::check::tests::ad_default;

    pub(crate) fn entra() -> PasswordPolicy {
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

    fn named(connector: &str, policy: PasswordPolicy) -> ConnectorPolicy {
        ConnectorPolicy {
            connector: connector.into(),
            policy,
        }
    }

    #[test]
    fn the_strictest_rule_wins() {
        let merged = merge(&[named("ad", ad_default()), named("entra", entra())]).unwrap();
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
        assert_eq!(rule.classes.len(), 4);
        assert!(!rule.classes.contains(&CharClass::OtherLetter));
        assert_eq!(
            merged.source,
            "Active Directory default domain policy; Entra ID"
        );
    }

    #[test]
    fn one_policy_is_itself_and_none_is_an_error() {
        assert_eq!(merge(&[named("ad", ad_default())]).unwrap(), ad_default());
        assert_eq!(merge(&[]), Err(PolicyError::NoPolicy));
    }

    #[test]
    fn a_length_conflict_names_the_connectors() {
        let mut short = entra();
        short.max_length = 6;
        let mut pso = ad_default();
        pso.min_length = 12;
        let error = merge(&[
            named("ad", pso),
            named("entra", short),
            named("ldap", ad_default()),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            PolicyError::Unsatisfiable {
                connectors: vec!["ad".into(), "entra".into()],
                conflict: Conflict::Length { min: 12, max: 6 },
            }
        );
        assert_eq!(
            error.to_string(),
            "the password policies of ad, entra cannot all be met: at least 12 characters but \
             at most 6"
        );
    }

    #[test]
    fn a_complexity_conflict_is_detected() {
        // AD counts only letters and other letters; Entra forbids other letters and symbols.
        let mut letters = ad_default();
        letters.complexity = Some(Complexity {
            required: 3,
            classes: vec![
                CharClass::Uppercase,
                CharClass::Lowercase,
                CharClass::OtherLetter,
            ],
        });
        let mut no_symbols = entra();
        no_symbols.allowed_symbols = Some(String::new());
        let error = merge(&[named("ad", letters), named("entra", no_symbols)]).unwrap_err();
        assert!(matches!(
            error,
            PolicyError::Unsatisfiable {
                conflict: Conflict::Complexity {
                    required: 3,
                    usable: 2
                },
                ..
            }
        ));
        // Four classes can never fit in three characters.
        let mut tiny = ad_default();
        tiny.complexity.as_mut().unwrap().required = 4;
        tiny.min_length = 1;
        tiny.max_length = 3;
        assert!(merge(&[named("ad", tiny)]).is_err());
    }
}
