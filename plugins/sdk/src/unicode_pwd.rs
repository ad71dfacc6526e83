//! Active Directory's `unicodePwd` value: the password in double quotes, UTF-16LE
//! (MS-ADTS 3.1.1.3.1.5.1). Writing it without the quotes fails with `0000216C`.
//!
//! The returned bytes hold the password: pass them straight to an `ldap` modify. The instance
//! (and its memory) is discarded after the call.

/// Encode a password for `unicodePwd`.
pub fn encode(password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity((password.len() + 2) * 2);
    for unit in "\""
        .encode_utf16()
        .chain(password.encode_utf16())
        .chain("\"".encode_utf16())
    {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn quotes_and_utf16le() {
        assert_eq!(encode("ab"), vec![0x22, 0, b'a', 0, b'b', 0, 0x22, 0]);
    }

    #[test]
    fn non_bmp_characters_become_surrogate_pairs() {
        // U+1F511 (key) is D83D DD11 in UTF-16.
        assert_eq!(
            encode("\u{1F511}"),
            vec![0x22, 0, 0x3D, 0xD8, 0x11, 0xDD, 0x22, 0]
        );
    }
}
