//! Users: finding them (`find-accounts`), addressing them again by objectGUID, and mapping an
//! AD user object to the contract's `account`.
//!
//! An account's `id` is its objectGUID as the canonical lowercase GUID string. objectGUID is
//! stored as 16 bytes whose first three fields are little-endian, so the string
//! `9c8b66a4-19ec-497c-b0be-c764ff1c6391` is the bytes `a4 66 8b 9c ec 19 7c 49 b0 be …`.
//! Every operation on an account resolves it afresh by that GUID under `base_dn` (objects
//! move, and a stale DN would write to the wrong place or nowhere).

use latchkey_plugin_sdk::ldap::{Control, Scope as LdapScope};
use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, ConnectorError, ErrorInfo, MatchMode,
};

use crate::config::Scope;
use crate::cursor;
use crate::errors::{self, Operation, RC_UNAVAILABLE_CRITICAL_EXTENSION};
use crate::filter;
use crate::session::{Directory, Search};
use latchkey_plugin_sdk::ldap_entry::DirEntry;

/// userAccountControl ACCOUNTDISABLE.
const UF_ACCOUNTDISABLE: i64 = 0x2;
/// msDS-User-Account-Control-Computed UF_LOCKOUT.
const UF_LOCKOUT: i64 = 0x10;

/// The server-side sort control (RFC 2891), supported by AD and listed in Samba's root DSE.
const SORT_CONTROL: &str = "1.2.840.113556.1.4.473";

/// The most accounts one page returns: AD's default MaxPageSize is 1000 entries, and a page
/// fetches one more than it returns.
const MAX_PAGE: u32 = 999;

/// When the DC cannot sort, every user in scope is read to order them here; beyond this many
/// the scope is too large for that.
const MAX_UNSORTED_SCOPE: usize = 20_000;

/// The attributes an account is made of.
pub const ACCOUNT_ATTRIBUTES: &[&str] = &[
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "mail",
    "userAccountControl",
    "msDS-User-Account-Control-Computed",
    "lockoutTime",
    "pwdLastSet",
];

/// Read as raw bytes, not text.
pub const BINARY_ATTRIBUTES: &[&str] = &["objectGUID"];

/// objectGUID bytes as the canonical lowercase string.
pub fn guid_to_string(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-\
         {:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

/// A GUID string (any case, optionally in braces) as objectGUID bytes.
pub fn parse_guid(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let groups: Vec<&str> = text.split('-').collect();
    let [a, b, c, d, e] = groups.as_slice() else {
        return None;
    };
    if [a.len(), b.len(), c.len(), d.len(), e.len()] != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut field = [0u8; 16];
    for (i, byte) in field.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // The string's first three fields are the little-endian ones.
    let mut bytes = field;
    bytes[0..4].copy_from_slice(&[field[3], field[2], field[1], field[0]]);
    bytes[4..6].copy_from_slice(&[field[5], field[4]]);
    bytes[6..8].copy_from_slice(&[field[7], field[6]]);
    Some(bytes)
}

/// An AD user object as a contract account.
pub fn account_from_entry(entry: &DirEntry) -> Result<Account, ConnectorError> {
    let unreadable = |what: &str| {
        ConnectorError::Denied(ErrorInfo {
            message: format!(
                "the service account cannot read {what} of {}: grant it Read on the OU \
                 holding the users",
                entry.dn
            ),
            directory_text: None,
        })
    };
    let id = entry
        .first_binary("objectGUID")
        .and_then(guid_to_string)
        .ok_or_else(|| unreadable("objectGUID"))?;
    let username = entry
        .first("sAMAccountName")
        .ok_or_else(|| unreadable("sAMAccountName"))?;
    let enabled = entry
        .integer("userAccountControl")
        .is_none_or(|uac| uac & UF_ACCOUNTDISABLE == 0);
    // The computed flag knows about lockoutDuration; lockoutTime alone stays set after a
    // lockout has expired by itself, so it is only the fallback.
    let locked_out = match entry.integer("msDS-User-Account-Control-Computed") {
        Some(computed) => computed & UF_LOCKOUT != 0,
        None => entry.integer("lockoutTime").is_some_and(|t| t > 0),
    };
    Ok(Account {
        id,
        username: username.to_string(),
        principal_name: entry.first("userPrincipalName").map(str::to_string),
        display_name: entry.first("displayName").map(str::to_string),
        email: entry.first("mail").map(str::to_string),
        location: Some(entry.dn.clone()),
        enabled,
        locked_out,
        synced_from_on_premises: false,
    })
}

/// What a query's text adds to the users filter.
#[derive(Debug, PartialEq, Eq)]
pub enum QueryClause {
    /// No account can match (an exact query for nothing).
    Nothing,
    /// Every account in scope.
    Everything,
    Filter(String),
}

/// The clause matching `query`: exact on sAMAccountName, userPrincipalName, mail and (when the
/// text is a GUID) objectGUID; prefix and contains on those names and displayName.
pub fn query_clause(query: &AccountQuery) -> QueryClause {
    let text = query.text.trim();
    if text.is_empty() {
        return match query.mode {
            MatchMode::Exact => QueryClause::Nothing,
            MatchMode::Prefix | MatchMode::Contains => QueryClause::Everything,
        };
    }
    let value = filter::escape(text);
    let (attributes, pattern): (&[&str], String) = match query.mode {
        MatchMode::Exact => (&["sAMAccountName", "userPrincipalName", "mail"], value),
        MatchMode::Prefix => (
            &["sAMAccountName", "userPrincipalName", "mail", "displayName"],
            format!("{value}*"),
        ),
        MatchMode::Contains => (
            &["sAMAccountName", "userPrincipalName", "mail", "displayName"],
            format!("*{value}*"),
        ),
    };
    let mut clauses: Vec<String> = attributes
        .iter()
        .map(|attribute| format!("({attribute}={pattern})"))
        .collect();
    if let Some(guid) = parse_guid(text) {
        clauses.push(format!("(objectGUID={})", filter::escape_bytes(&guid)));
    }
    QueryClause::Filter(filter::any_of(&clauses))
}

/// Users in `scope` matching `clause`, from `after` on (inclusive: the DC's `>=`).
pub fn users_filter(scope: &Scope, clause: Option<&str>, after: Option<&str>) -> String {
    let mut clauses = vec![filter::USERS.to_string()];
    clauses.extend(clause.map(str::to_string));
    if let Some(group) = &scope.group_dn {
        clauses.push(filter::member_of_nested(group));
    }
    if let Some(after) = after {
        clauses.push(format!("(sAMAccountName>={})", filter::escape(after)));
    }
    filter::all_of(&clauses)
}

/// The sort control's value: SortKeyList ::= SEQUENCE OF SEQUENCE { attributeType OCTET STRING }
/// for one short attribute name (DER, short lengths).
pub fn sort_control_value(attribute: &str) -> Vec<u8> {
    let name = attribute.as_bytes();
    debug_assert!(name.len() < 120, "short-form DER lengths only");
    let key_length = u8::try_from(name.len() + 2).unwrap_or(u8::MAX);
    let mut value = vec![0x30, key_length + 2, 0x30, key_length, 0x04];
    value.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    value.extend_from_slice(name);
    value
}

fn sort_by_sam_account_name() -> Control {
    Control {
        oid: SORT_CONTROL.into(),
        critical: true,
        value: Some(sort_control_value("sAMAccountName")),
    }
}

/// One page of users matching `query`.
pub fn find(
    directory: &Directory,
    scope: &Scope,
    query: &AccountQuery,
    cursor: Option<&str>,
    limit: u32,
) -> Result<AccountPage, ConnectorError> {
    let after = cursor.map(cursor::decode).transpose()?;
    let clause = match query_clause(query) {
        QueryClause::Nothing => None,
        QueryClause::Everything => Some(None),
        QueryClause::Filter(f) => Some(Some(f)),
    };
    let (Some(clause), 1..) = (clause, limit) else {
        return Ok(AccountPage {
            accounts: vec![],
            next_cursor: None,
        });
    };
    let limit = limit.min(MAX_PAGE);

    // The DC sorts and starts at the cursor; one page of limit + 1 tells whether more follow.
    // Paging within this one session is only to make the DC stop early: Samba ignores the
    // size limit (seen on 4.17), paged results it honours. The cookie is not kept.
    let sorted = Search {
        binary_attributes: BINARY_ATTRIBUTES,
        size_limit: limit + 1,
        page_size: limit + 1,
        controls: vec![sort_by_sam_account_name()],
        ..Search::new(
            &scope.base_dn,
            LdapScope::Subtree,
            users_filter(scope, clause.as_deref(), after.as_deref()),
            ACCOUNT_ATTRIBUTES,
        )
    };
    let (entries, server_sorted, more) = match directory.search_raw(&sorted) {
        Ok(Ok(found)) => (found.entries, true, found.cookie.is_some()),
        Ok(Err(refusal)) if refusal.code == RC_UNAVAILABLE_CRITICAL_EXTENSION => (
            every_user(directory, scope, clause.as_deref())?,
            false,
            false,
        ),
        Ok(Err(refusal)) => return Err(scope_error(scope, refusal.error(Operation::Read))),
        Err(e) => return Err(errors::from_host(&e)),
    };
    let (page, next_cursor) = cursor::select_page(
        entries,
        after.as_deref(),
        limit as usize,
        server_sorted,
        more,
    );
    Ok(AccountPage {
        accounts: page
            .iter()
            .map(account_from_entry)
            .collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// Every user in scope matching `clause`, for a DC that cannot sort: paged within this
/// session, ordered and cut by [`cursor::select_page`].
fn every_user(
    directory: &Directory,
    scope: &Scope,
    clause: Option<&str>,
) -> Result<Vec<DirEntry>, ConnectorError> {
    let mut entries = Vec::new();
    let mut cookie = None;
    loop {
        let search = Search {
            binary_attributes: BINARY_ATTRIBUTES,
            page_size: 500,
            cookie: cookie.take(),
            ..Search::new(
                &scope.base_dn,
                LdapScope::Subtree,
                users_filter(scope, clause, None),
                ACCOUNT_ATTRIBUTES,
            )
        };
        let found = directory
            .search(&search)
            .map_err(|e| scope_error(scope, e))?;
        entries.extend(found.entries);
        if entries.len() > MAX_UNSORTED_SCOPE {
            return Err(ConnectorError::Unsupported(ErrorInfo {
                message: format!(
                    "the domain controller cannot sort search results, and more than \
                     {MAX_UNSORTED_SCOPE} users are {}: narrow base_dn or set group_dn",
                    scope.describe()
                ),
                directory_text: None,
            }));
        }
        match found.cookie {
            Some(next) => cookie = Some(next),
            None => return Ok(entries),
        }
    }
}

/// A search refusal where the base is missing says so about the configuration.
fn scope_error(scope: &Scope, error: ConnectorError) -> ConnectorError {
    match error {
        ConnectorError::NotFound(info) => ConnectorError::InvalidConfig(ErrorInfo {
            message: format!(
                "base_dn {} does not exist on the domain controller; correct it in the \
                 connector's configuration",
                scope.base_dn
            ),
            directory_text: info.directory_text,
        }),
        other => other,
    }
}

/// A user resolved afresh for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    /// The account as the directory has it now (names used by the password rules).
    pub account: Account,
    /// pwdLastSet as stored: a FILETIME, or 0.
    pub pwd_last_set: Option<i64>,
}

impl DirectoryUser {
    pub fn from_entry(entry: &DirEntry) -> Result<Self, ConnectorError> {
        Ok(Self {
            dn: entry.dn.clone(),
            account: account_from_entry(entry)?,
            pwd_last_set: entry.integer("pwdLastSet"),
        })
    }
}

/// The not-found error for `id` in `scope`.
pub fn not_found(id: &str, scope: &Scope) -> ConnectorError {
    ConnectorError::NotFound(ErrorInfo {
        message: format!(
            "no user with objectGUID {id} {}; it may have been deleted or moved out of scope",
            scope.describe()
        ),
        directory_text: None,
    })
}

/// The user whose objectGUID is `id`, in scope now.
pub fn resolve(
    directory: &Directory,
    scope: &Scope,
    id: &str,
) -> Result<DirectoryUser, ConnectorError> {
    let guid = parse_guid(id).ok_or_else(|| {
        ConnectorError::Internal(ErrorInfo {
            message: format!(
                "the account id {id:?} is not an objectGUID, so it was not found by this \
                 connector; find the account again"
            ),
            directory_text: None,
        })
    })?;
    let by_guid = format!("(objectGUID={})", filter::escape_bytes(&guid));
    let search = Search {
        binary_attributes: BINARY_ATTRIBUTES,
        size_limit: 2,
        ..Search::new(
            &scope.base_dn,
            LdapScope::Subtree,
            users_filter(scope, Some(&by_guid), None),
            ACCOUNT_ATTRIBUTES,
        )
    };
    let found = directory
        .search(&search)
        .map_err(|e| scope_error(scope, e))?;
    match found.entries.first() {
        Some(entry) => DirectoryUser::from_entry(entry),
        None => Err(not_found(id, scope)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alice on the test DC: objectGUID:: pGaLnOwZfEmwvsdk/xxjkQ==, which Samba also matches
    /// as the string below, and which found her as the filter's escaped bytes.
    const ALICE_BYTES: [u8; 16] = [
        0xa4, 0x66, 0x8b, 0x9c, 0xec, 0x19, 0x7c, 0x49, 0xb0, 0xbe, 0xc7, 0x64, 0xff, 0x1c, 0x63,
        0x91,
    ];
    const ALICE_GUID: &str = "9c8b66a4-19ec-497c-b0be-c764ff1c6391";

    fn scope() -> Scope {
        Scope {
            base_dn: "OU=Staff,DC=corp,DC=test".into(),
            group_dn: None,
        }
    }

    fn alice() -> DirEntry {
        DirEntry::new("CN=alice,OU=Staff,DC=corp,DC=test")
            .with_binary("objectGUID", &[&ALICE_BYTES])
            .with("sAMAccountName", &["alice"])
            .with("userPrincipalName", &["alice@corp.test"])
            .with("displayName", &["Alice Example"])
            .with("userAccountControl", &["512"])
            .with("msDS-User-Account-Control-Computed", &["0"])
            .with("lockoutTime", &["0"])
            .with("pwdLastSet", &["134404826204088650"])
    }

    #[test]
    fn guid_bytes_and_string_both_ways() {
        assert_eq!(guid_to_string(&ALICE_BYTES).unwrap(), ALICE_GUID);
        assert_eq!(parse_guid(ALICE_GUID), Some(ALICE_BYTES));
        assert_eq!(
            parse_guid(&format!("{{{}}}", ALICE_GUID.to_uppercase())),
            Some(ALICE_BYTES)
        );
        let counting: Vec<u8> = (0..16).collect();
        assert_eq!(
            guid_to_string(&counting).unwrap(),
            "03020100-0504-0706-0809-0a0b0c0d0e0f"
        );
        assert_eq!(guid_to_string(&ALICE_BYTES[..15]), None);
    }

    #[test]
    fn not_guids() {
        for text in [
            "",
            "alice",
            "9c8b66a4-19ec-497c-b0be-c764ff1c639",
            "9c8b66a419ec497cb0bec764ff1c6391",
            "9c8b66a4-19ec-497c-b0be-c764ff1c639g",
            "9c8b66a4-19ec-497c-b0bec-764ff1c6391",
            "{9c8b66a4-19ec-497c-b0be-c764ff1c6391",
            "9c8b66a4-19ec-497c-b0be-c764ff1c639é",
        ] {
            assert_eq!(parse_guid(text), None, "{text}");
        }
    }

    #[test]
    fn an_entry_becomes_an_account() {
        let account = account_from_entry(&alice()).unwrap();
        assert_eq!(
            account,
            Account {
                id: ALICE_GUID.into(),
                username: "alice".into(),
                principal_name: Some("alice@corp.test".into()),
                display_name: Some("Alice Example".into()),
                email: None,
                location: Some("CN=alice,OU=Staff,DC=corp,DC=test".into()),
                enabled: true,
                locked_out: false,
                synced_from_on_premises: false,
            }
        );
    }

    #[test]
    fn disabled_and_locked_out() {
        let entry = DirEntry::new("CN=alice,OU=Staff,DC=corp,DC=test")
            .with_binary("objectGUID", &[&ALICE_BYTES])
            .with("sAMAccountName", &["alice"])
            .with("userAccountControl", &["514"])
            .with("msDS-User-Account-Control-Computed", &["16"]);
        let account = account_from_entry(&entry).unwrap();
        assert!(!account.enabled && account.locked_out);

        // Without the computed attribute, lockoutTime decides.
        let fallback = DirEntry::new("CN=x")
            .with_binary("objectGUID", &[&ALICE_BYTES])
            .with("sAMAccountName", &["x"])
            .with("lockoutTime", &["134404830386876230"]);
        assert!(account_from_entry(&fallback).unwrap().locked_out);
        let never = DirEntry::new("CN=x")
            .with_binary("objectGUID", &[&ALICE_BYTES])
            .with("sAMAccountName", &["x"]);
        let account = account_from_entry(&never).unwrap();
        assert!(account.enabled && !account.locked_out);
    }

    #[test]
    fn an_unreadable_guid_is_a_denial() {
        let entry = DirEntry::new("CN=x").with("sAMAccountName", &["x"]);
        let Err(ConnectorError::Denied(info)) = account_from_entry(&entry) else {
            panic!()
        };
        assert!(info.message.contains("objectGUID") && info.message.contains("CN=x"));
    }

    fn query(text: &str, mode: MatchMode) -> AccountQuery {
        AccountQuery {
            text: text.into(),
            mode,
        }
    }

    #[test]
    fn exact_queries() {
        assert_eq!(
            query_clause(&query("jdoe", MatchMode::Exact)),
            QueryClause::Filter(
                "(|(sAMAccountName=jdoe)(userPrincipalName=jdoe)(mail=jdoe))".into()
            )
        );
        assert_eq!(
            query_clause(&query(ALICE_GUID, MatchMode::Exact)),
            QueryClause::Filter(format!(
                "(|(sAMAccountName={ALICE_GUID})(userPrincipalName={ALICE_GUID})\
                 (mail={ALICE_GUID})(objectGUID=\\a4\\66\\8b\\9c\\ec\\19\\7c\\49\\b0\\be\\c7\\64\
                 \\ff\\1c\\63\\91))"
            ))
        );
        assert_eq!(
            query_clause(&query("  ", MatchMode::Exact)),
            QueryClause::Nothing
        );
    }

    #[test]
    fn prefix_and_contains_queries_escape_the_text() {
        assert_eq!(
            query_clause(&query("Al", MatchMode::Prefix)),
            QueryClause::Filter(
                "(|(sAMAccountName=Al*)(userPrincipalName=Al*)(mail=Al*)(displayName=Al*))".into()
            )
        );
        assert_eq!(
            query_clause(&query("*)(objectClass=*", MatchMode::Contains)),
            QueryClause::Filter(
                "(|(sAMAccountName=*\\2a\\29\\28objectClass=\\2a*)\
                 (userPrincipalName=*\\2a\\29\\28objectClass=\\2a*)\
                 (mail=*\\2a\\29\\28objectClass=\\2a*)\
                 (displayName=*\\2a\\29\\28objectClass=\\2a*))"
                    .into()
            )
        );
        assert_eq!(
            query_clause(&query("", MatchMode::Contains)),
            QueryClause::Everything
        );
    }

    #[test]
    fn users_filters() {
        assert_eq!(
            users_filter(&scope(), None, None),
            "(&(objectCategory=person)(objectClass=user))"
        );
        let grouped = Scope {
            group_dn: Some("CN=Latchkey Users,CN=Users,DC=corp,DC=test".into()),
            ..scope()
        };
        assert_eq!(
            users_filter(&grouped, Some("(mail=a)"), Some("b(c")),
            "(&(&(objectCategory=person)(objectClass=user))(mail=a)\
             (memberOf:1.2.840.113556.1.4.1941:=CN=Latchkey Users,CN=Users,DC=corp,DC=test)\
             (sAMAccountName>=b\\28c))"
        );
    }

    #[test]
    fn the_sort_control_value_is_der() {
        let mut expected = vec![0x30, 0x12, 0x30, 0x10, 0x04, 0x0e];
        expected.extend_from_slice(b"sAMAccountName");
        assert_eq!(sort_control_value("sAMAccountName"), expected);
    }

    #[test]
    fn a_resolved_user_keeps_dn_and_pwd_last_set() {
        let user = DirectoryUser::from_entry(&alice()).unwrap();
        assert_eq!(user.dn, "CN=alice,OU=Staff,DC=corp,DC=test");
        assert_eq!(user.pwd_last_set, Some(134_404_826_204_088_650));
        assert_eq!(user.account.username, "alice");
    }

    #[test]
    fn not_found_says_where_it_looked() {
        let ConnectorError::NotFound(info) = not_found(ALICE_GUID, &scope()) else {
            panic!()
        };
        assert_eq!(
            info.message,
            format!(
                "no user with objectGUID {ALICE_GUID} under OU=Staff,DC=corp,DC=test; it may \
                 have been deleted or moved out of scope"
            )
        );
    }
}
