//! The two small BER values this connector speaks: the Password Modify request it sends (RFC
//! 3062) and the password policy response control it reads (draft-behera-ldap-password-policy,
//! OID 1.3.6.1.4.1.42.2.27.8.5.1).
//!
//! The decoder reads what a server sent, so it must never panic and never trust a length:
//! every read is bounds-checked, and anything malformed is `None` (the caller then falls back
//! to the result code and text). Only what these values use is supported: single-byte tags,
//! definite lengths up to four bytes.

/// What ppolicy says went wrong (the response control's `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyError {
    PasswordExpired,
    AccountLocked,
    ChangeAfterReset,
    PasswordModNotAllowed,
    MustSupplyOldPassword,
    InsufficientPasswordQuality,
    PasswordTooShort,
    PasswordTooYoung,
    PasswordInHistory,
    PasswordTooLong,
    /// A value this connector does not know (a later draft's).
    Other(u32),
}

impl PolicyError {
    fn from_code(code: u32) -> Self {
        match code {
            0 => Self::PasswordExpired,
            1 => Self::AccountLocked,
            2 => Self::ChangeAfterReset,
            3 => Self::PasswordModNotAllowed,
            4 => Self::MustSupplyOldPassword,
            5 => Self::InsufficientPasswordQuality,
            6 => Self::PasswordTooShort,
            7 => Self::PasswordTooYoung,
            8 => Self::PasswordInHistory,
            9 => Self::PasswordTooLong,
            other => Self::Other(other),
        }
    }
}

/// The password policy response control's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyResponse {
    /// Seconds before the password expires (a warning on bind).
    pub time_before_expiration: Option<u32>,
    /// Grace logins left (a warning on bind).
    pub grace_logins_remaining: Option<u32>,
    pub error: Option<PolicyError>,
}

/// One TLV: its tag byte and its contents.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
}

/// Reads the TLV at the start of `input`; returns it and what follows.
fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // High tag numbers (0x1f) are not used by these values.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        // 0x80 is the indefinite form, which DER and LDAP's BER forbid.
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, rest) = rest.split_at(length);
    Some((Tlv { tag, contents }, rest))
}

/// A non-negative INTEGER or ENUMERATED of at most four significant bytes.
fn read_unsigned(contents: &[u8]) -> Option<u32> {
    let (&first, _) = contents.split_first()?;
    if first & 0x80 != 0 {
        return None; // negative
    }
    // A leading zero byte keeps a value with the top bit set positive.
    let digits = if first == 0 { &contents[1..] } else { contents };
    if digits.len() > 4 {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
    )
}

/// Decodes a password policy response control's value; `None` when it is malformed.
pub fn decode_policy_response(value: &[u8]) -> Option<PolicyResponse> {
    let (sequence, trailing) = read_tlv(value)?;
    if sequence.tag != 0x30 || !trailing.is_empty() {
        return None;
    }
    let mut response = PolicyResponse::default();
    let mut rest = sequence.contents;
    while !rest.is_empty() {
        let (element, next) = read_tlv(rest)?;
        rest = next;
        match element.tag {
            // warning [0] CHOICE { timeBeforeExpiration [0] INTEGER, graceAuthNsRemaining [1] }
            0xa0 => {
                let (choice, after) = read_tlv(element.contents)?;
                if !after.is_empty() {
                    return None;
                }
                let value = read_unsigned(choice.contents)?;
                match choice.tag {
                    0x80 => response.time_before_expiration = Some(value),
                    0x81 => response.grace_logins_remaining = Some(value),
                    _ => return None,
                }
            }
            // error [1] ENUMERATED
            0x81 => {
                response.error = Some(PolicyError::from_code(read_unsigned(element.contents)?));
            }
            _ => return None,
        }
    }
    Some(response)
}

fn push_length(out: &mut Vec<u8>, length: usize) {
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    push_length(out, contents.len());
    out.extend_from_slice(contents);
}

/// The Password Modify request's value (RFC 3062):
/// `SEQUENCE { userIdentity [0] OCTET STRING OPTIONAL, oldPasswd [1] OCTET STRING OPTIONAL,
/// newPasswd [2] OCTET STRING OPTIONAL }`.
pub fn encode_password_modify(
    user_identity: Option<&str>,
    old_password: Option<&str>,
    new_password: Option<&str>,
) -> Vec<u8> {
    let mut contents = Vec::new();
    for (tag, value) in [
        (0x80, user_identity),
        (0x81, old_password),
        (0x82, new_password),
    ] {
        if let Some(value) = value {
            push_tlv(&mut contents, tag, value.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(contents.len() + 6);
    push_tlv(&mut out, 0x30, &contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_slapd_sent() {
        // Seen from slapd 2.5.13: `MAOBAQY=` (too short), `MAOBAQg=` (in history), ...
        for (bytes, error) in [
            (
                [0x30, 0x03, 0x81, 0x01, 0x06],
                PolicyError::PasswordTooShort,
            ),
            (
                [0x30, 0x03, 0x81, 0x01, 0x08],
                PolicyError::PasswordInHistory,
            ),
            (
                [0x30, 0x03, 0x81, 0x01, 0x07],
                PolicyError::PasswordTooYoung,
            ),
            ([0x30, 0x03, 0x81, 0x01, 0x09], PolicyError::PasswordTooLong),
            (
                [0x30, 0x03, 0x81, 0x01, 0x05],
                PolicyError::InsufficientPasswordQuality,
            ),
            (
                [0x30, 0x03, 0x81, 0x01, 0x04],
                PolicyError::MustSupplyOldPassword,
            ),
        ] {
            assert_eq!(
                decode_policy_response(&bytes),
                Some(PolicyResponse {
                    error: Some(error),
                    ..Default::default()
                })
            );
        }
    }

    #[test]
    fn empty_sequence_and_warnings() {
        assert_eq!(
            decode_policy_response(&[0x30, 0x00]),
            Some(PolicyResponse::default())
        );
        // warning: timeBeforeExpiration 3600, then error changeAfterReset.
        let value = [
            0x30, 0x09, 0xa0, 0x04, 0x80, 0x02, 0x0e, 0x10, 0x81, 0x01, 0x02,
        ];
        assert_eq!(
            decode_policy_response(&value),
            Some(PolicyResponse {
                time_before_expiration: Some(3600),
                grace_logins_remaining: None,
                error: Some(PolicyError::ChangeAfterReset),
            })
        );
        let grace = [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02];
        assert_eq!(
            decode_policy_response(&grace)
                .unwrap()
                .grace_logins_remaining,
            Some(2)
        );
        // Long-form length, leading zero, unknown error code.
        let long = [0x30, 0x81, 0x04, 0x81, 0x02, 0x00, 0x2a];
        assert_eq!(
            decode_policy_response(&long).unwrap().error,
            Some(PolicyError::Other(42))
        );
    }

    #[test]
    fn malformed_values_are_none_and_never_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x05, 0x81, 0x01],
            &[0x30, 0x80, 0x81, 0x01, 0x06, 0x00, 0x00], // indefinite length
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff], // five length bytes
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],       // length beyond the input
            &[0x31, 0x03, 0x81, 0x01, 0x06],             // SET, not SEQUENCE
            &[0x30, 0x03, 0x82, 0x01, 0x06],             // unknown element
            &[0x30, 0x03, 0x81, 0x01, 0x86],             // negative
            &[0x30, 0x02, 0x81, 0x00],                   // empty integer
            &[0x30, 0x08, 0x81, 0x06, 1, 2, 3, 4, 5, 6], // too large
            &[0x30, 0x03, 0x81, 0x01, 0x06, 0x00],       // trailing bytes
            &[0x30, 0x04, 0xa0, 0x02, 0x82, 0x00],       // unknown warning
            &[0x30, 0x03, 0xa0, 0x01, 0x80],             // truncated warning
            &[0x3f, 0x01, 0x00],                         // high tag number
        ];
        for case in cases {
            assert_eq!(decode_policy_response(case), None, "{case:02x?}");
        }
        // Every prefix and every single-byte corruption of a valid value: no panic.
        let valid = [
            0x30, 0x09, 0xa0, 0x04, 0x80, 0x02, 0x0e, 0x10, 0x81, 0x01, 0x02,
        ];
        for end in 0..valid.len() {
            let _ = decode_policy_response(&valid[..end]);
        }
        for i in 0..valid.len() {
            for byte in 0..=255u8 {
                let mut corrupted = valid;
                corrupted[i] = byte;
                let _ = decode_policy_response(&corrupted);
            }
        }
    }

    #[test]
    fn password_modify_requests() {
        let value = encode_password_modify(Some("uid=a,dc=x"), Some("old"), Some("new"));
        let mut expected = vec![0x30, 22, 0x80, 10];
        expected.extend_from_slice(b"uid=a,dc=x");
        expected.extend_from_slice(&[0x81, 3]);
        expected.extend_from_slice(b"old");
        expected.extend_from_slice(&[0x82, 3]);
        expected.extend_from_slice(b"new");
        assert_eq!(value, expected);
        assert_eq!(encode_password_modify(None, None, None), vec![0x30, 0x00]);
        assert_eq!(
            encode_password_modify(None, None, Some("n")),
            vec![0x30, 0x03, 0x82, 0x01, b'n']
        );
        // Long values take a long-form length.
        let long = "x".repeat(200);
        let value = encode_password_modify(None, None, Some(&long));
        assert_eq!(&value[..6], &[0x30, 0x81, 203, 0x82, 0x81, 200]);
        assert_eq!(value.len(), 3 + 3 + 200);
    }
}
