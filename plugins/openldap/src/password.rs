//! Writing passwords: an administrator's reset (one Replace of userPassword as the service
//! account, then the optional unlock and must-change as separate modifies) and a user's change
//! (bound as the user: the Password Modify extended operation, or Delete old / Add new).
//!
//! Every password write carries the ppolicy request control, and the server is the authority:
//! nothing is checked locally before a write, and a refusal comes back as ppolicy's own reason
//! ([`refusal`]). The password travels only inside the values handed to the host; it is never
//! formatted into a message or a log line.

use latchkey_plugin_sdk::ldap::{BinaryAttribute, LdapError, Modification};
use latchkey_plugin_sdk::{
    ConnectorError, ErrorInfo, SetOptions, SetOutcome, SetStatus, Step, StepOutcome,
};

use crate::account::DirectoryUser;
use crate::ber::{self, PolicyError};
use crate::config::{ChangeMethod, Settings};
use crate::errors::{
    self, Operation, PolicyNumbers, RC_CONSTRAINT_VIOLATION, RC_NO_SUCH_ATTRIBUTE,
};
use crate::gtime;
use crate::policy::EffectivePolicy;
use crate::session::{Directory, WriteResult, ppolicy_request};

/// The Password Modify extended operation (RFC 3062).
pub const PASSWORD_MODIFY: &str = "1.3.6.1.4.1.4203.1.11.1";

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn attribute(name: &str, values: &[&str]) -> BinaryAttribute {
    BinaryAttribute {
        name: name.into(),
        values: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
    }
}

fn outcome(step: Step, done: bool, detail: Option<String>) -> StepOutcome {
    StepOutcome { step, done, detail }
}

/// The ppolicy error a refused write stands for: the response control's, or, without one, what
/// a constraint violation's text says.
pub fn policy_error(result: &WriteResult) -> Option<PolicyError> {
    result.policy.and_then(|p| p.error).or_else(|| {
        (result.code == RC_CONSTRAINT_VIOLATION)
            .then(|| errors::policy_error_from_text(&result.text))
            .flatten()
    })
}

/// A refused password write of `operation` as a typed error: a policy violation when ppolicy
/// says which rule, otherwise the result code's meaning. The server's text is kept for the
/// audit.
pub fn refusal(
    operation: Operation,
    result: &WriteResult,
    numbers: PolicyNumbers,
) -> ConnectorError {
    let Some(error) = policy_error(result) else {
        return errors::refused(operation, result.code, &result.text);
    };
    if operation == Operation::Change && error == PolicyError::MustSupplyOldPassword {
        return errors::wrong_old_password(&result.text);
    }
    match errors::violation_for(error, numbers) {
        Ok(violation) => ConnectorError::Policy(vec![violation]),
        Err(error) => with_directory_text(error, &result.text),
    }
}

fn with_directory_text(error: ConnectorError, text: &str) -> ConnectorError {
    let add = |info: ErrorInfo| ErrorInfo {
        directory_text: (!text.is_empty()).then(|| text.to_string()),
        ..info
    };
    match error {
        ConnectorError::Denied(info) => ConnectorError::Denied(add(info)),
        ConnectorError::Internal(info) => ConnectorError::Internal(add(info)),
        other => other,
    }
}

/// When the server recorded the password: pwdChangedTime read back.
pub fn changed_at(directory: &Directory, dn: &str) -> Option<i64> {
    directory
        .read(dn, &["pwdChangedTime"])
        .ok()
        .flatten()
        .and_then(|entry| entry.first("pwdChangedTime").and_then(gtime::parse))
}

/// A follow-up modify after the password landed: its failure is reported in the step, not as
/// the call's error, because the password is set either way.
fn follow_up(
    directory: &Directory,
    user: &DirectoryUser,
    step: Step,
    operation: Operation,
    what: &str,
    changes: &[Modification],
    done_detail: Option<String>,
) -> StepOutcome {
    match directory.modify(what, &user.dn, changes, &[]) {
        Ok(result) if result.code == 0 => outcome(step, true, done_detail),
        Ok(result) => outcome(
            step,
            false,
            Some(latchkey_plugin_sdk::error_message(&errors::refused(
                operation,
                result.code,
                &result.text,
            ))),
        ),
        Err(error) => outcome(
            step,
            false,
            Some(latchkey_plugin_sdk::error_message(&error)),
        ),
    }
}

/// Deleting pwdAccountLockedTime is the unlock: ppolicy then clears pwdFailureTime itself
/// (pwdFailureTime is not user-modifiable). ppolicy also clears both on every successful
/// password write, so after a reset the lock is usually gone already (seen on slapd 2.5).
fn unlock(directory: &Directory, user: &DirectoryUser) -> StepOutcome {
    const CLEARED: &str = "the password write cleared the lock (ppolicy unlocks an account whose \
                           password is changed)";
    if !user.lock_recorded {
        return outcome(
            Step::Unlock,
            true,
            Some("the account was not locked (no pwdAccountLockedTime)".into()),
        );
    }
    let delete = [Modification::Delete(attribute("pwdAccountLockedTime", &[]))];
    match directory.modify(
        "unlock (delete pwdAccountLockedTime)",
        &user.dn,
        &delete,
        &[],
    ) {
        Ok(result) if result.code == RC_NO_SUCH_ATTRIBUTE => {
            outcome(Step::Unlock, true, Some(CLEARED.into()))
        }
        Ok(result) if result.code == 0 => outcome(Step::Unlock, true, None),
        Ok(result) => outcome(
            Step::Unlock,
            false,
            Some(latchkey_plugin_sdk::error_message(&errors::refused(
                Operation::Unlock,
                result.code,
                &result.text,
            ))),
        ),
        Err(error) => outcome(
            Step::Unlock,
            false,
            Some(latchkey_plugin_sdk::error_message(&error)),
        ),
    }
}

fn must_change(
    directory: &Directory,
    settings: &Settings,
    effective: &EffectivePolicy,
    user: &DirectoryUser,
) -> StepOutcome {
    if !settings.must_change_sets_pwd_reset {
        return outcome(
            Step::MustChange,
            false,
            Some(
                "not done: must_change_sets_pwd_reset is off in the connector's configuration"
                    .into(),
            ),
        );
    }
    let step = follow_up(
        directory,
        user,
        Step::MustChange,
        Operation::MustChange,
        "must change at next logon (pwdReset: TRUE)",
        &[Modification::Replace(attribute("pwdReset", &["TRUE"]))],
        None,
    );
    if step.done && !effective.must_change {
        return outcome(
            Step::MustChange,
            false,
            Some(format!(
                "pwdReset was set, but the password policy ({}) has no pwdMustChange: TRUE, so \
                 the server does not make the user change the password",
                effective.dn.as_deref().unwrap_or("none")
            )),
        );
    }
    step
}

/// An administrator's reset, as the service account.
pub fn set(
    directory: &Directory,
    settings: &Settings,
    effective: &EffectivePolicy,
    user: &DirectoryUser,
    password: &str,
    options: &SetOptions,
) -> Result<SetOutcome, ConnectorError> {
    let reset = [Modification::Replace(attribute(
        "userPassword",
        &[password],
    ))];
    let result = directory.modify(
        "reset of userPassword",
        &user.dn,
        &reset,
        &[ppolicy_request()],
    )?;
    if result.code != 0 {
        let numbers = effective.numbers(user.changed_at, user.pwd_reset, unix_now());
        return Err(refusal(Operation::Reset, &result, numbers));
    }
    let mut steps = vec![outcome(Step::SetPassword, true, None)];
    if options.enforce_history {
        let history = effective.policy.history_length;
        steps.push(if history > 0 {
            outcome(
                Step::HistoryHint,
                true,
                Some(format!(
                    "ppolicy checks the account's last {history} passwords on this reset, as it \
                     does for a service account without manage access to userPassword (one with \
                     manage access skips every ppolicy check)"
                )),
            )
        } else {
            outcome(
                Step::HistoryHint,
                false,
                Some(
                    "the account's password policy keeps no history (pwdInHistory is 0 or \
                     absent); Latchkey's own history of the passwords it set applies"
                        .into(),
                ),
            )
        });
    }
    if options.unlock {
        steps.push(unlock(directory, user));
    }
    if options.must_change_at_next_logon {
        steps.push(must_change(directory, settings, effective, user));
    }
    Ok(SetOutcome {
        status: SetStatus::Applied,
        steps,
        changed_at: changed_at(directory, &user.dn),
    })
}

/// A user's change with their current password, bound as the user (ppolicy then applies the
/// user's own rules: pwdAllowUserChange, pwdSafeModify, the minimum age, history).
pub fn change(
    service: &Directory,
    settings: &Settings,
    effective: &EffectivePolicy,
    user: &DirectoryUser,
    old: &str,
    new: &str,
) -> Result<SetOutcome, ConnectorError> {
    let as_user = match Directory::open_as_user(&user.dn, old) {
        Ok(session) => session,
        Err(LdapError::BindFailed(text)) if user.lock_recorded => {
            return Err(ConnectorError::Denied(ErrorInfo {
                message: "the account is locked out, so the user's current password cannot be \
                          checked; an administrator's reset with unlock is the way out"
                    .into(),
                directory_text: Some(text),
            }));
        }
        Err(LdapError::BindFailed(text)) => return Err(errors::wrong_old_password(&text)),
        Err(other) => return Err(errors::from_host(&other)),
    };
    let result = match settings.change_method {
        ChangeMethod::PasswordModify => as_user.extended(
            "user change (Password Modify)",
            &user.dn,
            PASSWORD_MODIFY,
            ber::encode_password_modify(Some(&user.dn), Some(old), Some(new)),
            &[ppolicy_request()],
        )?,
        ChangeMethod::DeleteAdd => as_user.modify(
            "user change (delete old, add new userPassword)",
            &user.dn,
            &[
                Modification::Delete(attribute("userPassword", &[old])),
                Modification::Add(attribute("userPassword", &[new])),
            ],
            &[ppolicy_request()],
        )?,
    };
    drop(as_user);
    if result.code != 0 {
        let numbers = effective.numbers(user.changed_at, user.pwd_reset, unix_now());
        return Err(refusal(Operation::Change, &result, numbers));
    }
    Ok(SetOutcome {
        status: SetStatus::Applied,
        steps: vec![outcome(Step::SetPassword, true, None)],
        changed_at: changed_at(service, &user.dn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_plugin_sdk::Violation;

    fn result(code: u32, text: &str, control: Option<&[u8]>) -> WriteResult {
        WriteResult {
            code,
            text: text.into(),
            policy: control.and_then(ber::decode_policy_response),
        }
    }

    fn numbers() -> PolicyNumbers {
        PolicyNumbers {
            min_length: Some(8),
            max_length: Some(64),
            too_young_seconds: Some(3599),
        }
    }

    #[test]
    fn the_control_decides_the_violation() {
        // slapd says "fails quality checking policy" for a short password; the control says
        // which rule.
        let short = result(
            19,
            "Password fails quality checking policy",
            Some(&[0x30, 0x03, 0x81, 0x01, 0x06]),
        );
        assert_eq!(
            refusal(Operation::Reset, &short, numbers()),
            ConnectorError::Policy(vec![Violation::TooShort(8)])
        );
        let young = result(
            19,
            "Password is too young to change",
            Some(&[0x30, 0x03, 0x81, 0x01, 0x07]),
        );
        assert_eq!(
            refusal(Operation::Change, &young, numbers()),
            ConnectorError::Policy(vec![Violation::TooYoung(3599)])
        );
    }

    #[test]
    fn without_a_control_the_text_is_read() {
        let history = result(19, "Password is in history of old passwords", None);
        assert_eq!(
            refusal(Operation::Change, &history, numbers()),
            ConnectorError::Policy(vec![Violation::InHistory])
        );
        // A malformed control is ignored, not trusted.
        let malformed = result(
            19,
            "Password is in history of old passwords",
            Some(&[0x30, 0x05]),
        );
        assert_eq!(
            refusal(Operation::Reset, &malformed, numbers()),
            ConnectorError::Policy(vec![Violation::InHistory])
        );
    }

    #[test]
    fn old_password_refusals_of_a_change_are_wrong_old_password() {
        let delete_add = result(
            53,
            "Must supply correct old password to change to new one",
            Some(&[0x30, 0x03, 0x81, 0x01, 0x04]),
        );
        assert!(matches!(
            refusal(Operation::Change, &delete_add, numbers()),
            ConnectorError::WrongOldPassword(_)
        ));
        let exop = result(53, "unwilling to verify old password", None);
        assert!(matches!(
            refusal(Operation::Change, &exop, numbers()),
            ConnectorError::WrongOldPassword(_)
        ));
        // On a reset, the same ppolicy error is the policy's pwdSafeModify.
        let ConnectorError::Denied(info) = refusal(Operation::Reset, &delete_add, numbers()) else {
            panic!()
        };
        assert!(info.message.contains("pwdSafeModify"));
        assert_eq!(
            info.directory_text.as_deref(),
            Some("Must supply correct old password to change to new one")
        );
    }

    #[test]
    fn other_refusals_keep_their_meaning() {
        assert!(matches!(
            refusal(Operation::Reset, &result(50, "", None), numbers()),
            ConnectorError::Denied(_)
        ));
        assert!(matches!(
            refusal(Operation::Reset, &result(32, "", None), numbers()),
            ConnectorError::NotFound(_)
        ));
    }
}
