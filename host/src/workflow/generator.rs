//! Generated passwords: drawn from the operating system's CSPRNG to satisfy a merged
//! [`PasswordPolicy`] for one account, then verified with [`check`](super::check::check).
//!
//! It owns the alphabet, the length rule and the drawing. It must never show, log or return
//! the password other than as a [`SecretString`]; every intermediate buffer is `Zeroizing`.

use rand_core::{OsRng, RngCore};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::check::check;
use crate::runtime::wit::types::{Account, CharClass, PasswordPolicy};

/// The length of a generated password unless the admin or the policy asks for another.
pub const DEFAULT_LENGTH: u32 = 20;

/// The symbols drawn when the policy does not list its own, and the ones preferred when it
/// does. A hardware key that types the password emulates a keyboard, so every character must
/// come out the same on the layouts people use. Left out: space (trimmed by forms and some
/// logon screens), `'` `"` `` ` `` `\` (quoting and escaping in scripts, and `'` `"` `` ` ``
/// are dead keys on US-International), `^` `~` (dead keys on German and French layouts), `@`
/// `#` (swapped with `"` and `£`/`~` on UK), `[ ] { } | < >` (AltGr on German and French, `<`
/// `>` `|` on the ISO key US keyboards lack), `& ( ) ; : $ ,` (moved between unshifted and
/// shifted on AZERTY, `,` also splits LDAP DNs and CSV). What remains is reachable without
/// AltGr or a dead key on US, UK, German and French layouts.
pub const SAFE_SYMBOLS: &str = "!%*+-./=?_";

/// The longest password the generator draws, whatever the policy's maximum: a connector may
/// answer `max-length` u32::MAX ("no maximum") or a minimum in the billions, and the admin's
/// requested length is any u32, so without it one request could make the server allocate and
/// draw gigabytes (found while writing the `plugin_output` fuzz target). Directories stop at
/// 256.
pub const MAX_GENERATED_LENGTH: u32 = 1024;

/// How many draws may be refused for containing the account's name before giving up (each
/// draw is refused with a probability far below one half for any name longer than 2).
const ATTEMPTS: usize = 1000;

/// Why no password was generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneratorError {
    #[error(
        "a length of {requested} is above the longest allowed, {max} (the policies' maximum, \
         and never more than {MAX_GENERATED_LENGTH})"
    )]
    TooLong { requested: u32, max: u32 },
    #[error("the policy cannot be met: at least {min} characters but at most {max}")]
    LengthRange { min: u32, max: u32 },
    #[error(
        "the policy requires {required} character classes; a generated password can use {usable}"
    )]
    Complexity { required: u8, usable: u8 },
    #[error("no draw avoided the account's name in {ATTEMPTS} attempts")]
    Exhausted,
}

/// A password of `length` characters (default [`DEFAULT_LENGTH`], raised to the policy's
/// minimum; a requested length above the maximum is refused, the default is lowered to it)
/// satisfying `policy` for `account`.
pub fn generate(
    policy: &PasswordPolicy,
    account: &Account,
    length: Option<u32>,
) -> Result<SecretString, GeneratorError> {
    let (min, max) = (
        policy.min_length,
        policy.max_length.min(MAX_GENERATED_LENGTH),
    );
    if min > max {
        return Err(GeneratorError::LengthRange { min, max });
    }
    let length = match length {
        Some(requested) if requested > max => {
            return Err(GeneratorError::TooLong { requested, max });
        }
        Some(requested) => requested.max(min),
        None => DEFAULT_LENGTH.clamp(min, max),
    };
    let length = usize::try_from(length).unwrap_or(usize::MAX).max(1);
    let sets = Sets::for_policy(policy);
    let mandatory = sets.mandatory(policy)?;
    let mandatory = &mandatory[..mandatory.len().min(length)];
    if let Some(rule) = &policy.complexity
        && mandatory.len() < rule.required as usize
    {
        return Err(GeneratorError::Complexity {
            required: rule.required,
            usable: u8::try_from(mandatory.len()).unwrap_or(u8::MAX),
        });
    }
    let alphabet = sets.alphabet();
    for _ in 0..ATTEMPTS {
        let mut buffer = Zeroizing::new(Vec::with_capacity(length));
        // One from each class the rule counts, then the rest from the whole alphabet, then a
        // shuffle so the mandatory characters are not always first.
        for set in mandatory {
            buffer.push(pick(set));
        }
        while buffer.len() < length {
            buffer.push(pick(&alphabet));
        }
        for i in (1..buffer.len()).rev() {
            buffer.swap(i, below(i + 1));
        }
        let candidate = Zeroizing::new(String::from_utf8(std::mem::take(&mut *buffer)).ok());
        let Some(candidate) = candidate.as_deref() else {
            continue;
        };
        if check(candidate, account, policy).is_empty() {
            return Ok(SecretString::from(candidate.to_owned()));
        }
    }
    Err(GeneratorError::Exhausted)
}

/// The entropy, in bits, that a password [`generate`] draws for `policy` with `length`
/// characters holds at least: one character of each class the complexity rule counts, the rest
/// from the whole alphabet. The shuffle adds more; refusing draws that contain the account's
/// name removes a negligible share.
pub fn entropy_bits(policy: &PasswordPolicy, length: usize) -> f64 {
    let sets = Sets::for_policy(policy);
    let alphabet = sets.alphabet().len() as f64;
    let mandatory = sets.mandatory(policy).unwrap_or_default();
    let mandatory = &mandatory[..mandatory.len().min(length)];
    let classes: f64 = mandatory.iter().map(|set| (set.len() as f64).log2()).sum();
    classes + (length - mandatory.len()) as f64 * alphabet.log2()
}

/// The ASCII character sets a generated password draws from.
struct Sets {
    upper: Vec<u8>,
    lower: Vec<u8>,
    digits: Vec<u8>,
    symbols: Vec<u8>,
}

impl Sets {
    fn for_policy(policy: &PasswordPolicy) -> Sets {
        let symbols = match &policy.allowed_symbols {
            None => SAFE_SYMBOLS.bytes().collect(),
            Some(allowed) => {
                let ascii = |c: &char| c.is_ascii_graphic() && !c.is_ascii_alphanumeric();
                let preferred: Vec<u8> = SAFE_SYMBOLS
                    .bytes()
                    .filter(|b| allowed.contains(char::from(*b)))
                    .collect();
                if preferred.is_empty() {
                    // Only symbols outside the safe set are allowed: use those (printable
                    // ASCII, never a space) rather than none.
                    let mut own: Vec<u8> = allowed.chars().filter(ascii).map(|c| c as u8).collect();
                    own.sort_unstable();
                    own.dedup();
                    own
                } else {
                    preferred
                }
            }
        };
        Sets {
            upper: (b'A'..=b'Z').collect(),
            lower: (b'a'..=b'z').collect(),
            digits: (b'0'..=b'9').collect(),
            symbols,
        }
    }

    fn alphabet(&self) -> Vec<u8> {
        [&self.upper, &self.lower, &self.digits, &self.symbols]
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    /// One set per class the complexity rule counts that ASCII can provide, each once.
    fn mandatory(&self, policy: &PasswordPolicy) -> Result<Vec<&[u8]>, GeneratorError> {
        let Some(rule) = &policy.complexity else {
            return Ok(Vec::new());
        };
        let mut sets: Vec<&[u8]> = Vec::new();
        let mut seen = Vec::new();
        for class in &rule.classes {
            if seen.contains(class) {
                continue;
            }
            seen.push(*class);
            let set: &[u8] = match class {
                CharClass::Uppercase => &self.upper,
                CharClass::Lowercase => &self.lower,
                CharClass::Digit => &self.digits,
                CharClass::Symbol => &self.symbols,
                // Letters without case are not ASCII; the other classes carry the rule.
                CharClass::OtherLetter => &[],
            };
            if !set.is_empty() {
                sets.push(set);
            }
        }
        if sets.len() < rule.required as usize {
            return Err(GeneratorError::Complexity {
                required: rule.required,
                usable: u8::try_from(sets.len()).unwrap_or(u8::MAX),
            });
        }
        Ok(sets)
    }
}

/// A byte of `set`, uniformly.
fn pick(set: &[u8]) -> u8 {
    set[below(set.len())]
}

/// A uniform number in `0..n` from the OS CSPRNG: draws at or above the largest multiple of
/// `n` are rejected, so `% n` has no bias.
fn below(n: usize) -> usize {
    let n = u32::try_from(n).expect("sets and lengths are small");
    assert!(n > 0, "an empty range");
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let draw = OsRng.next_u32();
        if draw < zone {
            return (draw % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::runtime::wit::types::Complexity;
    use crate::workflow::check::tests::{account, ad_default};
    use crate::workflow::policy::tests::entra;

    fn pso_12() -> PasswordPolicy {
        let mut pso = ad_default();
        pso.min_length = 12;
        pso.source = "PSO CN=Admins".into();
        pso
    }

    fn at_most_256() -> PasswordPolicy {
        let mut policy = ad_default();
        policy.min_length = 256;
        policy.max_length = 256;
        policy.complexity = Some(Complexity {
            required: 4,
            classes: vec![
                CharClass::Uppercase,
                CharClass::Lowercase,
                CharClass::Digit,
                CharClass::Symbol,
            ],
        });
        policy
    }

    /// 10,000 passwords per policy, each verified by `check`; every character of the alphabet
    /// turns up, and nothing outside it.
    #[test]
    fn ten_thousand_passwords_per_policy_pass_the_check() {
        let name = account();
        for (policy, length) in [
            (ad_default(), 20),
            (entra(), 20),
            (pso_12(), 20),
            (at_most_256(), 256),
        ] {
            let alphabet: HashSet<u8> = Sets::for_policy(&policy).alphabet().into_iter().collect();
            let mut seen = HashSet::new();
            for _ in 0..10_000 {
                let password = generate(&policy, &name, None).unwrap();
                let password = password.expose_secret();
                assert_eq!(password.len(), length, "{}", policy.source);
                assert!(
                    check(password, &name, &policy).is_empty(),
                    "{}",
                    policy.source
                );
                seen.extend(password.bytes());
            }
            assert_eq!(seen, alphabet, "{}", policy.source);
        }
    }

    #[test]
    fn symbols_are_the_safe_ones_the_policy_allows() {
        assert_eq!(
            Sets::for_policy(&ad_default()).symbols,
            SAFE_SYMBOLS.as_bytes()
        );
        let mut narrow = entra();
        narrow.allowed_symbols = Some("@#!?".into());
        assert_eq!(Sets::for_policy(&narrow).symbols, b"!?");
        narrow.allowed_symbols = Some("@ #@".into());
        assert_eq!(Sets::for_policy(&narrow).symbols, b"#@");
        let password = generate(&narrow, &account(), Some(64)).unwrap();
        assert!(
            password
                .expose_secret()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"#@".contains(&b))
        );
    }

    #[test]
    fn length_is_raised_to_the_minimum_and_refused_above_the_maximum() {
        let policy = pso_12();
        let short = generate(&policy, &account(), Some(8)).unwrap();
        assert_eq!(short.expose_secret().len(), 12);
        let exact = generate(&policy, &account(), Some(31)).unwrap();
        assert_eq!(exact.expose_secret().len(), 31);
        assert_eq!(
            generate(&policy, &account(), Some(257)).unwrap_err(),
            GeneratorError::TooLong {
                requested: 257,
                max: 256
            }
        );
        let mut small = ad_default();
        small.max_length = 16;
        assert_eq!(
            generate(&small, &account(), None)
                .unwrap()
                .expose_secret()
                .len(),
            16
        );
    }

    #[test]
    fn lengths_are_capped_whatever_the_policy_says() {
        let mut open = ad_default();
        open.max_length = u32::MAX;
        assert_eq!(
            generate(&open, &account(), Some(u32::MAX)).unwrap_err(),
            GeneratorError::TooLong {
                requested: u32::MAX,
                max: MAX_GENERATED_LENGTH
            }
        );
        let long = generate(&open, &account(), Some(MAX_GENERATED_LENGTH)).unwrap();
        assert_eq!(long.expose_secret().len(), MAX_GENERATED_LENGTH as usize);
        open.min_length = 4_000_000_000;
        assert_eq!(
            generate(&open, &account(), None).unwrap_err(),
            GeneratorError::LengthRange {
                min: 4_000_000_000,
                max: MAX_GENERATED_LENGTH
            }
        );
    }

    #[test]
    fn unsatisfiable_policies_are_errors() {
        let mut inverted = ad_default();
        inverted.min_length = 30;
        inverted.max_length = 10;
        assert_eq!(
            generate(&inverted, &account(), None).unwrap_err(),
            GeneratorError::LengthRange { min: 30, max: 10 }
        );
        let mut no_symbols = entra();
        no_symbols.allowed_symbols = Some(String::new());
        no_symbols.complexity.as_mut().unwrap().required = 4;
        assert_eq!(
            generate(&no_symbols, &account(), None).unwrap_err(),
            GeneratorError::Complexity {
                required: 4,
                usable: 3
            }
        );
        let mut tiny = at_most_256();
        tiny.min_length = 1;
        tiny.max_length = 3;
        assert!(matches!(
            generate(&tiny, &account(), None),
            Err(GeneratorError::Complexity { required: 4, .. })
        ));
    }

    #[test]
    fn the_account_name_is_avoided() {
        // A two-letter alphabet would contain "ab" constantly; a name of three letters that
        // random text often contains is redrawn, never returned.
        let mut name = account();
        name.username = "abc".into();
        name.display_name = Some("Xy Ab1".into());
        let mut policy = ad_default();
        policy.min_length = 256;
        for _ in 0..200 {
            let password = generate(&policy, &name, None).unwrap();
            let lowered = password.expose_secret().to_lowercase();
            assert!(!lowered.contains("abc") && !lowered.contains("ab1"));
        }
    }

    #[test]
    fn entropy_is_counted_per_character_of_the_alphabet_and_classes() {
        // AD's default policy: 3 of 5 classes, so one upper, one lower, one digit, one symbol
        // (4 sets usable) and the rest from 26 + 26 + 10 + 10 = 72 characters.
        let policy = ad_default();
        let bits = entropy_bits(&policy, 20);
        let expected = 2.0 * 26f64.log2() + 2.0 * 10f64.log2() + 16.0 * 72f64.log2();
        assert!((bits - expected).abs() < 1e-9, "{bits} against {expected}");
        assert!(
            bits > 110.0,
            "the default length draws over 110 bits: {bits}"
        );
        assert!(entropy_bits(&policy, 8) < 60.0);
        // A password shorter than the classes counts only the classes it can hold.
        assert!((entropy_bits(&policy, 2) - 2.0 * 26f64.log2()).abs() < 1e-9);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[below(7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
