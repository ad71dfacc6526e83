//! Active Directory's own filters: who counts as a user, and nested group membership. The
//! escaping and combinators every LDAP connector needs are the SDK's (`ldap_filter`).

pub use latchkey_plugin_sdk::ldap_filter::{all_of, any_of, equals, escape, escape_bytes};

/// Users, as Active Directory files people: `objectCategory=person` keeps contacts' and
/// computers' `user`-derived objects out.
pub const USERS: &str = "(&(objectCategory=person)(objectClass=user))";

/// LDAP_MATCHING_RULE_IN_CHAIN: membership of `group_dn`, directly or through nested groups.
pub fn member_of_nested(group_dn: &str) -> String {
    format!("(memberOf:1.2.840.113556.1.4.1941:={})", escape(group_dn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dn_with_escapes_is_escaped_again_for_the_filter() {
        assert_eq!(
            member_of_nested(r"CN=Smith\, John (IT),OU=Groups,DC=corp,DC=example"),
            r"(memberOf:1.2.840.113556.1.4.1941:=CN=Smith\5c, John \28IT\29,OU=Groups,DC=corp,DC=example)"
        );
    }
}
