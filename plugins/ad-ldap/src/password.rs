//! Writing passwords: an administrator's reset (one Replace of unicodePwd, then the optional
//! unlock and must-change as separate modifies) and a user's change (Delete the old value, Add
//! the new one, in one modify).
//!
//! The DC is the authority on the policy: nothing is checked locally before a write, and a
//! refusal comes back in the DC's own terms. The password travels only inside the encoded
//! unicodePwd value handed to the host; it is never formatted into a message or a log line.

use latchkey_plugin_sdk::ldap::{BinaryAttribute, Control, Modification};
use latchkey_plugin_sdk::{
    ConnectorError, SetOptions, SetOutcome, SetStatus, Step, StepOutcome, unicode_pwd,
};

use crate::account::DirectoryUser;
use crate::errors::{self, ERROR_PASSWORD_RESTRICTION, Operation, PasswordRefusal};
use crate::filetime;
use crate::policy;
use crate::session::Directory;

/// LDAP_SERVER_POLICY_HINTS: check the domain's history on a reset (Windows Server 2012+).
pub const POLICY_HINTS: &str = "1.2.840.113556.1.4.2239";
/// Its earlier OID (Windows Server 2008 R2 with the update).
pub const POLICY_HINTS_DEPRECATED: &str = "1.2.840.113556.1.4.2066";
/// The hints' value: SEQUENCE { INTEGER 1 } (enforce).
const POLICY_HINTS_VALUE: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x01];

/// The history hint control to attach, given the root DSE's `supportedControl`; none when the
/// DC supports neither OID (it would refuse a critical control it does not know, and ignore a
/// non-critical one).
pub fn history_hint(supported_controls: &[String]) -> Option<Control> {
    [POLICY_HINTS, POLICY_HINTS_DEPRECATED]
        .into_iter()
        .find(|oid| supported_controls.iter().any(|s| s.trim() == *oid))
        .map(|oid| Control {
            oid: oid.to_string(),
            critical: true,
            value: Some(POLICY_HINTS_VALUE.to_vec()),
        })
}

/// Seconds left before a change is allowed: the minimum age minus the time since pwdLastSet,
/// at least 1 (the DC has just said "too young").
pub fn too_young_seconds(min_age_seconds: u64, pwd_last_set: Option<i64>, now: i64) -> u64 {
    let since = pwd_last_set
        .and_then(filetime::filetime_to_unix)
        .map_or(0, |set| i128::from(now) - i128::from(set));
    let left = i128::from(min_age_seconds) - since.max(0);
    u64::try_from(left.max(1)).unwrap_or(u64::MAX)
}

fn unicode_pwd(value: Vec<u8>) -> BinaryAttribute {
    BinaryAttribute {
        name: "unicodePwd".into(),
        values: vec![value],
    }
}

fn replace_text(attribute: &str, value: &str) -> Modification {
    Modification::Replace(BinaryAttribute {
        name: attribute.into(),
        values: vec![value.as_bytes().to_vec()],
    })
}

fn outcome(step: Step, done: bool, detail: Option<String>) -> StepOutcome {
    StepOutcome { step, done, detail }
}

/// When the DC recorded the password: pwdLastSet read back; none if unreadable or 0.
pub fn changed_at(directory: &Directory, dn: &str) -> Option<i64> {
    directory
        .read(dn, &["pwdLastSet"])
        .ok()
        .flatten()
        .and_then(|entry| entry.integer("pwdLastSet"))
        .and_then(filetime::filetime_to_unix)
}

/// A follow-up modify after the password landed: its failure is reported in the step, not as
/// the call's error, because the password is set either way.
fn follow_up(
    directory: &Directory,
    user: &DirectoryUser,
    step: Step,
    operation: Operation,
    change: Modification,
) -> StepOutcome {
    let what = match operation {
        Operation::Unlock => "unlock (lockoutTime = 0)",
        _ => "must change at next logon (pwdLastSet = 0)",
    };
    match directory.modify(what, &user.dn, &[change], &[]) {
        Ok(Ok(())) => outcome(step, true, None),
        Ok(Err(refusal)) => outcome(
            step,
            false,
            Some(latchkey_plugin_sdk::error_message(
                &refusal.error(operation),
            )),
        ),
        Err(error) => outcome(
            step,
            false,
            Some(latchkey_plugin_sdk::error_message(&error)),
        ),
    }
}

/// An administrator's reset.
pub fn set(
    directory: &Directory,
    user: &DirectoryUser,
    password: &str,
    options: &SetOptions,
) -> Result<SetOutcome, ConnectorError> {
    let hint = if options.enforce_history {
        let root_dse = directory.root_dse(&["supportedControl"])?;
        history_hint(root_dse.values("supportedControl"))
    } else {
        None
    };
    let controls: Vec<Control> = hint.iter().cloned().collect();
    let reset = [Modification::Replace(unicode_pwd(unicode_pwd::encode(
        password,
    )))];
    if let Err(refusal) = directory.modify("reset of unicodePwd", &user.dn, &reset, &controls)? {
        return Err(refusal.error(Operation::Reset));
    }

    let mut steps = vec![outcome(Step::SetPassword, true, None)];
    if options.enforce_history {
        steps.push(match &hint {
            Some(control) => outcome(
                Step::HistoryHint,
                true,
                Some(format!(
                    "the domain controller checked the account's password history \
                     (LDAP_SERVER_POLICY_HINTS, {})",
                    control.oid
                )),
            ),
            None => outcome(
                Step::HistoryHint,
                false,
                Some(
                    "this domain controller does not support LDAP_SERVER_POLICY_HINTS, so it \
                     does not check the account's password history on a reset; Latchkey's own \
                     history of the passwords it set applies"
                        .into(),
                ),
            ),
        });
    }
    // The reset set pwdLastSet to now: read it before must-change sets it to 0.
    let changed_at = changed_at(directory, &user.dn);
    if options.unlock {
        steps.push(follow_up(
            directory,
            user,
            Step::Unlock,
            Operation::Unlock,
            replace_text("lockoutTime", "0"),
        ));
    }
    if options.must_change_at_next_logon {
        steps.push(follow_up(
            directory,
            user,
            Step::MustChange,
            Operation::MustChange,
            replace_text("pwdLastSet", "0"),
        ));
    }
    Ok(SetOutcome {
        status: SetStatus::Applied,
        steps,
        changed_at,
    })
}

/// A user's change with their current password, on the service account's session: AD lets
/// anyone who knows the old password change it, and a bind as the user would fail for a user
/// who must change at next logon.
pub fn change(
    directory: &Directory,
    user: &DirectoryUser,
    old: &str,
    new: &str,
) -> Result<SetOutcome, ConnectorError> {
    let swap = [
        Modification::Delete(unicode_pwd(unicode_pwd::encode(old))),
        Modification::Add(unicode_pwd(unicode_pwd::encode(new))),
    ];
    if let Err(refusal) = directory.modify("change of unicodePwd", &user.dn, &swap, &[])? {
        let too_young = errors::windows_code(&refusal.text) == Some(ERROR_PASSWORD_RESTRICTION)
            && errors::password_refusal(&refusal.text) == PasswordRefusal::TooYoung;
        if too_young {
            let left = policy::effective(directory, &user.dn)
                .ok()
                .map(|effective| {
                    too_young_seconds(
                        effective.policy.min_age_seconds,
                        user.pwd_last_set,
                        filetime::unix_now(),
                    )
                });
            return Err(ConnectorError::Policy(vec![errors::violation_for(
                PasswordRefusal::TooYoung,
                left,
            )]));
        }
        return Err(refusal.error(Operation::Change));
    }
    Ok(SetOutcome {
        status: SetStatus::Applied,
        steps: vec![outcome(Step::SetPassword, true, None)],
        changed_at: changed_at(directory, &user.dn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_prefers_the_current_oid() {
        let both = vec![
            "1.2.840.113556.1.4.2066".to_string(),
            "1.2.840.113556.1.4.2239".to_string(),
        ];
        let control = history_hint(&both).unwrap();
        assert_eq!(control.oid, POLICY_HINTS);
        assert!(control.critical);
        assert_eq!(control.value, Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]));

        let old = history_hint(&both[..1]).unwrap();
        assert_eq!(old.oid, POLICY_HINTS_DEPRECATED);
        assert_eq!(old.value, Some(vec![0x30, 0x03, 0x02, 0x01, 0x01]));
    }

    #[test]
    fn no_hint_on_samba_4_17() {
        // The test DC's supportedControl, as its root DSE lists it.
        let samba: Vec<String> = [
            "1.2.840.113556.1.4.1413",
            "1.2.840.113556.1.4.528",
            "1.2.840.113556.1.4.841",
            "1.2.840.113556.1.4.319",
            "2.16.840.1.113730.3.4.9",
            "1.2.840.113556.1.4.473",
            "1.2.840.113556.1.4.1504",
            "1.2.840.113556.1.4.801",
            "1.2.840.113556.1.4.805",
            "1.2.840.113556.1.4.1338",
            "1.2.840.113556.1.4.529",
            "1.2.840.113556.1.4.417",
            "1.2.840.113556.1.4.2064",
            "1.2.840.113556.1.4.1339",
            "1.2.840.113556.1.4.1340",
            "1.2.840.113556.1.4.1341",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(history_hint(&samba), None);
    }

    #[test]
    fn seconds_until_a_change_is_allowed() {
        // pwdLastSet 134404826204088650 is unix 1796009020.
        let set = Some(134_404_826_204_088_650);
        assert_eq!(too_young_seconds(86_400, set, 1_796_009_020 + 600), 85_800);
        assert_eq!(too_young_seconds(86_400, set, 1_796_009_020 + 86_400), 1);
        assert_eq!(too_young_seconds(86_400, set, 1_796_009_020 + 99_999), 1);
        // A clock behind the DC's does not make the wait longer than the minimum age.
        assert_eq!(too_young_seconds(86_400, set, 1_796_009_020 - 50), 86_400);
        assert_eq!(too_young_seconds(86_400, Some(0), 1_796_009_020), 86_400);
        assert_eq!(too_young_seconds(0, None, 0), 1);
    }
}
