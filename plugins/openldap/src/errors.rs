//! What the server's refusals mean, in words an administrator can act on.
//!
//! slapd answers a refused password with result 19 (constraint violation) and a short text that
//! often does not say which rule was broken ("Password fails quality checking policy" stands
//! for too short, too long and unhashable alike). The ppolicy response control does say, so
//! every password write asks for it, and [`violation_for`] turns its error into a typed
//! violation; the text is only a fallback for servers that send no control. The sentence for
//! people goes in `message`; the server's raw text only in `directory-text`, for the audit. No
//! password ever reaches either: the server's texts do not contain them, and nothing here is
//! handed one.

use latchkey_plugin_sdk::ldap::LdapError;
use latchkey_plugin_sdk::{ConnectorError, ErrorInfo, Violation};

use crate::ber::PolicyError;

/// What the plugin was doing when the server refused: it decides which right a denial names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading users, policies or the root DSE.
    Read,
    /// An administrator's reset (Replace userPassword as the service account).
    Reset,
    /// Clearing a lockout (deleting pwdAccountLockedTime).
    Unlock,
    /// Requiring a change at next logon (pwdReset: TRUE).
    MustChange,
    /// A user's change, bound as the user.
    Change,
}

// LDAP result codes (RFC 4511).
pub const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
pub const RC_NO_SUCH_ATTRIBUTE: u32 = 16;
pub const RC_CONSTRAINT_VIOLATION: u32 = 19;
pub const RC_NO_SUCH_OBJECT: u32 = 32;
pub const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;
pub const RC_UNWILLING_TO_PERFORM: u32 = 53;
const RC_CONFIDENTIALITY_REQUIRED: u32 = 13;
const RC_STRONGER_AUTH_REQUIRED: u32 = 8;

/// What the caller knows of the policy, to put numbers in the violations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyNumbers {
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    /// Seconds until a change is allowed, when the caller could work it out.
    pub too_young_seconds: Option<u64>,
}

fn info(message: impl Into<String>, directory_text: &str) -> ErrorInfo {
    ErrorInfo {
        message: message.into(),
        directory_text: (!directory_text.is_empty()).then(|| directory_text.to_string()),
    }
}

/// ppolicy's error as what it means for this operation: a violation (the password is the
/// problem), or an error (the account or the setup is).
pub fn violation_for(
    error: PolicyError,
    numbers: PolicyNumbers,
) -> Result<Violation, ConnectorError> {
    Ok(match error {
        PolicyError::PasswordTooShort => match numbers.min_length {
            Some(min) => Violation::TooShort(min),
            None => Violation::RejectedByDirectory(
                "the password is shorter than the directory's password policy allows".into(),
            ),
        },
        PolicyError::PasswordTooLong => match numbers.max_length {
            Some(max) => Violation::TooLong(max),
            None => Violation::RejectedByDirectory(
                "the password is longer than the directory's password policy allows".into(),
            ),
        },
        PolicyError::PasswordInHistory => Violation::InHistory,
        PolicyError::PasswordTooYoung => match numbers.too_young_seconds {
            Some(seconds) => Violation::TooYoung(seconds.max(1)),
            None => Violation::RejectedByDirectory(
                "the password was changed too recently: the policy's minimum age (pwdMinAge) \
                 has not passed yet"
                    .into(),
            ),
        },
        PolicyError::InsufficientPasswordQuality => Violation::RejectedByDirectory(
            "the directory's password quality check refused it (its pwdCheckModule, or a \
             password it could not check)"
                .into(),
        ),
        PolicyError::PasswordModNotAllowed => {
            return Err(ConnectorError::Denied(ErrorInfo {
                message: "the password policy does not let this password be changed \
                          (pwdAllowUserChange is FALSE, and the service account is not a \
                          password administrator): set pwdAllowUserChange: TRUE in the policy, \
                          or give the service account manage access to userPassword"
                    .into(),
                directory_text: None,
            }));
        }
        PolicyError::MustSupplyOldPassword => {
            return Err(ConnectorError::Denied(ErrorInfo {
                message: "the password policy requires the current password with every change \
                          (pwdSafeModify is TRUE), which an administrator's reset does not have: \
                          set pwdSafeModify: FALSE, or give the service account manage access to \
                          userPassword"
                    .into(),
                directory_text: None,
            }));
        }
        PolicyError::AccountLocked => {
            return Err(ConnectorError::Denied(ErrorInfo {
                message: "the account is locked out; reset its password with unlock".into(),
                directory_text: None,
            }));
        }
        PolicyError::PasswordExpired | PolicyError::ChangeAfterReset => {
            return Err(ConnectorError::Denied(ErrorInfo {
                message: "the identity that made the change must itself change its password \
                          first (its password expired or was reset)"
                    .into(),
                directory_text: None,
            }));
        }
        PolicyError::Other(code) => Violation::RejectedByDirectory(format!(
            "the directory's password policy refused it (ppolicy error {code})"
        )),
    })
}

/// What slapd's text says, for a refusal that came without a response control.
pub fn policy_error_from_text(text: &str) -> Option<PolicyError> {
    let lower = text.to_lowercase();
    if lower.contains("too young") || lower.contains("changed too recently") {
        Some(PolicyError::PasswordTooYoung)
    } else if lower.contains("history") || lower.contains("not being changed from existing") {
        Some(PolicyError::PasswordInHistory)
    } else if lower.contains("too short") {
        Some(PolicyError::PasswordTooShort)
    } else if lower.contains("too long") {
        Some(PolicyError::PasswordTooLong)
    } else if lower.contains("quality") {
        Some(PolicyError::InsufficientPasswordQuality)
    } else if lower.contains("old password") {
        Some(PolicyError::MustSupplyOldPassword)
    } else {
        None
    }
}

/// The right a denial of `operation` is missing, as advice.
pub fn missing_right(operation: Operation) -> &'static str {
    match operation {
        Operation::Reset => {
            "the service account may not write userPassword on this user: grant it write \
             access, e.g. `access to dn.subtree=\"<base_dn>\" attrs=userPassword by \
             dn.exact=\"<bind_dn>\" write ...`"
        }
        Operation::Unlock => {
            "the service account may not write pwdAccountLockedTime on this user, which \
             unlocking needs: grant it write access to that attribute"
        }
        Operation::MustChange => {
            "the service account may not write pwdReset on this user, which \"must change at \
             next logon\" needs: grant it write access to pwdReset"
        }
        Operation::Change => {
            "the directory does not let this user change their own password (no `by self write` \
             on userPassword); an administrator's reset is needed"
        }
        Operation::Read => {
            "the service account may not read what the connector needs here: grant it read \
             access to the users, their operational attributes and the password policy entries"
        }
    }
}

/// A non-zero result of `operation` that carried no policy information, as a typed error.
pub fn refused(operation: Operation, code: u32, text: &str) -> ConnectorError {
    match code {
        RC_INSUFFICIENT_ACCESS => ConnectorError::Denied(info(missing_right(operation), text)),
        RC_NO_SUCH_OBJECT => ConnectorError::NotFound(info(
            "the directory has no such entry; it may have been deleted or renamed",
            text,
        )),
        RC_UNWILLING_TO_PERFORM | RC_CONSTRAINT_VIOLATION
            if operation == Operation::Change && text.to_lowercase().contains("old password") =>
        {
            wrong_old_password(text)
        }
        RC_BUSY | RC_UNAVAILABLE => ConnectorError::Unavailable(info(
            "the LDAP server is busy or unavailable; try again later",
            text,
        )),
        RC_CONFIDENTIALITY_REQUIRED | RC_STRONGER_AUTH_REQUIRED => {
            ConnectorError::InvalidConfig(info(
                "the server requires an encrypted connection: use ldaps:// or starttls",
                text,
            ))
        }
        _ => ConnectorError::Internal(info(
            format!(
                "the LDAP server refused the operation (LDAP result {code}); its own words are in \
                 the audit"
            ),
            text,
        )),
    }
}

/// The error for a user's change whose current password the server did not accept.
pub fn wrong_old_password(text: &str) -> ConnectorError {
    ConnectorError::WrongOldPassword(info(
        "the directory did not accept the current password given for this account (the attempt \
         may count toward a lockout); the stored password is out of date, and an administrator's \
         reset is the way out",
        text,
    ))
}

/// A failure of the host's `ldap` capability as a typed error.
pub fn from_host(error: &LdapError) -> ConnectorError {
    let plain = |message: String| ErrorInfo {
        message,
        directory_text: None,
    };
    match error {
        LdapError::Unavailable(text) => ConnectorError::Unavailable(plain(format!(
            "could not reach the LDAP server ({text}); try again later, and check host, port and \
             firewall if it persists"
        ))),
        LdapError::Timeout(text) => ConnectorError::Unavailable(plain(format!(
            "the LDAP server did not answer in time ({text}); try again later, or raise timeout_ms"
        ))),
        LdapError::Tls(text) => ConnectorError::InvalidConfig(plain(format!(
            "TLS with the LDAP server failed ({text}): check ca_file, the names in the server's \
             certificate, and starttls for ldap:// URLs"
        ))),
        LdapError::NotConfigured(text) => ConnectorError::InvalidConfig(plain(text.clone())),
        LdapError::BindFailed(text) => ConnectorError::Denied(info(
            "the LDAP server refused the service account's bind: check bind_dn and the \
             bind_password secret (and that the service account is not locked out by its own \
             password policy)",
            text,
        )),
        LdapError::LimitExceeded(text) | LdapError::InvalidRequest(text) => {
            ConnectorError::Internal(plain(format!(
                "the host refused the connector's LDAP request ({text}); this is a bug in the \
                 openldap plugin or a host limit"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: &ConnectorError) -> String {
        latchkey_plugin_sdk::error_message(error)
    }

    fn numbers() -> PolicyNumbers {
        PolicyNumbers {
            min_length: Some(8),
            max_length: Some(64),
            too_young_seconds: Some(1200),
        }
    }

    #[test]
    fn each_policy_error_is_a_typed_violation() {
        for (error, violation) in [
            (PolicyError::PasswordTooShort, Violation::TooShort(8)),
            (PolicyError::PasswordTooLong, Violation::TooLong(64)),
            (PolicyError::PasswordInHistory, Violation::InHistory),
            (PolicyError::PasswordTooYoung, Violation::TooYoung(1200)),
        ] {
            assert_eq!(violation_for(error, numbers()).unwrap(), violation);
        }
        assert!(matches!(
            violation_for(PolicyError::InsufficientPasswordQuality, numbers()).unwrap(),
            Violation::RejectedByDirectory(_)
        ));
        assert!(matches!(
            violation_for(PolicyError::Other(12), numbers()).unwrap(),
            Violation::RejectedByDirectory(text) if text.contains("12")
        ));
    }

    #[test]
    fn without_numbers_the_violation_says_so_in_words() {
        let none = PolicyNumbers::default();
        for error in [
            PolicyError::PasswordTooShort,
            PolicyError::PasswordTooLong,
            PolicyError::PasswordTooYoung,
        ] {
            assert!(matches!(
                violation_for(error, none).unwrap(),
                Violation::RejectedByDirectory(_)
            ));
        }
        // A wait of 0 is never reported: the server has just said "too young".
        let zero = PolicyNumbers {
            too_young_seconds: Some(0),
            ..none
        };
        assert_eq!(
            violation_for(PolicyError::PasswordTooYoung, zero).unwrap(),
            Violation::TooYoung(1)
        );
    }

    #[test]
    fn setup_problems_are_errors_with_advice() {
        let Err(ConnectorError::Denied(info)) =
            violation_for(PolicyError::MustSupplyOldPassword, numbers())
        else {
            panic!()
        };
        assert!(info.message.contains("pwdSafeModify"));
        let Err(ConnectorError::Denied(info)) =
            violation_for(PolicyError::PasswordModNotAllowed, numbers())
        else {
            panic!()
        };
        assert!(info.message.contains("pwdAllowUserChange"));
        assert!(matches!(
            violation_for(PolicyError::AccountLocked, numbers()),
            Err(ConnectorError::Denied(_))
        ));
    }

    #[test]
    fn slapd_texts_without_a_control() {
        // slapd 2.5.13's texts, seen on the test server.
        for (text, error) in [
            (
                "Password is too young to change",
                PolicyError::PasswordTooYoung,
            ),
            (
                "Password is in history of old passwords",
                PolicyError::PasswordInHistory,
            ),
            (
                "Password is not being changed from existing value",
                PolicyError::PasswordInHistory,
            ),
            (
                "Password fails quality checking policy",
                PolicyError::InsufficientPasswordQuality,
            ),
            (
                "Must supply correct old password to change to new one",
                PolicyError::MustSupplyOldPassword,
            ),
        ] {
            assert_eq!(policy_error_from_text(text), Some(error), "{text}");
        }
        assert_eq!(policy_error_from_text("no such object"), None);
    }

    #[test]
    fn refusals() {
        let denied = refused(Operation::Reset, 50, "no write access to parent");
        assert!(matches!(denied, ConnectorError::Denied(_)));
        assert!(message(&denied).contains("userPassword"));
        assert_eq!(
            latchkey_plugin_sdk::error_directory_text(&denied),
            Some("no write access to parent")
        );
        assert!(message(&refused(Operation::MustChange, 50, "")).contains("pwdReset"));
        assert!(message(&refused(Operation::Unlock, 50, "")).contains("pwdAccountLockedTime"));
        assert!(matches!(
            refused(Operation::Read, 32, ""),
            ConnectorError::NotFound(_)
        ));
        assert!(matches!(
            refused(Operation::Change, 53, "unwilling to verify old password"),
            ConnectorError::WrongOldPassword(_)
        ));
        assert!(matches!(
            refused(Operation::Reset, 53, "unwilling to verify old password"),
            ConnectorError::Internal(_)
        ));
        assert!(matches!(
            refused(Operation::Reset, 13, "confidentiality required"),
            ConnectorError::InvalidConfig(_)
        ));
        let busy = refused(Operation::Reset, 51, "");
        assert!(matches!(busy, ConnectorError::Unavailable(_)));
        assert_eq!(latchkey_plugin_sdk::error_directory_text(&busy), None);
    }

    #[test]
    fn host_errors() {
        assert!(matches!(
            from_host(&LdapError::Unavailable("refused".into())),
            ConnectorError::Unavailable(_)
        ));
        assert!(matches!(
            from_host(&LdapError::Tls("unknown issuer".into())),
            ConnectorError::InvalidConfig(_)
        ));
        let bind = from_host(&LdapError::BindFailed("Invalid credentials".into()));
        assert!(matches!(bind, ConnectorError::Denied(_)));
        assert!(!message(&bind).contains("Invalid credentials"));
        assert!(matches!(
            from_host(&LdapError::InvalidRequest("bad filter".into())),
            ConnectorError::Internal(_)
        ));
    }
}
