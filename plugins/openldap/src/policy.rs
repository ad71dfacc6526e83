//! The password policy in force for one user, as ppolicy decides it: the pwdPolicy entry named
//! by the user's `pwdPolicySubentry`, or else the server's default (`ppolicy_default`), which
//! the connector knows only as the configured `policy_dn` (slapd's configuration is not
//! readable over ordinary LDAP).
//!
//! What ppolicy checks, and so what is reported here (slapd 2.5, seen on the test server):
//! - Lengths (`pwdMinLength`, `pwdMaxLength`) only when `pwdCheckQuality` is 1 or 2, and in
//!   bytes of the value as sent (UTF-8), not characters.
//! - No complexity of its own: character classes need a `pwdCheckModule` (Debian ships none),
//!   whose rules the connector cannot read, so no complexity is claimed.
//! - History (`pwdInHistory`) and minimum age (`pwdMinAge`) apply to the service account's
//!   resets too, because it is not a password administrator (no `manage` access).
//!
//! A policy that is named but cannot be read is an error naming the missing right, never a
//! silent "no policy": checking against nothing would let the server refuse what Latchkey
//! approved.

use latchkey_plugin_sdk::{ConnectorError, ErrorInfo, PasswordPolicy, Violation};

use crate::account::DirectoryUser;
use crate::config::Settings;
use crate::errors::PolicyNumbers;
use crate::session::Directory;
use latchkey_plugin_sdk::ldap_entry::DirEntry;

/// A pwdPolicy entry's attributes.
pub const POLICY_ATTRIBUTES: &[&str] = &[
    "pwdAttribute",
    "pwdMinLength",
    "pwdMaxLength",
    "pwdInHistory",
    "pwdMinAge",
    "pwdMaxAge",
    "pwdCheckQuality",
    "pwdMustChange",
    "pwdAllowUserChange",
    "pwdSafeModify",
    "pwdLockout",
    "pwdMaxFailure",
    "pwdLockoutDuration",
];

/// The policy and the ppolicy switches that decide how the connector writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub policy: PasswordPolicy,
    /// The pwdPolicy entry, if any applies.
    pub dn: Option<String>,
    /// pwdMustChange: whether ppolicy honours pwdReset at the next bind.
    pub must_change: bool,
    /// pwdAllowUserChange (TRUE when absent, as ppolicy defaults it).
    pub allow_user_change: bool,
    /// pwdSafeModify: every change must carry the old password.
    pub safe_modify: bool,
    /// pwdLockoutDuration in seconds; 0 = until an administrator unlocks.
    pub lockout_duration: u64,
    /// False when the policy could not be read (a write goes ahead; the server decides).
    pub known: bool,
}

impl EffectivePolicy {
    /// What the violations built from ppolicy's errors need to know.
    pub fn numbers(&self, changed_at: Option<i64>, pwd_reset: bool, now: i64) -> PolicyNumbers {
        if !self.known {
            return PolicyNumbers::default();
        }
        PolicyNumbers {
            min_length: Some(self.policy.min_length),
            max_length: (self.policy.max_length != u32::MAX).then_some(self.policy.max_length),
            too_young_seconds: too_young_seconds(
                self.policy.min_age_seconds,
                changed_at,
                pwd_reset,
                now,
            )
            .or(Some(self.policy.min_age_seconds)),
        }
    }
}

/// The policy when none applies.
pub fn no_policy() -> EffectivePolicy {
    EffectivePolicy {
        policy: PasswordPolicy {
            min_length: 0,
            max_length: u32::MAX,
            complexity: None,
            allowed_symbols: None,
            forbid_username: false,
            forbid_display_name: false,
            history_length: 0,
            min_age_seconds: 0,
            max_age_seconds: None,
            lockout_threshold: 0,
            source: "no password policy (the user has no pwdPolicySubentry and the connector has \
                     no policy_dn)"
                .into(),
        },
        dn: None,
        must_change: false,
        allow_user_change: true,
        safe_modify: false,
        lockout_duration: 0,
        known: true,
    }
}

/// The stand-in for a policy that could not be read when a write goes ahead without it:
/// violations are then reported in words, without numbers.
pub fn unknown(source: String) -> EffectivePolicy {
    let mut effective = no_policy();
    effective.policy.source = source;
    effective.must_change = true;
    effective.known = false;
    effective
}

fn count(entry: &DirEntry, name: &str) -> u64 {
    entry
        .integer(name)
        .map_or(0, |v| u64::try_from(v).unwrap_or(0))
}

fn count32(entry: &DirEntry, name: &str) -> u32 {
    u32::try_from(count(entry, name)).unwrap_or(u32::MAX)
}

/// A pwdPolicy entry as the contract's policy. `how` says why it applies, for `source`.
pub fn from_entry(entry: &DirEntry, how: &str) -> EffectivePolicy {
    let checks_quality = count(entry, "pwdCheckQuality") > 0;
    let max_length = count32(entry, "pwdMaxLength");
    EffectivePolicy {
        policy: PasswordPolicy {
            min_length: if checks_quality {
                count32(entry, "pwdMinLength")
            } else {
                0
            },
            max_length: if checks_quality && max_length > 0 {
                max_length
            } else {
                u32::MAX
            },
            complexity: None,
            allowed_symbols: None,
            forbid_username: false,
            forbid_display_name: false,
            history_length: count32(entry, "pwdInHistory"),
            min_age_seconds: count(entry, "pwdMinAge"),
            max_age_seconds: Some(count(entry, "pwdMaxAge")).filter(|age| *age > 0),
            lockout_threshold: if entry.boolean("pwdLockout").unwrap_or(false) {
                count32(entry, "pwdMaxFailure")
            } else {
                0
            },
            source: format!("ppolicy {} ({how})", entry.dn),
        },
        dn: Some(entry.dn.clone()),
        must_change: entry.boolean("pwdMustChange").unwrap_or(false),
        allow_user_change: entry.boolean("pwdAllowUserChange").unwrap_or(true),
        safe_modify: entry.boolean("pwdSafeModify").unwrap_or(false),
        lockout_duration: count(entry, "pwdLockoutDuration"),
        known: true,
    }
}

/// The error for a policy entry the service account cannot read.
pub fn unreadable(dn: &str) -> ConnectorError {
    ConnectorError::Denied(ErrorInfo {
        message: format!(
            "the password policy {dn} cannot be read by the service account (or does not \
             exist): grant it read access to the policy entries, and check policy_dn and the \
             users' pwdPolicySubentry"
        ),
        directory_text: None,
    })
}

/// The policy in force for `user`.
pub fn effective(
    directory: &Directory,
    settings: &Settings,
    user: &DirectoryUser,
) -> Result<EffectivePolicy, ConnectorError> {
    let (dn, how) = match (&user.policy_subentry, &settings.policy_dn) {
        (Some(dn), _) => (dn, "the user's pwdPolicySubentry"),
        (None, Some(dn)) => (dn, "the default policy_dn"),
        (None, None) => return Ok(no_policy()),
    };
    let entry = match directory.read(dn, POLICY_ATTRIBUTES) {
        Ok(entry) => entry,
        Err(ConnectorError::Denied(_)) => None,
        Err(other) => return Err(other),
    };
    match entry {
        // An entry read without rights comes back without its attributes.
        Some(entry) if entry.first("pwdAttribute").is_some() => Ok(from_entry(&entry, how)),
        _ => Err(unreadable(dn)),
    }
}

/// Seconds left before `pwdMinAge` allows a change, when it does not yet; ppolicy skips the
/// check while pwdReset is TRUE.
pub fn too_young_seconds(
    min_age_seconds: u64,
    changed_at: Option<i64>,
    pwd_reset: bool,
    now: i64,
) -> Option<u64> {
    if min_age_seconds == 0 || pwd_reset {
        return None;
    }
    let since = i128::from(now) - i128::from(changed_at?);
    let left = i128::from(min_age_seconds) - since.max(0);
    (left > 0).then(|| u64::try_from(left).unwrap_or(u64::MAX))
}

/// Every violation of `candidate` that can be known without setting it: length as ppolicy
/// counts it (bytes), and the minimum age. History cannot be checked (the server keeps only
/// hashes) and is left to the server.
pub fn violations(
    candidate: &str,
    effective: &EffectivePolicy,
    user: &DirectoryUser,
    now: i64,
) -> Vec<Violation> {
    let policy = &effective.policy;
    let mut out = vec![];
    let bytes = candidate.len();
    if bytes < policy.min_length as usize {
        out.push(Violation::TooShort(policy.min_length));
    }
    if bytes > policy.max_length as usize {
        out.push(Violation::TooLong(policy.max_length));
    }
    if let Some(left) =
        too_young_seconds(policy.min_age_seconds, user.changed_at, user.pwd_reset, now)
    {
        out.push(Violation::TooYoung(left));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_plugin_sdk::Account;

    /// The test server's default policy, as read there.
    fn default_policy() -> DirEntry {
        DirEntry::new("cn=default,ou=policies,dc=example,dc=test")
            .with("pwdAttribute", &["userPassword"])
            .with("pwdMinLength", &["8"])
            .with("pwdMaxLength", &["64"])
            .with("pwdInHistory", &["3"])
            .with("pwdMinAge", &["0"])
            .with("pwdMaxAge", &["7776000"])
            .with("pwdCheckQuality", &["2"])
            .with("pwdAllowUserChange", &["TRUE"])
            .with("pwdSafeModify", &["FALSE"])
            .with("pwdMustChange", &["TRUE"])
            .with("pwdLockout", &["TRUE"])
            .with("pwdMaxFailure", &["3"])
            .with("pwdLockoutDuration", &["1800"])
    }

    fn user(changed_at: Option<i64>, pwd_reset: bool) -> DirectoryUser {
        DirectoryUser {
            dn: "uid=a".into(),
            account: Account {
                id: "1".into(),
                username: "a".into(),
                principal_name: None,
                display_name: None,
                email: None,
                location: None,
                enabled: true,
                locked_out: false,
                synced_from_on_premises: false,
            },
            changed_at,
            policy_subentry: None,
            lock_recorded: false,
            pwd_reset,
        }
    }

    #[test]
    fn the_default_policy() {
        let effective = from_entry(&default_policy(), "the default policy_dn");
        assert_eq!(
            effective.policy,
            PasswordPolicy {
                min_length: 8,
                max_length: 64,
                complexity: None,
                allowed_symbols: None,
                forbid_username: false,
                forbid_display_name: false,
                history_length: 3,
                min_age_seconds: 0,
                max_age_seconds: Some(90 * 86_400),
                lockout_threshold: 3,
                source: "ppolicy cn=default,ou=policies,dc=example,dc=test (the default \
                         policy_dn)"
                    .into(),
            }
        );
        assert!(effective.must_change && effective.allow_user_change && !effective.safe_modify);
        assert_eq!(effective.lockout_duration, 1800);
    }

    #[test]
    fn without_quality_checks_there_are_no_lengths() {
        let entry = DirEntry::new("cn=p")
            .with("pwdAttribute", &["userPassword"])
            .with("pwdMinLength", &["8"])
            .with("pwdMaxLength", &["64"])
            .with("pwdLockout", &["FALSE"])
            .with("pwdMaxFailure", &["3"]);
        let effective = from_entry(&entry, "x");
        assert_eq!(
            (effective.policy.min_length, effective.policy.max_length),
            (0, u32::MAX)
        );
        assert_eq!(effective.policy.lockout_threshold, 0);
        assert_eq!(effective.policy.max_age_seconds, None);
        assert!(effective.allow_user_change, "TRUE when absent");
    }

    #[test]
    fn lengths_count_bytes_as_slapd_does() {
        let effective = from_entry(&default_policy(), "x");
        let u = user(None, false);
        assert_eq!(
            violations("short", &effective, &u, 0),
            vec![Violation::TooShort(8)]
        );
        assert!(violations("12345678", &effective, &u, 0).is_empty());
        // Four characters, eight bytes: slapd accepts it.
        assert!(violations("éééé", &effective, &u, 0).is_empty());
        assert_eq!(
            violations(&"x".repeat(65), &effective, &u, 0),
            vec![Violation::TooLong(64)]
        );
    }

    #[test]
    fn minimum_age() {
        let mut effective = from_entry(&default_policy(), "x");
        effective.policy.min_age_seconds = 3600;
        let now = 1_796_034_666;
        let recent = user(Some(now - 600), false);
        assert_eq!(
            violations("long enough", &effective, &recent, now),
            vec![Violation::TooYoung(3000)]
        );
        // pwdReset: ppolicy lets the change through.
        assert!(
            violations("long enough", &effective, &user(Some(now - 600), true), now).is_empty()
        );
        assert!(
            violations(
                "long enough",
                &effective,
                &user(Some(now - 3600), false),
                now
            )
            .is_empty()
        );
        assert!(violations("long enough", &effective, &user(None, false), now).is_empty());
        assert_eq!(
            too_young_seconds(3600, Some(now + 50), false, now),
            Some(3600)
        );
    }

    #[test]
    fn numbers_for_violations() {
        let effective = from_entry(&default_policy(), "x");
        let numbers = effective.numbers(None, false, 0);
        assert_eq!(numbers.min_length, Some(8));
        assert_eq!(numbers.max_length, Some(64));
        let none = no_policy();
        assert_eq!(none.numbers(None, false, 0).max_length, None);
        assert_eq!(none.policy.min_length, 0);
        assert_eq!(
            unknown("x".into()).numbers(Some(0), false, 10),
            PolicyNumbers::default()
        );
    }
}
