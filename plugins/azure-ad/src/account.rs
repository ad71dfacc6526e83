//! Users: finding them (`find-accounts`), reading one again by object id, and mapping a Graph
//! user to the contract's `account`.
//!
//! An account's `id` is the user's Entra object id (a GUID), which never changes and is never
//! reused; every operation addresses `/v1.0/users/{id}` with it. Which searches need Graph's
//! advanced queries (`$count=true`, with the `ConsistencyLevel: eventual` header the host adds):
//! `$search`, and `$filter` on `onPremisesSamAccountName`. An administrator's `user_filter`
//! may use properties only advanced queries can filter on, so it makes the query advanced too.

use latchkey_plugin_sdk::graph::{Method, Request};
use latchkey_plugin_sdk::log::{self, Level};
use latchkey_plugin_sdk::{
    Account, AccountPage, AccountQuery, ConnectorError, ErrorInfo, MatchMode,
};
use serde::Deserialize;

use crate::client;
use crate::config;
use crate::cursor;
use crate::errors::Operation;
use crate::odata::{self, literal};

/// The properties an account is made of.
pub const SELECT: &str = "id,userPrincipalName,displayName,mail,accountEnabled,\
                          onPremisesSyncEnabled,onPremisesSamAccountName,\
                          onPremisesDistinguishedName";

/// The most users Graph returns in one page of `/users`.
pub const MAX_PAGE: u32 = 999;

/// Where a cloud-only user "lives", for people reading an audit.
pub const CLOUD_LOCATION: &str = "Entra ID";

/// A user as Graph returns it (only the selected properties are present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphUser {
    pub id: Option<String>,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub account_enabled: Option<bool>,
    pub on_premises_sync_enabled: Option<bool>,
    pub on_premises_sam_account_name: Option<String>,
    pub on_premises_distinguished_name: Option<String>,
    pub password_policies: Option<String>,
    pub last_password_change_date_time: Option<String>,
}

/// One page of `/users`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserPage {
    pub value: Vec<GraphUser>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// The most bytes of a display name and of a location the host accepts in an account.
pub const MAX_DISPLAY_NAME_BYTES: usize = 512;
pub const MAX_LOCATION_BYTES: usize = 2048;

/// `text` cut to at most `max` bytes, at a character boundary, with `…` when cut. Entra ID
/// allows display names of 256 characters, which can be more bytes than the host accepts.
pub fn fit(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let ellipsis = "…";
    let mut cut = max.saturating_sub(ellipsis.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ellipsis}", &text[..cut])
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl GraphUser {
    /// True when the user is mastered on-premises and synced here.
    pub fn synced(&self) -> bool {
        self.on_premises_sync_enabled == Some(true)
    }

    /// This user as a contract account; none without an object id.
    pub fn to_account(&self) -> Option<Account> {
        let id = non_empty(&self.id)?;
        let principal_name = non_empty(&self.user_principal_name);
        let username = non_empty(&self.on_premises_sam_account_name)
            .or_else(|| {
                principal_name
                    .as_deref()
                    .map(|upn| upn.split('@').next().unwrap_or(upn).to_string())
            })
            .unwrap_or_else(|| id.clone());
        Some(Account {
            id,
            username,
            principal_name,
            display_name: non_empty(&self.display_name)
                .map(|name| fit(name, MAX_DISPLAY_NAME_BYTES)),
            email: non_empty(&self.mail),
            location: Some(fit(
                non_empty(&self.on_premises_distinguished_name)
                    .unwrap_or_else(|| CLOUD_LOCATION.to_string()),
                MAX_LOCATION_BYTES,
            )),
            // Graph always returns accountEnabled when selected; absent is read as enabled.
            enabled: self.account_enabled.unwrap_or(true),
            // Entra ID's smart lockout state is not readable by an application.
            locked_out: false,
            synced_from_on_premises: self.synced(),
        })
    }
}

/// How to ask Graph for the users matching a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersQuery {
    pub filter: Option<String>,
    pub search: Option<String>,
    /// Needs `$count=true` (and the eventual-consistency header the host adds for it).
    pub advanced: bool,
}

/// The Graph query for `query`, with the administrator's `user_filter` ANDed in; none when no
/// account can match (an exact query for nothing, a search with nothing searchable in it).
///
/// - exact: the UPN, the mail or the on-premises sAMAccountName equals the text; or the object
///   id does (a GUID); or, for text without `@`, the UPN's local part does.
/// - prefix: the display name, the UPN or the mail starts with the text.
/// - contains: a `$search` of the display name and the UPN (Graph matches words by prefix).
/// - prefix or contains with no text: every user.
pub fn users_query(query: &AccountQuery, user_filter: Option<&str>) -> Option<UsersQuery> {
    let text = query.text.trim();
    let (clause, search, advanced) = if text.is_empty() {
        match query.mode {
            MatchMode::Exact => return None,
            MatchMode::Prefix | MatchMode::Contains => (None, None, false),
        }
    } else {
        let value = literal(text);
        match query.mode {
            MatchMode::Exact => {
                let mut clauses = vec![
                    format!("userPrincipalName eq {value}"),
                    format!("mail eq {value}"),
                    format!("onPremisesSamAccountName eq {value}"),
                ];
                if let Some(id) = odata::guid(text) {
                    clauses.push(format!("id eq {}", literal(&id)));
                }
                if !text.contains('@') {
                    clauses.push(format!(
                        "startswith(userPrincipalName,{})",
                        literal(&format!("{text}@"))
                    ));
                }
                (Some(odata::any_of(&clauses)), None, true)
            }
            MatchMode::Prefix => {
                let clauses = ["displayName", "userPrincipalName", "mail"]
                    .map(|property| format!("startswith({property},{value})"));
                (Some(odata::any_of(&clauses)), None, false)
            }
            MatchMode::Contains => {
                let phrases: Vec<String> = ["displayName", "userPrincipalName"]
                    .iter()
                    .filter_map(|property| odata::search_phrase(property, text))
                    .collect();
                if phrases.is_empty() {
                    return None;
                }
                (None, Some(phrases.join(" OR ")), true)
            }
        }
    };
    let filters: Vec<&str> = clause.as_deref().into_iter().chain(user_filter).collect();
    Some(UsersQuery {
        filter: odata::all_of(&filters),
        search,
        advanced: advanced || user_filter.is_some(),
    })
}

impl UsersQuery {
    /// The first page's request, for at most `top` users.
    pub fn request(&self, top: u32) -> Request {
        let mut query = vec![
            ("$select".to_string(), SELECT.to_string()),
            ("$top".to_string(), top.to_string()),
        ];
        if let Some(filter) = &self.filter {
            query.push(("$filter".into(), filter.clone()));
        }
        if let Some(search) = &self.search {
            query.push(("$search".into(), search.clone()));
        }
        if self.advanced {
            query.push(("$count".into(), "true".into()));
        }
        Request {
            method: Method::Get,
            path: cursor::USERS_PATH.into(),
            query,
            body: None,
        }
    }
}

/// A page of Graph users as a page of accounts, at most `limit` of them, and how many were
/// dropped to keep to it (Graph honours `$top`; should it not, the contract's limit still holds).
pub fn account_page(page: UserPage, limit: u32) -> Result<(AccountPage, usize), ConnectorError> {
    let mut accounts: Vec<Account> = page
        .value
        .iter()
        .filter_map(GraphUser::to_account)
        .collect();
    let dropped = accounts.len().saturating_sub(limit as usize);
    accounts.truncate(limit as usize);
    let next_cursor = match page.next_link {
        None => None,
        Some(link) => Some(cursor::from_next_link(&link).ok_or_else(|| {
            ConnectorError::Internal(ErrorInfo {
                message: "Microsoft Graph's link to the next page of users could not be read; \
                          check graph_endpoint if it is set"
                    .into(),
                directory_text: Some(link.chars().take(500).collect()),
            })
        })?),
    };
    Ok((
        AccountPage {
            accounts,
            next_cursor,
        },
        dropped,
    ))
}

/// One page of users matching `query`.
pub fn find(
    query: &AccountQuery,
    cursor: Option<&str>,
    limit: u32,
) -> Result<AccountPage, ConnectorError> {
    let empty = || AccountPage {
        accounts: vec![],
        next_cursor: None,
    };
    if limit == 0 {
        return Ok(empty());
    }
    let top = limit.min(MAX_PAGE);
    let user_filter = config::user_filter();
    let request = match cursor {
        Some(cursor) => cursor::to_request(cursor, top)?,
        None => match users_query(query, user_filter.as_deref()) {
            Some(users) => users.request(top),
            None => return Ok(empty()),
        },
    };
    let operation = Operation::Search {
        user_filter: user_filter.is_some(),
    };
    let page: UserPage = client::get_json(operation, request)?;
    let (page, dropped) = account_page(page, top)?;
    if dropped > 0 {
        log::log(
            Level::Warn,
            &format!(
                "Graph returned {dropped} more users than the page's limit of {top}; they were \
                 dropped from this page"
            ),
        );
    }
    Ok(page)
}

/// The object id an account carries, checked: it goes into a Graph path.
pub fn object_id(account: &Account) -> Result<String, ConnectorError> {
    odata::guid(&account.id).ok_or_else(|| {
        ConnectorError::Internal(ErrorInfo {
            message: format!(
                "the account id {:?} is not an Entra object id, so it was not found by this \
                 connector; find the account again",
                account.id
            ),
            directory_text: None,
        })
    })
}

/// The request reading `properties` of the user `id`.
pub fn read_request(id: &str, properties: &str) -> Request {
    client::get(format!("/v1.0/users/{id}"), &[("$select", properties)])
}

/// `properties` of the user `id`, as Graph has them now.
pub fn read(id: &str, properties: &str) -> Result<GraphUser, ConnectorError> {
    client::get_json(Operation::ReadUser(id), read_request(id, properties))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "9c8b66a4-19ec-497c-b0be-c764ff1c6391";

    fn query(text: &str, mode: MatchMode) -> AccountQuery {
        AccountQuery {
            text: text.into(),
            mode,
        }
    }

    fn filter_of(text: &str, mode: MatchMode, user_filter: Option<&str>) -> UsersQuery {
        users_query(&query(text, mode), user_filter).unwrap()
    }

    #[test]
    fn exact_queries_try_every_identifier() {
        assert_eq!(
            filter_of("jdoe", MatchMode::Exact, None),
            UsersQuery {
                filter: Some(
                    "userPrincipalName eq 'jdoe' or mail eq 'jdoe' or \
                     onPremisesSamAccountName eq 'jdoe' or startswith(userPrincipalName,'jdoe@')"
                        .into()
                ),
                search: None,
                advanced: true,
            }
        );
        // A UPN has no local-part clause.
        assert_eq!(
            filter_of("jdoe@corp.test", MatchMode::Exact, None)
                .filter
                .unwrap(),
            "userPrincipalName eq 'jdoe@corp.test' or mail eq 'jdoe@corp.test' or \
             onPremisesSamAccountName eq 'jdoe@corp.test'"
        );
        // A GUID is also tried as the object id, in canonical form.
        let upper = ALICE.to_uppercase();
        assert_eq!(
            filter_of(&upper, MatchMode::Exact, None).filter.unwrap(),
            format!(
                "userPrincipalName eq '{upper}' or mail eq '{upper}' or \
                 onPremisesSamAccountName eq '{upper}' or id eq '{ALICE}' or \
                 startswith(userPrincipalName,'{upper}@')"
            )
        );
        assert_eq!(users_query(&query("  ", MatchMode::Exact), None), None);
    }

    #[test]
    fn quotes_cannot_break_out_of_a_literal() {
        assert_eq!(
            filter_of("o'brien' or true or 'x", MatchMode::Prefix, None)
                .filter
                .unwrap(),
            "startswith(displayName,'o''brien'' or true or ''x') or \
             startswith(userPrincipalName,'o''brien'' or true or ''x') or \
             startswith(mail,'o''brien'' or true or ''x')"
        );
        assert!(
            filter_of("o'b", MatchMode::Exact, None)
                .filter
                .unwrap()
                .contains("startswith(userPrincipalName,'o''b@')")
        );
    }

    #[test]
    fn prefix_queries_are_plain_filters() {
        assert_eq!(
            filter_of("Al", MatchMode::Prefix, None),
            UsersQuery {
                filter: Some(
                    "startswith(displayName,'Al') or startswith(userPrincipalName,'Al') or \
                     startswith(mail,'Al')"
                        .into()
                ),
                search: None,
                advanced: false,
            }
        );
    }

    #[test]
    fn contains_queries_search() {
        assert_eq!(
            filter_of("Al \"B\"", MatchMode::Contains, None),
            UsersQuery {
                filter: None,
                search: Some("\"displayName:Al B\" OR \"userPrincipalName:Al B\"".into()),
                advanced: true,
            }
        );
        assert_eq!(users_query(&query("\"", MatchMode::Contains), None), None);
    }

    #[test]
    fn empty_text_lists_everyone_in_the_users_filter() {
        for mode in [MatchMode::Prefix, MatchMode::Contains] {
            assert_eq!(
                filter_of("", mode, None),
                UsersQuery {
                    filter: None,
                    search: None,
                    advanced: false
                }
            );
            assert_eq!(
                filter_of("", mode, Some("accountEnabled eq true")),
                UsersQuery {
                    filter: Some("accountEnabled eq true".into()),
                    search: None,
                    advanced: true
                }
            );
        }
    }

    #[test]
    fn the_user_filter_is_anded_in() {
        assert_eq!(
            filter_of("Al", MatchMode::Prefix, Some("accountEnabled eq true")),
            UsersQuery {
                filter: Some(
                    "(startswith(displayName,'Al') or startswith(userPrincipalName,'Al') or \
                     startswith(mail,'Al')) and (accountEnabled eq true)"
                        .into()
                ),
                search: None,
                advanced: true,
            }
        );
        let contains = filter_of("Al", MatchMode::Contains, Some("accountEnabled eq true"));
        assert_eq!(contains.filter.as_deref(), Some("accountEnabled eq true"));
        assert!(contains.search.is_some());
    }

    #[test]
    fn the_first_request() {
        let request = filter_of("Al", MatchMode::Contains, None).request(25);
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.path, "/v1.0/users");
        assert_eq!(request.body, None);
        assert_eq!(
            request.query,
            vec![
                ("$select".to_string(), SELECT.to_string()),
                ("$top".to_string(), "25".to_string()),
                (
                    "$search".to_string(),
                    "\"displayName:Al\" OR \"userPrincipalName:Al\"".to_string()
                ),
                ("$count".to_string(), "true".to_string()),
            ]
        );
        assert_eq!(
            SELECT,
            "id,userPrincipalName,displayName,mail,accountEnabled,onPremisesSyncEnabled,\
             onPremisesSamAccountName,onPremisesDistinguishedName"
        );
        let plain = filter_of("", MatchMode::Prefix, None).request(999);
        assert_eq!(plain.query.len(), 2, "no $filter, $search or $count");
    }

    const PAGE: &str = r#"{
      "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id,userPrincipalName)",
      "@odata.count": 3,
      "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$select=id&$top=3&$skiptoken=X%2bY",
      "value": [
        {"id": "9c8b66a4-19ec-497c-b0be-c764ff1c6391", "userPrincipalName": "alice@corp.test",
         "displayName": "Alice Example", "mail": "alice@corp.example", "accountEnabled": true,
         "onPremisesSyncEnabled": null, "onPremisesSamAccountName": null,
         "onPremisesDistinguishedName": null},
        {"id": "0b6a2c4e-0000-4000-8000-000000000002", "userPrincipalName": "bob@corp.test",
         "displayName": "Bob Synced", "mail": null, "accountEnabled": false,
         "onPremisesSyncEnabled": true, "onPremisesSamAccountName": "bsynced",
         "onPremisesDistinguishedName": "CN=Bob Synced,OU=Staff,DC=corp,DC=test"},
        {"userPrincipalName": "no-id@corp.test"},
        {"id": "0b6a2c4e-0000-4000-8000-000000000003", "userPrincipalName": "guest_example.com#EXT#@corp.test",
         "onPremisesSyncEnabled": false, "extraProperty": 1}
      ]
    }"#;

    #[test]
    fn users_become_accounts() {
        let page: UserPage = serde_json::from_str(PAGE).unwrap();
        let (page, dropped) = account_page(page, 10).unwrap();
        assert_eq!(dropped, 0);
        assert_eq!(
            page.accounts[0],
            Account {
                id: ALICE.into(),
                username: "alice".into(),
                principal_name: Some("alice@corp.test".into()),
                display_name: Some("Alice Example".into()),
                email: Some("alice@corp.example".into()),
                location: Some("Entra ID".into()),
                enabled: true,
                locked_out: false,
                synced_from_on_premises: false,
            }
        );
        assert_eq!(
            page.accounts[1],
            Account {
                id: "0b6a2c4e-0000-4000-8000-000000000002".into(),
                username: "bsynced".into(),
                principal_name: Some("bob@corp.test".into()),
                display_name: Some("Bob Synced".into()),
                email: None,
                location: Some("CN=Bob Synced,OU=Staff,DC=corp,DC=test".into()),
                enabled: false,
                locked_out: false,
                synced_from_on_premises: true,
            }
        );
        // A user without an id is skipped; a guest keeps its UPN's local part.
        assert_eq!(page.accounts.len(), 3);
        assert_eq!(page.accounts[2].username, "guest_example.com#EXT#");
        assert!(!page.accounts[2].synced_from_on_premises);
        assert_eq!(
            page.next_cursor.as_deref(),
            Some("/v1.0/users?$select=id&$top=3&$skiptoken=X%2bY")
        );
    }

    #[test]
    fn a_page_never_exceeds_the_limit_and_the_last_has_no_cursor() {
        let page: UserPage = serde_json::from_str(PAGE).unwrap();
        let (page, dropped) = account_page(page, 1).unwrap();
        assert_eq!((page.accounts.len(), dropped), (1, 2));
        let last: UserPage = serde_json::from_str(r#"{"value": []}"#).unwrap();
        let (last, _) = account_page(last, 10).unwrap();
        assert!(last.accounts.is_empty() && last.next_cursor.is_none());
        let odd: UserPage =
            serde_json::from_str(r#"{"value": [], "@odata.nextLink": "not a link"}"#).unwrap();
        assert!(matches!(
            account_page(odd, 10),
            Err(ConnectorError::Internal(_))
        ));
    }

    #[test]
    fn long_names_fit_the_hosts_limits() {
        assert_eq!(fit("short".into(), 512), "short");
        let cjk = "漢".repeat(256); // 768 bytes: Entra's longest display name in CJK
        let fitted = fit(cjk, MAX_DISPLAY_NAME_BYTES);
        assert!(fitted.len() <= MAX_DISPLAY_NAME_BYTES && fitted.ends_with('…'));
        let user = GraphUser {
            id: Some(ALICE.into()),
            display_name: Some("é".repeat(300)),
            on_premises_distinguished_name: Some(format!("CN={},DC=corp", "x".repeat(3000))),
            ..GraphUser::default()
        };
        let account = user.to_account().unwrap();
        assert!(account.display_name.unwrap().len() <= MAX_DISPLAY_NAME_BYTES);
        assert!(account.location.unwrap().len() <= MAX_LOCATION_BYTES);
    }

    #[test]
    fn object_ids_are_checked_before_they_go_into_a_path() {
        let mut account = GraphUser {
            id: Some(ALICE.to_uppercase()),
            ..GraphUser::default()
        }
        .to_account()
        .unwrap();
        assert_eq!(object_id(&account).unwrap(), ALICE);
        assert_eq!(account.username, account.id, "no names: the id stands in");
        account.id = "../groups".into();
        assert!(matches!(
            object_id(&account),
            Err(ConnectorError::Internal(_))
        ));
        let request = read_request(ALICE, "passwordPolicies,onPremisesSyncEnabled");
        assert_eq!(request.path, format!("/v1.0/users/{ALICE}"));
        assert_eq!(
            request.query,
            vec![(
                "$select".to_string(),
                "passwordPolicies,onPremisesSyncEnabled".to_string()
            )]
        );
    }
}
