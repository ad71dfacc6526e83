//! The admin's typed password (manual mode): the password and its confirmation must match,
//! must not be empty, and are bounded in length before anything else (a policy check, a
//! plugin call, a hash) touches them.
//!
//! It owns that first gate. It must never put the password, its length or where the two
//! fields differ into an error: errors name the field and the rule.

use secrecy::{ExposeSecret as _, SecretString};

/// The most bytes a typed password may have: 256 characters (the largest maximum a directory
/// reports, AD's and Entra's) of up to 4 bytes each in UTF-8.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why typed input is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ManualInputError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the confirmation does not match the password")]
    Mismatch,
}

impl ManualInputError {
    /// The form field the error belongs beside: `password` or `confirm`.
    pub fn field(&self) -> &'static str {
        match self {
            ManualInputError::Empty | ManualInputError::TooLong => "password",
            ManualInputError::Mismatch => "confirm",
        }
    }
}

/// The password, once `password` and `confirm` are the same, non-empty and bounded.
pub fn manual(
    password: SecretString,
    confirm: &SecretString,
) -> Result<SecretString, ManualInputError> {
    let (typed, again) = (password.expose_secret(), confirm.expose_secret());
    if typed.len() > MAX_PASSWORD_BYTES {
        return Err(ManualInputError::TooLong);
    }
    if typed.is_empty() {
        return Err(ManualInputError::Empty);
    }
    if !same(typed.as_bytes(), again.as_bytes()) {
        return Err(ManualInputError::Mismatch);
    }
    Ok(password)
}

/// Byte equality whose time does not depend on where the inputs first differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn matching_input_is_accepted() {
        let accepted = manual(secret("Corr3ct horse"), &secret("Corr3ct horse")).unwrap();
        assert_eq!(accepted.expose_secret(), "Corr3ct horse");
    }

    #[test]
    fn each_refusal_names_its_field() {
        let error = manual(secret("Corr3ct horse"), &secret("Corr3ct hors")).unwrap_err();
        assert_eq!(
            (error, error.field()),
            (ManualInputError::Mismatch, "confirm")
        );
        let error = manual(secret("Corr3ct horse"), &secret("Corr3ct horsE")).unwrap_err();
        assert_eq!(error, ManualInputError::Mismatch);
        let error = manual(secret(""), &secret("")).unwrap_err();
        assert_eq!(
            (error, error.field()),
            (ManualInputError::Empty, "password")
        );
        let long = "é".repeat(MAX_PASSWORD_BYTES / 2 + 1);
        let error = manual(secret(&long), &secret(&long)).unwrap_err();
        assert_eq!(
            (error, error.field()),
            (ManualInputError::TooLong, "password")
        );
        let longest = "a".repeat(MAX_PASSWORD_BYTES);
        assert!(manual(secret(&longest), &secret(&longest)).is_ok());
    }

    #[test]
    fn errors_do_not_repeat_the_input() {
        let error = manual(secret("Hunter2!x"), &secret("Hunter2!y")).unwrap_err();
        assert!(!error.to_string().contains("Hunter"));
        assert!(!format!("{error:?}").contains("Hunter"));
    }
}
