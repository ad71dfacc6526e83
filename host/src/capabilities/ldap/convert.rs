//! Conversions between the WIT `ldap` types and ldap3's: controls, modifications, result
//! codes, and search entries decoded from their BER form, plus the checks a request passes
//! before it is sent (OIDs, DNs, controls).
//!
//! It owns decoding whatever a server sends without panicking (ldap3's own decoders panic on
//! malformed input) and sorting values into text or bytes. It must never log or format a
//! value: a modify's values are passwords.

use ldap3::Mod;
use ldap3::asn1::{PL, StructureTag, parse_tag};
use ldap3::controls::{PagedResults, RawControl};

use crate::capabilities::ldap::{
    Attribute, BinaryAttribute, Control, Entry, LdapError, LdapResult, Modification, Scope,
};

/// The simple paged results control (RFC 2696).
pub(super) const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Refuses anything but a numeric OID (`1.2.840.113556.1.4.319`).
pub(super) fn check_oid(oid: &str, what: &str) -> Result<(), LdapError> {
    let numeric = !oid.is_empty()
        && oid.split('.').count() >= 2
        && oid
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        Ok(())
    } else {
        Err(LdapError::InvalidRequest(format!(
            "{what} {oid:?} is not a numeric OID such as \"1.3.6.1.4.1.4203.1.11.1\""
        )))
    }
}

/// Refuses what cannot be a DN: an empty name, control characters, an RDN without `=`, or a
/// dangling escape. Deliberately lenient beyond that (the server judges the rest, and answers
/// with result code 34 when it disagrees); Active Directory's `<GUID=...>` and `<SID=...>`
/// forms pass.
pub(super) fn check_dn(dn: &str) -> Result<(), LdapError> {
    let refuse = |why: &str| {
        Err(LdapError::InvalidRequest(format!(
            "{dn:?} is not a distinguished name ({why}); write it like \
             \"CN=jdoe,OU=Staff,DC=corp,DC=example\", escaping special characters as RFC 4514 says"
        )))
    };
    if dn.trim().is_empty() {
        return refuse("it is empty");
    }
    if dn.chars().any(char::is_control) {
        return refuse("it holds a control character");
    }
    if dn.starts_with('<') && dn.ends_with('>') {
        return Ok(());
    }
    let mut rdn_has_equals = false;
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            // The guard consumes the escaped character, which is part of the value.
            '\\' if chars.next().is_none() => {
                return refuse("it ends with a lone backslash");
            }
            '=' => rdn_has_equals = true,
            ',' | '+' => {
                if !rdn_has_equals {
                    return refuse("a part has no `attribute=value`");
                }
                rdn_has_equals = false;
            }
            _ => {}
        }
    }
    if !rdn_has_equals {
        return refuse("a part has no `attribute=value`");
    }
    Ok(())
}

pub(super) fn scope(scope: Scope) -> ldap3::Scope {
    match scope {
        Scope::Base => ldap3::Scope::Base,
        Scope::OneLevel => ldap3::Scope::OneLevel,
        Scope::Subtree => ldap3::Scope::Subtree,
    }
}

/// A plugin's request controls, checked.
pub(super) fn request_controls(controls: Vec<Control>) -> Result<Vec<RawControl>, LdapError> {
    controls
        .into_iter()
        .map(|control| {
            check_oid(&control.oid, "the control")?;
            Ok(RawControl {
                ctype: control.oid,
                crit: control.critical,
                val: control.value,
            })
        })
        .collect()
}

/// The paged results request control for a page of `size` after `cookie`.
pub(super) fn paged_results(size: u32, cookie: Option<Vec<u8>>) -> RawControl {
    PagedResults {
        size: i32::try_from(size).unwrap_or(i32::MAX),
        cookie: cookie.unwrap_or_default(),
    }
    .into()
}

/// The cookie of the paged results response control among `controls`: `None` when the
/// control is absent or its cookie empty (the last page), `Err` when it is malformed.
pub(super) fn next_cookie(controls: &[Control]) -> Result<Option<Vec<u8>>, ()> {
    let Some(control) = controls.iter().find(|c| c.oid == PAGED_RESULTS_OID) else {
        return Ok(None);
    };
    let value = control.value.as_deref().ok_or(())?;
    let (_, tag) = parse_tag(value).map_err(|_| ())?;
    let PL::C(parts) = tag.payload else {
        return Err(());
    };
    match parts.as_slice() {
        [_size, cookie] => match &cookie.payload {
            PL::P(cookie) if cookie.is_empty() => Ok(None),
            PL::P(cookie) => Ok(Some(cookie.clone())),
            PL::C(_) => Err(()),
        },
        _ => Err(()),
    }
}

pub(super) fn response_controls(controls: Vec<ldap3::controls::Control>) -> Vec<Control> {
    controls
        .into_iter()
        .map(|ldap3::controls::Control(_, raw)| Control {
            oid: raw.ctype,
            critical: raw.crit,
            value: raw.val,
        })
        .collect()
}

pub(super) fn outcome(result: ldap3::LdapResult) -> LdapResult {
    LdapResult {
        code: result.rc,
        matched_dn: result.matched,
        text: result.text,
        controls: response_controls(result.ctrls),
    }
}

/// A plugin's modifications, in order, as ldap3 sends them.
pub(super) fn modifications(changes: Vec<Modification>) -> Result<Vec<Mod<Vec<u8>>>, LdapError> {
    if changes.is_empty() {
        return Err(LdapError::InvalidRequest(
            "a modify needs at least one change".to_string(),
        ));
    }
    changes
        .into_iter()
        .map(|change| {
            let (attribute, is_add) = match &change {
                Modification::Add(a) => (a, true),
                Modification::Delete(a) | Modification::Replace(a) => (a, false),
            };
            if attribute.name.trim().is_empty() {
                return Err(LdapError::InvalidRequest(
                    "a modification names no attribute".to_string(),
                ));
            }
            if is_add && attribute.values.is_empty() {
                return Err(LdapError::InvalidRequest(format!(
                    "the `add` of `{}` has no value; an add needs at least one",
                    attribute.name
                )));
            }
            let split = |a: BinaryAttribute| (a.name.into_bytes(), a.values.into_iter().collect());
            Ok(match change {
                Modification::Add(a) => {
                    let (name, values) = split(a);
                    Mod::Add(name, values)
                }
                Modification::Delete(a) => {
                    let (name, values) = split(a);
                    Mod::Delete(name, values)
                }
                Modification::Replace(a) => {
                    let (name, values) = split(a);
                    Mod::Replace(name, values)
                }
            })
        })
        .collect()
}

/// The attribute names a search wants as bytes, compared case-insensitively and without
/// options (`userCertificate;binary` matches `userCertificate`).
pub(super) struct BinaryNames(Vec<String>);

impl BinaryNames {
    pub(super) fn new(names: &[String]) -> BinaryNames {
        BinaryNames(
            names
                .iter()
                .map(|n| base_name(n).to_ascii_lowercase())
                .collect(),
        )
    }

    fn contains(&self, name: &str) -> bool {
        let name = base_name(name);
        self.0.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn base_name(name: &str) -> &str {
    name.split(';').next().unwrap_or(name)
}

/// The bytes of DN, attribute names and values in an entry's BER form.
pub(super) fn payload_size(tag: &StructureTag) -> usize {
    match &tag.payload {
        PL::P(bytes) => bytes.len(),
        PL::C(children) => children.iter().map(payload_size).sum(),
    }
}

/// A SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes }`); `None` when
/// it is malformed. Attributes listed in `binary`, and any with a value that is not UTF-8, come
/// back as bytes; all others as text.
pub(super) fn entry(tag: StructureTag, binary: &BinaryNames) -> Option<Entry> {
    if tag.id != 4 {
        return None;
    }
    let PL::C(parts) = tag.payload else {
        return None;
    };
    let mut parts = parts.into_iter();
    let dn = primitive(parts.next()?)?;
    let PL::C(attributes) = parts.next()?.payload else {
        return None;
    };
    let mut entry = Entry {
        dn: String::from_utf8_lossy(&dn).into_owned(),
        attributes: Vec::new(),
        binary_attributes: Vec::new(),
    };
    for attribute in attributes {
        let PL::C(attribute) = attribute.payload else {
            return None;
        };
        let mut attribute = attribute.into_iter();
        let name = String::from_utf8(primitive(attribute.next()?)?).ok()?;
        let PL::C(values) = attribute.next()?.payload else {
            return None;
        };
        let values = values
            .into_iter()
            .map(primitive)
            .collect::<Option<Vec<Vec<u8>>>>()?;
        if binary.contains(&name) || values.iter().any(|v| std::str::from_utf8(v).is_err()) {
            entry
                .binary_attributes
                .push(BinaryAttribute { name, values });
        } else {
            let values = values
                .into_iter()
                .filter_map(|v| String::from_utf8(v).ok())
                .collect();
            entry.attributes.push(Attribute { name, values });
        }
    }
    Some(entry)
}

fn primitive(tag: StructureTag) -> Option<Vec<u8>> {
    match tag.payload {
        PL::P(bytes) => Some(bytes),
        PL::C(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use ldap3::asn1::{ASNTag, OctetString, Sequence, Set, Tag, TagClass};

    use super::*;

    fn octets(bytes: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: bytes.to_vec(),
            ..Default::default()
        })
    }

    fn entry_tag(dn: &str, attributes: &[(&str, &[&[u8]])]) -> StructureTag {
        Tag::Sequence(Sequence {
            id: 4,
            class: TagClass::Application,
            inner: vec![
                octets(dn.as_bytes()),
                Tag::Sequence(Sequence {
                    inner: attributes
                        .iter()
                        .map(|(name, values)| {
                            Tag::Sequence(Sequence {
                                inner: vec![
                                    octets(name.as_bytes()),
                                    Tag::Set(Set {
                                        inner: values.iter().map(|v| octets(v)).collect(),
                                        ..Default::default()
                                    }),
                                ],
                                ..Default::default()
                            })
                        })
                        .collect(),
                    ..Default::default()
                }),
            ],
        })
        .into_structure()
    }

    #[test]
    fn values_are_text_unless_asked_for_as_bytes_or_not_utf8() {
        let guid: &[u8] = &[0x12, 0xff, 0x00, 0x80];
        let tag = entry_tag(
            "CN=jdoe,DC=corp,DC=example",
            &[
                ("sAMAccountName", &[b"jdoe"]),
                ("objectGUID", &[guid]),
                ("description", &[b"text", &[0xc3, 0x28]]),
                ("whenChanged", &[b"20240101000000.0Z"]),
            ],
        );
        let size = payload_size(&tag);
        assert!(size > 40, "{size}");
        let binary = BinaryNames::new(&["WhenChanged;binary".to_string()]);
        let entry = entry(tag, &binary).expect("a valid entry");
        assert_eq!(entry.dn, "CN=jdoe,DC=corp,DC=example");
        assert_eq!(
            entry.attributes,
            vec![Attribute {
                name: "sAMAccountName".into(),
                values: vec!["jdoe".into()]
            }]
        );
        let binary: Vec<_> = entry
            .binary_attributes
            .iter()
            .map(|a| (a.name.as_str(), a.values.clone()))
            .collect();
        assert_eq!(
            binary,
            vec![
                ("objectGUID", vec![guid.to_vec()]),
                ("description", vec![b"text".to_vec(), vec![0xc3, 0x28]]),
                ("whenChanged", vec![b"20240101000000.0Z".to_vec()]),
            ]
        );
    }

    #[test]
    fn malformed_entries_are_refused_not_panicked_on() {
        let not_an_entry = Tag::OctetString(OctetString {
            inner: b"x".to_vec(),
            ..Default::default()
        })
        .into_structure();
        assert!(entry(not_an_entry, &BinaryNames::new(&[])).is_none());
        let truncated = Tag::Sequence(Sequence {
            id: 4,
            class: TagClass::Application,
            inner: vec![octets(b"CN=x")],
        })
        .into_structure();
        assert!(entry(truncated, &BinaryNames::new(&[])).is_none());
    }

    #[test]
    fn the_paged_cookie_round_trips_and_an_empty_one_ends_paging() {
        let encode = |cookie: &[u8]| {
            let raw = paged_results(10, Some(cookie.to_vec()));
            vec![Control {
                oid: raw.ctype,
                critical: false,
                value: raw.val,
            }]
        };
        assert_eq!(next_cookie(&encode(b"abc")), Ok(Some(b"abc".to_vec())));
        assert_eq!(next_cookie(&encode(b"")), Ok(None));
        assert_eq!(next_cookie(&[]), Ok(None));
        let broken = vec![Control {
            oid: PAGED_RESULTS_OID.into(),
            critical: false,
            value: Some(vec![0x30, 0x05, 0x02]),
        }];
        assert_eq!(next_cookie(&broken), Err(()));
    }

    #[test]
    fn requests_are_checked_before_they_are_sent() {
        assert!(check_oid("1.3.6.1.4.1.4203.1.11.1", "the operation").is_ok());
        for bad in ["", "1", "1..2", "passwordModify", "1.2.x"] {
            let Err(LdapError::InvalidRequest(message)) = check_oid(bad, "the operation") else {
                panic!("{bad:?} passed");
            };
            assert!(message.contains("not a numeric OID"), "{message}");
        }
        for good in [
            "CN=jdoe,OU=Staff,DC=corp,DC=example",
            "CN=Doe\\, John,DC=corp",
            "cn=a+sn=b,dc=x",
            "<GUID=0123456789abcdef0123456789abcdef>",
        ] {
            assert!(check_dn(good).is_ok(), "{good}");
        }
        for bad in ["", "jdoe", "CN=jdoe,corp", "CN=x\\", "CN=a\nb"] {
            assert!(
                matches!(check_dn(bad), Err(LdapError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        let Err(LdapError::InvalidRequest(message)) =
            modifications(vec![Modification::Add(BinaryAttribute {
                name: "member".into(),
                values: vec![],
            })])
        else {
            panic!("an add without values passed");
        };
        assert!(message.contains("`member`"), "{message}");
        assert!(modifications(vec![]).is_err());
    }
}
