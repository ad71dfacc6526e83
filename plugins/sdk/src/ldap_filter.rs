//! LDAP search filters (RFC 4515) built from untrusted text, for every LDAP connector: a query typed by an administrator,
//! a DN from the configuration, a paging cursor. Every value goes through [`escape`] or
//! [`escape_bytes`], so no input can change a filter's structure (`*)(objectClass=*` is a
//! literal string here, not a wildcard and a new clause).

use std::fmt::Write;

/// `value` as an RFC 4515 assertion value. The characters that mean something in a filter
/// (`*`, `(`, `)`, `\`, NUL) become `\xx`, and so does every byte outside printable ASCII: the
/// filter then is plain ASCII, whatever the host's filter parser makes of raw UTF-8.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'*' | b'(' | b')' | b'\\' => push_hex(&mut out, byte),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => push_hex(&mut out, byte),
        }
    }
    out
}

/// Raw bytes (an objectGUID) as an assertion value: every byte as `\xx`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for byte in bytes {
        push_hex(&mut out, *byte);
    }
    out
}

fn push_hex(out: &mut String, byte: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\{byte:02x}");
}

/// `(attribute=value)` with `value` escaped.
pub fn equals(attribute: &str, value: &str) -> String {
    format!("({attribute}={})", escape(value))
}

/// `(&…)` of the given clauses; the single clause itself when there is only one.
pub fn all_of(clauses: &[String]) -> String {
    match clauses {
        [only] => only.clone(),
        _ => format!("(&{})", clauses.concat()),
    }
}

/// `(|…)` of the given clauses; the single clause itself when there is only one.
pub fn any_of(clauses: &[String]) -> String {
    match clauses {
        [only] => only.clone(),
        _ => format!("(|{})", clauses.concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_metacharacters_become_literal() {
        assert_eq!(escape("*)(objectClass=*"), r"\2a\29\28objectClass=\2a");
        assert_eq!(escape(r"a\b"), r"a\5cb");
        assert_eq!(escape("nul\0here"), r"nul\00here");
    }

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(escape("jdoe@corp.example"), "jdoe@corp.example");
        assert_eq!(escape("Doe, John"), "Doe, John");
    }

    #[test]
    fn non_ascii_and_controls_are_escaped_as_utf8_bytes() {
        assert_eq!(escape("é"), r"\c3\a9");
        assert_eq!(escape("a\tb"), r"a\09b");
    }

    #[test]
    fn bytes_are_all_escaped() {
        assert_eq!(escape_bytes(&[0xa4, 0x00, 0x2a]), r"\a4\00\2a");
    }

    #[test]
    fn combinators() {
        let a = equals("cn", "a");
        let b = equals("cn", "b");
        assert_eq!(all_of(std::slice::from_ref(&a)), "(cn=a)");
        assert_eq!(all_of(&[a.clone(), b.clone()]), "(&(cn=a)(cn=b))");
        assert_eq!(any_of(&[a, b]), "(|(cn=a)(cn=b))");
    }
}
