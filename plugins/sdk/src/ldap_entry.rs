//! An LDAP entry as a connector reads it (from the `ldap` capability's `entry`): attribute names folded to lowercase
//! (LDAP names are case-insensitive, and servers spell them as they like), text values apart
//! from binary ones. Everything that interprets attributes takes a [`DirEntry`], so it can be
//! tested without a directory.

use std::collections::BTreeMap;

use crate::ldap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirEntry {
    pub dn: String,
    text: BTreeMap<String, Vec<String>>,
    binary: BTreeMap<String, Vec<Vec<u8>>>,
}

impl DirEntry {
    pub fn new(dn: impl Into<String>) -> Self {
        Self {
            dn: dn.into(),
            ..Self::default()
        }
    }

    /// This entry with `name` holding `values` (added to any it had).
    pub fn with(mut self, name: &str, values: &[&str]) -> Self {
        self.text
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().map(|v| v.to_string()));
        self
    }

    /// This entry with the binary attribute `name` holding `values`.
    pub fn with_binary(mut self, name: &str, values: &[&[u8]]) -> Self {
        self.binary
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().map(|v| v.to_vec()));
        self
    }

    /// Every text value of `name`.
    pub fn values(&self, name: &str) -> &[String] {
        self.text
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The first text value of `name`, if any and not empty.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name)
            .first()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` as an integer (AD's large integers and ppolicy's numbers are decimal text).
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.first(name).and_then(|v| v.trim().parse().ok())
    }

    /// The first value of `name` as an LDAP boolean (`TRUE` / `FALSE`).
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.first(name)?.to_ascii_uppercase().as_str() {
            "TRUE" => Some(true),
            "FALSE" => Some(false),
            _ => None,
        }
    }

    /// The first binary value of `name`.
    pub fn first_binary(&self, name: &str) -> Option<&[u8]> {
        self.binary
            .get(&name.to_ascii_lowercase())
            .and_then(|values| values.first())
            .map(Vec::as_slice)
    }
}

impl From<ldap::Entry> for DirEntry {
    fn from(entry: ldap::Entry) -> Self {
        let mut out = DirEntry::new(entry.dn);
        for attribute in entry.attributes {
            out.text
                .entry(attribute.name.to_ascii_lowercase())
                .or_default()
                .extend(attribute.values);
        }
        for attribute in entry.binary_attributes {
            out.binary
                .entry(attribute.name.to_ascii_lowercase())
                .or_default()
                .extend(attribute.values);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        let entry = DirEntry::new("CN=a")
            .with("sAMAccountName", &["jdoe"])
            .with("pwdLastSet", &["0"])
            .with("msDS-PasswordComplexityEnabled", &["TRUE"])
            .with_binary("objectGUID", &[&[1, 2]]);
        assert_eq!(entry.first("samaccountname"), Some("jdoe"));
        assert_eq!(entry.integer("PWDLASTSET"), Some(0));
        assert_eq!(entry.boolean("msds-passwordcomplexityenabled"), Some(true));
        assert_eq!(entry.first_binary("OBJECTGUID"), Some(&[1u8, 2][..]));
        assert_eq!(entry.first("mail"), None);
    }

    #[test]
    fn converts_from_the_host_entry() {
        let entry = DirEntry::from(ldap::Entry {
            dn: "CN=x".into(),
            attributes: vec![ldap::Attribute {
                name: "Mail".into(),
                values: vec!["x@corp.example".into()],
            }],
            binary_attributes: vec![ldap::BinaryAttribute {
                name: "objectGUID".into(),
                values: vec![vec![9; 16]],
            }],
        });
        assert_eq!(entry.first("mail"), Some("x@corp.example"));
        assert_eq!(entry.first_binary("objectguid").map(<[u8]>::len), Some(16));
    }
}
