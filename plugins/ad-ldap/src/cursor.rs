//! Keyset paging for `find-accounts`. Every call gets a new LDAP session, possibly on another
//! connection, so a server-side paged-results cookie cannot be a cursor (Samba ties it to its
//! connection). The cursor is instead the last sAMAccountName returned, encoded opaquely; the
//! next page asks for `(sAMAccountName>=cursor)` in the DC's own order and drops the cursor's
//! entry.
//!
//! Whose order: seen on Samba 4.17, the server-side sort (1.2.840.113556.1.4.473) and the `>=`
//! filter agree with each other but not with any simple client-side order: ASCII compares
//! case-insensitively, yet names with non-ASCII letters (`pg-é`) sort *before* `pg-0` (the
//! casefolded UTF-8 bytes compare as signed chars). Windows sorts with its own collation. A
//! page sorted again client-side would then disagree with the next page's `>=` filter and
//! skip or repeat accounts, so when the DC sorted, its order is kept as it is. Only when the
//! DC cannot sort does the plugin order client-side, and then it also does the `>` itself
//! rather than asking the DC, so one order decides both.

use std::cmp::Ordering;

use latchkey_plugin_sdk::{ConnectorError, ErrorInfo};

use latchkey_plugin_sdk::ldap_entry::DirEntry;

const PREFIX: &str = "sam1.";

/// The cursor that continues after `sam_account_name`.
pub fn encode(sam_account_name: &str) -> String {
    let mut out = String::from(PREFIX);
    for byte in sam_account_name.bytes() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The sAMAccountName a cursor continues after, or an error saying the cursor is not one of
/// this connector's.
pub fn decode(cursor: &str) -> Result<String, ConnectorError> {
    let bad = || {
        ConnectorError::Internal(ErrorInfo {
            message: "the paging cursor was not made by this connector (or is damaged); \
                      start the search again from the first page"
                .into(),
            directory_text: None,
        })
    };
    let hex = cursor.strip_prefix(PREFIX).ok_or_else(bad)?;
    // sAMAccountName is at most 20 characters (64 in the schema): anything longer is not ours.
    if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 512 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// The client-side order, used only when the DC did not sort: case-insensitive, ties broken
/// by the exact text so the order is total.
pub fn client_order(a: &str, b: &str) -> Ordering {
    a.to_lowercase()
        .cmp(&b.to_lowercase())
        .then_with(|| a.cmp(b))
}

/// Whether two sAMAccountNames name the same account (AD keeps them unique ignoring case).
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

fn name_of(entry: &DirEntry) -> &str {
    entry.first("sAMAccountName").unwrap_or_default()
}

/// One page out of what the DC returned.
///
/// `server_sorted`: the entries are in the DC's order and already start at the cursor
/// (`>=`); otherwise they are every user in scope, unordered. `more_on_server`: the DC said
/// more entries follow (a paged-results cookie). Returns the page and the cursor for the next
/// one, if there is a next one.
pub fn select_page(
    mut entries: Vec<DirEntry>,
    after: Option<&str>,
    limit: usize,
    server_sorted: bool,
    more_on_server: bool,
) -> (Vec<DirEntry>, Option<String>) {
    if server_sorted {
        if let Some(after) = after {
            entries.retain(|e| !same_name(name_of(e), after));
        }
    } else {
        if let Some(after) = after {
            entries.retain(|e| client_order(name_of(e), after) == Ordering::Greater);
        }
        entries.sort_by(|a, b| client_order(name_of(a), name_of(b)));
    }
    let has_more = entries.len() > limit || (server_sorted && more_on_server);
    entries.truncate(limit);
    let next = match entries.last() {
        Some(last) if has_more => Some(encode(name_of(last))),
        _ => None,
    };
    (entries, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> DirEntry {
        DirEntry::new(format!("CN={name}")).with("sAMAccountName", &[name])
    }

    fn names(entries: &[DirEntry]) -> Vec<&str> {
        entries.iter().map(name_of).collect()
    }

    #[test]
    fn round_trip() {
        for name in ["alice", "pg-é", "a b", "x*()\\"] {
            assert_eq!(decode(&encode(name)).unwrap(), name);
        }
        assert_eq!(encode("ab"), "sam1.6162");
    }

    #[test]
    fn garbage_cursors_are_refused_clearly() {
        for garbage in [
            "",
            "sam1.",
            "sam1.6",
            "sam1.zz",
            "6162",
            "sam2.6162",
            "sam1.ff",
        ] {
            let Err(ConnectorError::Internal(info)) = decode(garbage) else {
                panic!("{garbage:?} must be refused")
            };
            assert!(info.message.contains("cursor"), "{}", info.message);
        }
        assert!(decode(&format!("sam1.{}", "61".repeat(300))).is_err());
    }

    #[test]
    fn a_server_sorted_page_keeps_the_servers_order_and_drops_the_cursor() {
        // Samba's order, seen on 4.17: non-ASCII before digits.
        let from_dc = vec![user("pg-é"), user("pg-Éa"), user("pg-0"), user("pg-1")];
        let (page, next) = select_page(from_dc, Some("PG-é"), 2, true, false);
        assert_eq!(names(&page), ["pg-Éa", "pg-0"]);
        assert_eq!(decode(&next.unwrap()).unwrap(), "pg-0");
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let (page, next) = select_page(vec![user("a"), user("b")], None, 2, true, false);
        assert_eq!(names(&page), ["a", "b"]);
        assert_eq!(next, None);
    }

    #[test]
    fn a_cookie_from_the_dc_means_more_even_when_the_page_is_short() {
        // AD caps a page at MaxPageSize; the cookie says more entries follow.
        let (page, next) = select_page(vec![user("a"), user("b")], None, 5, true, true);
        assert_eq!(names(&page), ["a", "b"]);
        assert_eq!(decode(&next.unwrap()).unwrap(), "b");
    }

    #[test]
    fn without_the_dcs_sort_the_plugin_orders_and_filters_itself() {
        let all = vec![user("carol"), user("Bob"), user("alice"), user("dave")];
        let (page, next) = select_page(all.clone(), None, 2, false, false);
        assert_eq!(names(&page), ["alice", "Bob"]);
        let after = decode(&next.unwrap()).unwrap();
        let (page, next) = select_page(all, Some(&after), 2, false, false);
        assert_eq!(names(&page), ["carol", "dave"]);
        assert_eq!(next, None);
    }

    #[test]
    fn limit_zero_is_an_empty_last_page() {
        let (page, next) = select_page(vec![user("a")], None, 0, true, true);
        assert!(page.is_empty() && next.is_none());
    }
}
