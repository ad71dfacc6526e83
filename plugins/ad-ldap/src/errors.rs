//! What Active Directory's refusals mean, in words an administrator can act on.
//!
//! A DC answers with an LDAP result code and a text that starts with a Windows error code
//! (`0000052D: Constraint violation - …`); a failed bind carries its reason as `data 52e`. This
//! module turns both, and the host's own `ldap-error`s, into typed `connector-error`s. The
//! sentence for people goes in `message`; the DC's raw text only in `directory-text`, for the
//! audit. No password ever reaches either: the DC's texts do not contain them, and nothing
//! here is handed one.

use latchkey_plugin_sdk::ldap::LdapError;
use latchkey_plugin_sdk::{ConnectorError, ErrorInfo, Violation};

/// What the plugin was doing when the DC refused: it decides which right a denial names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading users, policies or the root DSE.
    Read,
    /// An administrator's reset (Replace unicodePwd).
    Reset,
    /// Clearing a lockout (Replace lockoutTime).
    Unlock,
    /// Requiring a change at next logon (Replace pwdLastSet).
    MustChange,
    /// A user's change (Delete old, Add new unicodePwd).
    Change,
}

// Windows error codes at the start of a DC's text.
pub const ERROR_ACCESS_DENIED: u32 = 0x0000_0005;
/// Also "the connection is not encrypted" for a password write.
const ERROR_NOT_ENOUGH_QUOTA_OR_UNENCRYPTED: u32 = 0x0000_001F;
const ERROR_INVALID_PASSWORD: u32 = 0x0000_0056;
pub const ERROR_PASSWORD_RESTRICTION: u32 = 0x0000_052D;
const ERROR_ACCOUNT_LOCKED_OUT: u32 = 0x0000_0775;
/// Samba 4.17's refusal of an unquoted unicodePwd ("not allowed to set the NT hash password
/// directly").
pub const ERROR_SAMBA_NT_HASH_DIRECTLY: u32 = 0x0000_2035;
pub const ERROR_DS_UNWILLING_UNQUOTED: u32 = 0x0000_216C;
const ERROR_DS_NO_WRITE_PROPERTY_ACCESS: u32 = 0x0000_2098;

// LDAP result codes (RFC 4511).
pub const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
pub const RC_UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;
pub const RC_CONSTRAINT_VIOLATION: u32 = 19;
pub const RC_NO_SUCH_OBJECT: u32 = 32;
pub const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;
pub const RC_UNWILLING_TO_PERFORM: u32 = 53;

/// The generic refusal of AD, which does not say which rule a password broke.
pub const UNSPECIFIED_POLICY: &str = "the password does not meet the domain's password policy \
     (length, complexity, history or minimum age); Active Directory does not say which";

/// The Windows error code a DC's text starts with (`0000052D: …` → 0x52D).
pub fn windows_code(text: &str) -> Option<u32> {
    let hex = text.trim_start().get(..8)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// What Samba's text says about a refused password (Windows says none of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRefusal {
    TooShort(u32),
    TooYoung,
    InHistory,
    NotComplex,
    Unspecified,
}

/// Read Samba's words in a `0000052D` text, e.g. `… the password is too short. It should be
/// equal or longer than 7 characters!`, `… password is too young to change!`, `… the password
/// was already used (in history)!`, `… does not meet the complexity criteria!`.
pub fn password_refusal(text: &str) -> PasswordRefusal {
    let lower = text.to_lowercase();
    if lower.contains("too young") {
        PasswordRefusal::TooYoung
    } else if lower.contains("too short") {
        minimum_from(&lower).map_or(PasswordRefusal::Unspecified, PasswordRefusal::TooShort)
    } else if lower.contains("history")
        || lower.contains("already used")
        || lower.contains("already been used")
    {
        PasswordRefusal::InHistory
    } else if lower.contains("complexity") || lower.contains("not complex") {
        PasswordRefusal::NotComplex
    } else {
        PasswordRefusal::Unspecified
    }
}

/// N in "equal or longer than N".
fn minimum_from(lower: &str) -> Option<u32> {
    let rest = &lower[lower.find("longer than")? + "longer than".len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The violation a refusal stands for. `too_young_seconds` is how long is left before a
/// change is allowed, when the caller could work it out.
pub fn violation_for(refusal: PasswordRefusal, too_young_seconds: Option<u64>) -> Violation {
    match refusal {
        PasswordRefusal::TooShort(min) => Violation::TooShort(min),
        PasswordRefusal::NotComplex => Violation::NotComplex(3),
        PasswordRefusal::InHistory => Violation::InHistory,
        PasswordRefusal::TooYoung => match too_young_seconds {
            Some(seconds) => Violation::TooYoung(seconds.max(1)),
            None => Violation::RejectedByDirectory(
                "the password was changed too recently: the domain's minimum password age has \
                 not passed yet"
                    .into(),
            ),
        },
        PasswordRefusal::Unspecified => Violation::RejectedByDirectory(UNSPECIFIED_POLICY.into()),
    }
}

fn info(message: impl Into<String>, directory_text: &str) -> ErrorInfo {
    ErrorInfo {
        message: message.into(),
        directory_text: (!directory_text.is_empty()).then(|| directory_text.to_string()),
    }
}

/// The right a denial of `operation` is missing, as advice.
pub fn missing_right(operation: Operation) -> &'static str {
    match operation {
        Operation::Reset => {
            "the service account lacks the Reset Password right on this user: delegate \
             \"Reset user passwords and force password change at next logon\" on the OU holding \
             the users (Active Directory Users and Computers → Delegate Control)"
        }
        Operation::Unlock => {
            "the service account may not write lockoutTime on this user, which unlocking needs: \
             grant it Read and write lockoutTime on user objects of the OU holding the users \
             (Delegate Control → custom task → Property-specific)"
        }
        Operation::MustChange => {
            "the service account may not write pwdLastSet on this user, which \"must change at \
             next logon\" needs: delegate \"Reset user passwords and force password change at \
             next logon\" on the OU holding the users"
        }
        Operation::Change => {
            "Active Directory does not let this user change their own password (the Change \
             Password right is denied, e.g. \"User cannot change password\" is set); an \
             administrator's reset is needed"
        }
        Operation::Read => {
            "the service account may not read what the connector needs here: grant it Read on \
             the OU holding the users"
        }
    }
}

/// A non-zero LDAP result of `operation` as a typed error. (`0000052D` refusals of a change
/// that came too early are resolved by the caller, who can say how long to wait.)
pub fn refused(operation: Operation, code: u32, text: &str) -> ConnectorError {
    match windows_code(text) {
        Some(ERROR_PASSWORD_RESTRICTION) => {
            ConnectorError::Policy(vec![violation_for(password_refusal(text), None)])
        }
        Some(ERROR_INVALID_PASSWORD) => ConnectorError::WrongOldPassword(info(
            "Active Directory did not accept the current password given for this account (the \
             attempt may count toward a lockout); the stored password is out of date, and an \
             administrator's reset is the way out",
            text,
        )),
        Some(ERROR_ACCESS_DENIED | ERROR_DS_NO_WRITE_PROPERTY_ACCESS) => {
            ConnectorError::Denied(info(missing_right(operation), text))
        }
        Some(ERROR_NOT_ENOUGH_QUOTA_OR_UNENCRYPTED) => ConnectorError::InvalidConfig(info(
            "the connection is not encrypted: use ldaps:// or starttls",
            text,
        )),
        Some(ERROR_DS_UNWILLING_UNQUOTED) => ConnectorError::Internal(info(
            "the connector sent a password value without its quotes; this is a bug in the \
             ad-ldap plugin",
            text,
        )),
        Some(ERROR_ACCOUNT_LOCKED_OUT) => ConnectorError::Denied(info(
            "the account is locked out; reset it with unlock",
            text,
        )),
        _ => match code {
            // Samba says `insufficient access rights during LDB_MODIFY` without a code.
            RC_INSUFFICIENT_ACCESS => ConnectorError::Denied(info(missing_right(operation), text)),
            RC_NO_SUCH_OBJECT => ConnectorError::NotFound(info(
                "the directory has no such object; it may have been deleted or moved",
                text,
            )),
            RC_BUSY | RC_UNAVAILABLE => ConnectorError::Unavailable(info(
                "the domain controller is busy or unavailable; try again later",
                text,
            )),
            RC_UNAVAILABLE_CRITICAL_EXTENSION => ConnectorError::Internal(info(
                "the domain controller does not support a control the connector required; \
                 this is a bug in the ad-ldap plugin",
                text,
            )),
            _ => ConnectorError::Internal(info(
                format!(
                    "Active Directory refused the operation (LDAP result {code}); its own words \
                     are in the audit"
                ),
                text,
            )),
        },
    }
}

/// The `data NNN` reason of a failed AD bind
/// (`80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1`).
pub fn bind_data_code(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let rest = &lower[lower.find("data ")? + "data ".len()..];
    let code: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (!code.is_empty()).then_some(code)
}

/// Why the service account's bind failed, and what to do, from the DC's text.
pub fn bind_failure(text: &str) -> (&'static str, &'static str) {
    match bind_data_code(text).as_deref() {
        Some("52e") => (
            "the domain controller refused the service account's password",
            "check bind_dn and the bind_password secret",
        ),
        Some("525") => (
            "no account has the DN in bind_dn",
            "set bind_dn to the service account's full distinguished name",
        ),
        Some("530") | Some("531") => (
            "the service account may not log on at this time or from this computer",
            "clear the logon-hours or logon-workstations restriction on the service account",
        ),
        Some("532") => (
            "the service account's password has expired",
            "set a new password on the service account, store it in the bind_password secret, \
             and consider \"password never expires\" for it",
        ),
        Some("533") => (
            "the service account is disabled",
            "enable the service account in Active Directory",
        ),
        Some("701") => (
            "the service account has expired",
            "extend or clear the service account's expiry date",
        ),
        Some("773") => (
            "the service account must change its password at next logon",
            "set a new password on the service account and store it in the bind_password secret",
        ),
        Some("775") => (
            "the service account is locked out",
            "unlock the service account, then check the bind_password secret: wrong passwords \
             lock it",
        ),
        _ => (
            "the domain controller refused the service account's bind",
            "check bind_dn and the bind_password secret",
        ),
    }
}

/// A failure of the host's `ldap` capability as a typed error.
pub fn from_host(error: &LdapError) -> ConnectorError {
    match error {
        LdapError::Unavailable(text) => ConnectorError::Unavailable(ErrorInfo {
            message: format!(
                "could not reach the domain controller ({text}); try again later, and check \
                 host, port and firewall if it persists"
            ),
            directory_text: None,
        }),
        LdapError::Timeout(text) => ConnectorError::Unavailable(ErrorInfo {
            message: format!(
                "the domain controller did not answer in time ({text}); try again later, or \
                 raise timeout_ms"
            ),
            directory_text: None,
        }),
        LdapError::Tls(text) => ConnectorError::InvalidConfig(ErrorInfo {
            message: format!(
                "TLS with the domain controller failed ({text}): check ca_file, the names in \
                 the DC's certificate, and starttls for ldap:// URLs"
            ),
            directory_text: None,
        }),
        LdapError::NotConfigured(text) => ConnectorError::InvalidConfig(ErrorInfo {
            message: text.clone(),
            directory_text: None,
        }),
        LdapError::BindFailed(text) => {
            let (what, advice) = bind_failure(text);
            ConnectorError::Denied(info(format!("{what}: {advice}"), text))
        }
        LdapError::LimitExceeded(text) | LdapError::InvalidRequest(text) => {
            ConnectorError::Internal(ErrorInfo {
                message: format!(
                    "the host refused the connector's LDAP request ({text}); this is a bug in \
                     the ad-ldap plugin or a host limit"
                ),
                directory_text: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOO_SHORT: &str = "0000052D: Constraint violation - check_password_restrictions: the \
        password is too short. It should be equal or longer than 7 characters!";
    const TOO_YOUNG: &str = "0000052D: Constraint violation - check_password_restrictions: password is too young to change!";
    const NOT_COMPLEX: &str = "0000052D: Constraint violation - check_password_restrictions: the \
        password does not meet the complexity criteria!";
    const IN_HISTORY: &str = "0000052D: Constraint violation - check_password_restrictions: the \
        password was already used (in history)!";
    const PREVIOUS: &str = "0000052D: Constraint violation - check_password_restrictions: the \
        password was already used (previous password)!";
    const WINDOWS_052D: &str =
        "0000052D: SvcErr: DSID-031A1248, problem 5003 (WILL_NOT_PERFORM), data 0";
    const SAMBA_NO_RIGHT: &str =
        "error in module acl: insufficient access rights during LDB_MODIFY (50)";
    const NO_WRITE_PROPERTY: &str =
        "00002098: Object CN=alice,OU=Staff,DC=corp,DC=test has no write property access";
    const WRONG_OLD: &str = "00000056: Constraint violation - check_password_restrictions: The \
        old password specified doesn't match!";
    const LOCKED: &str = "00000775: Password change not permitted, account locked out! at \
        ../../source4/dsdb/samdb/ldb_modules/password_hash.c:3929:setup_io";
    const BAD_BIND: &str =
        "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1";

    fn message(error: &ConnectorError) -> String {
        latchkey_plugin_sdk::error_message(error)
    }

    fn directory_text(error: &ConnectorError) -> Option<&str> {
        latchkey_plugin_sdk::error_directory_text(error)
    }

    #[test]
    fn windows_codes_are_read_from_the_start_of_the_text() {
        assert_eq!(windows_code(TOO_SHORT), Some(0x52D));
        assert_eq!(windows_code(NO_WRITE_PROPERTY), Some(0x2098));
        assert_eq!(windows_code(SAMBA_NO_RIGHT), None);
        assert_eq!(windows_code("0000"), None);
        assert_eq!(windows_code(""), None);
    }

    #[test]
    fn sambas_words_become_typed_violations() {
        assert_eq!(
            refused(Operation::Reset, 19, TOO_SHORT),
            ConnectorError::Policy(vec![Violation::TooShort(7)])
        );
        assert_eq!(
            refused(Operation::Reset, 19, NOT_COMPLEX),
            ConnectorError::Policy(vec![Violation::NotComplex(3)])
        );
        assert_eq!(
            refused(Operation::Change, 19, IN_HISTORY),
            ConnectorError::Policy(vec![Violation::InHistory])
        );
        assert_eq!(password_refusal(PREVIOUS), PasswordRefusal::InHistory);
        assert_eq!(
            password_refusal("0000052D: … has already been used"),
            PasswordRefusal::InHistory
        );
        assert_eq!(
            password_refusal("0000052D: the password is not complex enough"),
            PasswordRefusal::NotComplex
        );
        assert_eq!(password_refusal(TOO_YOUNG), PasswordRefusal::TooYoung);
        assert_eq!(
            violation_for(PasswordRefusal::TooYoung, Some(3600)),
            Violation::TooYoung(3600)
        );
        assert_eq!(
            violation_for(PasswordRefusal::TooYoung, Some(0)),
            Violation::TooYoung(1),
            "at least one second"
        );
        let ConnectorError::Policy(v) = refused(Operation::Change, 19, TOO_YOUNG) else {
            panic!()
        };
        assert!(
            matches!(&v[..], [Violation::RejectedByDirectory(t)] if t.contains("too recently"))
        );
    }

    #[test]
    fn windows_generic_refusal_says_ad_does_not_say_which() {
        assert_eq!(
            refused(Operation::Reset, 53, WINDOWS_052D),
            ConnectorError::Policy(vec![Violation::RejectedByDirectory(
                UNSPECIFIED_POLICY.into()
            )])
        );
        // "too short" without a number is not guessed at.
        assert_eq!(
            password_refusal("0000052D: too short"),
            PasswordRefusal::Unspecified
        );
    }

    #[test]
    fn denials_name_the_missing_right_and_keep_the_raw_text_apart() {
        let reset = refused(Operation::Reset, 50, SAMBA_NO_RIGHT);
        assert!(matches!(reset, ConnectorError::Denied(_)));
        assert!(message(&reset).contains("Reset Password"));
        assert_eq!(directory_text(&reset), Some(SAMBA_NO_RIGHT));
        assert!(!message(&reset).contains("insufficient access"));

        let windows = refused(
            Operation::Reset,
            50,
            "00000005: SecErr: DSID-031A11E5, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0",
        );
        assert!(message(&windows).contains("Reset Password"));

        let unlock = refused(Operation::Unlock, 50, NO_WRITE_PROPERTY);
        assert!(matches!(unlock, ConnectorError::Denied(_)));
        assert!(message(&unlock).contains("lockoutTime"));
        assert!(!message(&unlock).contains("00002098"));

        let must_change = refused(Operation::MustChange, 50, NO_WRITE_PROPERTY);
        assert!(message(&must_change).contains("pwdLastSet"));

        let change = refused(Operation::Change, 50, SAMBA_NO_RIGHT);
        assert!(message(&change).contains("Change Password"));
    }

    #[test]
    fn the_other_codes() {
        let wrong = refused(Operation::Change, 19, WRONG_OLD);
        assert!(matches!(wrong, ConnectorError::WrongOldPassword(_)));
        assert_eq!(directory_text(&wrong), Some(WRONG_OLD));

        let plain = refused(
            Operation::Reset,
            8,
            "0000001F: SvcErr: DSID-031A126C, problem 5003",
        );
        assert!(matches!(plain, ConnectorError::InvalidConfig(_)));
        assert!(message(&plain).contains("ldaps://"));

        let unquoted = refused(Operation::Reset, 53, "0000216C: SvcErr: DSID-031A126C");
        assert!(matches!(unquoted, ConnectorError::Internal(_)));

        let locked = refused(Operation::Change, 19, LOCKED);
        assert!(matches!(locked, ConnectorError::Denied(_)));
        assert_eq!(
            message(&locked),
            "the account is locked out; reset it with unlock"
        );

        assert!(matches!(
            refused(
                Operation::Read,
                32,
                "0000208D: NameErr: DSID-0310028C, problem 2001"
            ),
            ConnectorError::NotFound(_)
        ));
        assert!(matches!(
            refused(Operation::Reset, 51, ""),
            ConnectorError::Unavailable(_)
        ));
        let busy = refused(Operation::Reset, 52, "");
        assert!(matches!(busy, ConnectorError::Unavailable(_)));
        assert_eq!(directory_text(&busy), None, "no empty directory text");
        assert!(matches!(
            refused(Operation::Reset, 80, "00000057: setup_last_set_field"),
            ConnectorError::Internal(_)
        ));
    }

    #[test]
    fn bind_codes() {
        assert_eq!(bind_data_code(BAD_BIND).as_deref(), Some("52e"));
        assert_eq!(bind_data_code("invalid credentials"), None);
        for (code, words) in [
            ("52e", "password"),
            ("525", "bind_dn"),
            ("532", "expired"),
            ("533", "disabled"),
            ("701", "expired"),
            ("773", "must change"),
            ("775", "locked out"),
        ] {
            let text = BAD_BIND.replace("data 52e", &format!("data {code}"));
            let (what, advice) = bind_failure(&text);
            assert!(what.contains(words), "{code}: {what}");
            assert!(!advice.is_empty());
        }
        let (what, advice) = bind_failure("Invalid credentials");
        assert!(what.contains("refused") && advice.contains("bind_password"));
    }

    #[test]
    fn host_errors() {
        let e = from_host(&LdapError::Unavailable("connection refused".into()));
        assert!(matches!(e, ConnectorError::Unavailable(_)));
        assert!(message(&e).contains("connection refused"));
        assert!(matches!(
            from_host(&LdapError::Timeout("5000 ms".into())),
            ConnectorError::Unavailable(_)
        ));
        assert!(matches!(
            from_host(&LdapError::Tls("unknown issuer".into())),
            ConnectorError::InvalidConfig(_)
        ));
        let not_configured = from_host(&LdapError::NotConfigured("set `url`".into()));
        assert_eq!(message(&not_configured), "set `url`");
        let bind = from_host(&LdapError::BindFailed(BAD_BIND.into()));
        assert!(matches!(bind, ConnectorError::Denied(_)));
        assert!(message(&bind).contains("password") && !message(&bind).contains("80090308"));
        assert_eq!(directory_text(&bind), Some(BAD_BIND));
        assert!(matches!(
            from_host(&LdapError::LimitExceeded("too many entries".into())),
            ConnectorError::Internal(_)
        ));
        assert!(matches!(
            from_host(&LdapError::InvalidRequest("bad filter".into())),
            ConnectorError::Internal(_)
        ));
    }
}
