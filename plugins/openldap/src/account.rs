//! Users: finding them (`find-accounts`), addressing them again by their stable id (entryUUID
//! by default), and mapping an entry to the contract's `account`.
//!
//! Every operation on an account resolves it afresh by its id under `base_dn`: entries are
//! renamed and moved, and a stale DN would write to the wrong place or nowhere.

use latchkey_plugin_sdk::ldap::Scope as LdapScope;
use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, ConnectorError, ErrorInfo, MatchMode,
};

use crate::config::Settings;
use crate::cursor::{self, Key};
use crate::gtime;
use crate::session::{Directory, Search};
use latchkey_plugin_sdk::ldap_entry::DirEntry;
use latchkey_plugin_sdk::ldap_filter as filter;

/// The most accounts one page returns.
const MAX_PAGE: u32 = 1000;

/// Every matching user is read to order them (see `cursor`); beyond this many the scope is
/// too large for that.
const MAX_SCOPE: usize = 20_000;

/// The entries asked for per round trip while reading a scope.
const READ_PAGE: u32 = 500;

/// The password-policy state read with every user (operational: asked for by name).
pub const STATE_ATTRIBUTES: &[&str] = &[
    "pwdAccountLockedTime",
    "pwdChangedTime",
    "pwdPolicySubentry",
    "pwdReset",
];

/// The attributes an account is made of, for these settings.
pub fn account_attributes(settings: &Settings) -> Vec<String> {
    let mut attributes = vec![
        settings.id_attribute.clone(),
        settings.username_attribute.clone(),
        settings.display_name_attribute.clone(),
        settings.mail_attribute.clone(),
    ];
    attributes.extend(STATE_ATTRIBUTES.iter().map(|a| a.to_string()));
    attributes
}

/// Whether `text` has the shape of a UUID (entryUUID's syntax refuses anything else).
fn looks_like_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The clause the id attribute adds to a search for `text`; none when `text` cannot be an id.
fn id_clause(settings: &Settings, text: &str) -> Option<String> {
    let uuid_syntax = settings.id_attribute.eq_ignore_ascii_case("entryUUID")
        || settings.id_attribute == "1.3.6.1.1.16.4";
    (!uuid_syntax || looks_like_uuid(text)).then(|| filter::equals(&settings.id_attribute, text))
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

/// The clause matching `query`: exact on the username, mail and id; prefix and contains on the
/// username, mail and display name (ids have no substring matching).
pub fn query_clause(settings: &Settings, query: &AccountQuery) -> QueryClause {
    let text = query.text.trim();
    if text.is_empty() {
        return match query.mode {
            MatchMode::Exact => QueryClause::Nothing,
            MatchMode::Prefix | MatchMode::Contains => QueryClause::Everything,
        };
    }
    let value = filter::escape(text);
    let mut clauses: Vec<String> = match query.mode {
        MatchMode::Exact => [&settings.username_attribute, &settings.mail_attribute]
            .iter()
            .map(|attribute| format!("({attribute}={value})"))
            .collect(),
        MatchMode::Prefix | MatchMode::Contains => {
            let pattern = if query.mode == MatchMode::Prefix {
                format!("{value}*")
            } else {
                format!("*{value}*")
            };
            [
                &settings.username_attribute,
                &settings.mail_attribute,
                &settings.display_name_attribute,
            ]
            .iter()
            .map(|attribute| format!("({attribute}={pattern})"))
            .collect()
        }
    };
    clauses.extend(id_clause(settings, text));
    clauses.dedup();
    QueryClause::Filter(filter::any_of(&clauses))
}

/// Users matching `clause` (and the configured users filter).
pub fn users_filter(settings: &Settings, clause: Option<&str>) -> String {
    let mut clauses = vec![settings.user_filter.clone()];
    clauses.extend(clause.map(str::to_string));
    filter::all_of(&clauses)
}

/// A user entry as the directory has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    pub account: Account,
    /// `pwdChangedTime`, as seconds since 1970.
    pub changed_at: Option<i64>,
    /// `pwdPolicySubentry`: the user's own policy, when set.
    pub policy_subentry: Option<String>,
    /// Whether `pwdAccountLockedTime` is set (a lock, possibly expired).
    pub lock_recorded: bool,
    /// `pwdReset`: the user must change the password at the next bind.
    pub pwd_reset: bool,
}

impl DirectoryUser {
    pub fn from_entry(settings: &Settings, entry: &DirEntry) -> Result<Self, ConnectorError> {
        let unreadable = |attribute: &str| {
            ConnectorError::Denied(ErrorInfo {
                message: format!(
                    "the service account cannot read {attribute} of {}: grant it read access to \
                     the users (operational attributes included), or correct the attribute \
                     names in the connector's configuration",
                    entry.dn
                ),
                directory_text: None,
            })
        };
        let id = entry
            .first(&settings.id_attribute)
            .ok_or_else(|| unreadable(&settings.id_attribute))?;
        let username = entry
            .first(&settings.username_attribute)
            .ok_or_else(|| unreadable(&settings.username_attribute))?;
        let locked_time = entry.first("pwdAccountLockedTime");
        Ok(Self {
            dn: entry.dn.clone(),
            account: Account {
                id: id.to_string(),
                username: username.to_string(),
                principal_name: None,
                display_name: entry
                    .first(&settings.display_name_attribute)
                    .map(str::to_string),
                email: entry.first(&settings.mail_attribute).map(str::to_string),
                location: Some(entry.dn.clone()),
                // ppolicy's "locked until an administrator unlocks" is OpenLDAP's nearest thing
                // to a disabled account.
                enabled: locked_time != Some(gtime::PERMANENT_LOCK),
                locked_out: locked_time.is_some(),
                synced_from_on_premises: false,
            },
            changed_at: entry.first("pwdChangedTime").and_then(gtime::parse),
            policy_subentry: entry.first("pwdPolicySubentry").map(str::to_string),
            lock_recorded: locked_time.is_some(),
            pwd_reset: entry.boolean("pwdReset").unwrap_or(false),
        })
    }

    fn key(&self) -> Key {
        Key {
            username: self.account.username.clone(),
            id: self.account.id.clone(),
        }
    }
}

/// A search refusal where the base is missing says so about the configuration.
fn scope_error(settings: &Settings, error: ConnectorError) -> ConnectorError {
    match error {
        ConnectorError::NotFound(info) => ConnectorError::InvalidConfig(ErrorInfo {
            message: format!(
                "base_dn {} does not exist on the LDAP server; correct it in the connector's \
                 configuration",
                settings.base_dn
            ),
            directory_text: info.directory_text,
        }),
        other => other,
    }
}

/// Every user in scope matching `clause`, paged within this one session.
fn every_user(
    directory: &Directory,
    settings: &Settings,
    clause: Option<&str>,
) -> Result<Vec<DirEntry>, ConnectorError> {
    let attributes = account_attributes(settings);
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let mut entries = Vec::new();
    let mut cookie = None;
    loop {
        let search = Search {
            page_size: READ_PAGE,
            cookie: cookie.take(),
            ..Search::new(
                &settings.base_dn,
                LdapScope::Subtree,
                users_filter(settings, clause),
                &attributes,
            )
        };
        let found = directory
            .search(&search)
            .map_err(|e| scope_error(settings, e))?;
        entries.extend(found.entries);
        if entries.len() > MAX_SCOPE {
            return Err(ConnectorError::Unsupported(ErrorInfo {
                message: format!(
                    "more than {MAX_SCOPE} users under {} match; this connector orders users \
                     itself to page through them, so narrow base_dn or user_filter",
                    settings.base_dn
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

/// One page of users matching `query`.
pub fn find(
    directory: &Directory,
    settings: &Settings,
    query: &AccountQuery,
    cursor: Option<&str>,
    limit: u32,
) -> Result<AccountPage, ConnectorError> {
    let after = cursor.map(cursor::decode).transpose()?;
    let clause = match query_clause(settings, query) {
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
    let users = every_user(directory, settings, clause.as_deref())?
        .iter()
        .map(|entry| DirectoryUser::from_entry(settings, entry).map(|user| (user.key(), user)))
        .collect::<Result<Vec<_>, _>>()?;
    let (page, next_cursor) =
        cursor::select_page(users, after.as_ref(), limit.min(MAX_PAGE) as usize);
    Ok(AccountPage {
        accounts: page.into_iter().map(|user| user.account).collect(),
        next_cursor,
    })
}

/// The not-found error for `id`.
pub fn not_found(settings: &Settings, id: &str) -> ConnectorError {
    ConnectorError::NotFound(ErrorInfo {
        message: format!(
            "no user with {} {id} under {} (matching {}); it may have been deleted or moved out \
             of scope",
            settings.id_attribute, settings.base_dn, settings.user_filter
        ),
        directory_text: None,
    })
}

/// The user whose id is `id`, in scope now.
pub fn resolve(
    directory: &Directory,
    settings: &Settings,
    id: &str,
) -> Result<DirectoryUser, ConnectorError> {
    let Some(by_id) = id_clause(settings, id.trim()) else {
        return Err(not_found(settings, id));
    };
    let attributes = account_attributes(settings);
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let search = Search {
        size_limit: 2,
        ..Search::new(
            &settings.base_dn,
            LdapScope::Subtree,
            users_filter(settings, Some(&by_id)),
            &attributes,
        )
    };
    let found = directory
        .search(&search)
        .map_err(|e| scope_error(settings, e))?;
    match found.entries.as_slice() {
        [entry] => DirectoryUser::from_entry(settings, entry),
        [] => Err(not_found(settings, id)),
        _ => Err(ConnectorError::InvalidConfig(ErrorInfo {
            message: format!(
                "more than one user has {} {id}: id_attribute must name an attribute that is \
                 unique (entryUUID on OpenLDAP)",
                settings.id_attribute
            ),
            directory_text: None,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChangeMethod;

    const UUID: &str = "e11ea814-80f4-1041-8d16-51a39ddbfecc";

    fn settings() -> Settings {
        Settings {
            base_dn: "ou=people,dc=example,dc=test".into(),
            user_filter: "(objectClass=inetOrgPerson)".into(),
            policy_dn: None,
            username_attribute: "uid".into(),
            display_name_attribute: "cn".into(),
            mail_attribute: "mail".into(),
            id_attribute: "entryUUID".into(),
            must_change_sets_pwd_reset: true,
            change_method: ChangeMethod::PasswordModify,
        }
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
            query_clause(&settings(), &query("jdoe", MatchMode::Exact)),
            QueryClause::Filter("(|(uid=jdoe)(mail=jdoe))".into())
        );
        assert_eq!(
            query_clause(&settings(), &query(UUID, MatchMode::Exact)),
            QueryClause::Filter(format!("(|(uid={UUID})(mail={UUID})(entryUUID={UUID}))"))
        );
        assert_eq!(
            query_clause(&settings(), &query(" ", MatchMode::Exact)),
            QueryClause::Nothing
        );
        // Another id attribute takes any text.
        let mut other = settings();
        other.id_attribute = "employeeNumber".into();
        assert_eq!(
            query_clause(&other, &query("42", MatchMode::Exact)),
            QueryClause::Filter("(|(uid=42)(mail=42)(employeeNumber=42))".into())
        );
    }

    #[test]
    fn prefix_and_contains_queries_escape_the_text() {
        assert_eq!(
            query_clause(&settings(), &query("Al", MatchMode::Prefix)),
            QueryClause::Filter("(|(uid=Al*)(mail=Al*)(cn=Al*))".into())
        );
        assert_eq!(
            query_clause(&settings(), &query("*)(uid=*", MatchMode::Contains)),
            QueryClause::Filter(
                "(|(uid=*\\2a\\29\\28uid=\\2a*)(mail=*\\2a\\29\\28uid=\\2a*)(cn=*\\2a\\29\\28uid=\\2a*))"
                    .into()
            )
        );
        assert_eq!(
            query_clause(&settings(), &query("", MatchMode::Prefix)),
            QueryClause::Everything
        );
    }

    #[test]
    fn users_filters() {
        assert_eq!(
            users_filter(&settings(), None),
            "(objectClass=inetOrgPerson)"
        );
        assert_eq!(
            users_filter(&settings(), Some("(uid=a)")),
            "(&(objectClass=inetOrgPerson)(uid=a))"
        );
    }

    #[test]
    fn an_entry_as_an_account() {
        let entry = DirEntry::new("uid=alice,ou=people,dc=example,dc=test")
            .with("entryUUID", &[UUID])
            .with("uid", &["alice"])
            .with("cn", &["Alice Example"])
            .with("mail", &["alice@example.test"])
            .with("pwdChangedTime", &["20261130103106Z"])
            .with(
                "pwdPolicySubentry",
                &["cn=strict,ou=policies,dc=example,dc=test"],
            )
            .with("pwdReset", &["TRUE"]);
        let user = DirectoryUser::from_entry(&settings(), &entry).unwrap();
        assert_eq!(
            user.account,
            Account {
                id: UUID.into(),
                username: "alice".into(),
                principal_name: None,
                display_name: Some("Alice Example".into()),
                email: Some("alice@example.test".into()),
                location: Some(entry.dn.clone()),
                enabled: true,
                locked_out: false,
                synced_from_on_premises: false,
            }
        );
        assert_eq!(user.changed_at, Some(1_796_034_666));
        assert_eq!(
            user.policy_subentry.as_deref(),
            Some("cn=strict,ou=policies,dc=example,dc=test")
        );
        assert!(user.pwd_reset && !user.lock_recorded);
    }

    #[test]
    fn locks() {
        let base = DirEntry::new("uid=x")
            .with("entryUUID", &[UUID])
            .with("uid", &["x"]);
        let locked = base
            .clone()
            .with("pwdAccountLockedTime", &["20261130103106Z"]);
        let user = DirectoryUser::from_entry(&settings(), &locked).unwrap();
        assert!(user.lock_recorded);
        assert!(user.account.locked_out && user.account.enabled);
        let disabled = base.with("pwdAccountLockedTime", &[gtime::PERMANENT_LOCK]);
        let account = DirectoryUser::from_entry(&settings(), &disabled)
            .unwrap()
            .account;
        assert!(account.locked_out && !account.enabled);
    }

    #[test]
    fn an_unreadable_id_is_a_denial() {
        let entry = DirEntry::new("uid=x").with("uid", &["x"]);
        let Err(ConnectorError::Denied(info)) = DirectoryUser::from_entry(&settings(), &entry)
        else {
            panic!()
        };
        assert!(info.message.contains("entryUUID") && info.message.contains("uid=x"));
    }

    #[test]
    fn uuids() {
        assert!(looks_like_uuid(UUID));
        assert!(!looks_like_uuid("alice"));
        assert!(!looks_like_uuid("e11ea814-80f4-1041-8d16-51a39ddbfecX"));
        assert_eq!(id_clause(&settings(), "alice"), None);
    }
}
