//! Keyset paging for `find-accounts`. Every call gets a new LDAP session, possibly on another
//! connection, so a server's paged-results cookie cannot be a cursor (slapd ties it to its
//! connection). And OpenLDAP cannot do the next page's `>=` on the username itself: `uid`
//! has no ordering rule in the standard schema, and server-side sorting needs the sssvlv
//! overlay, which most servers do not load. So the plugin reads every user in scope that
//! matches, orders them itself by (username ignoring case, username, id) — a total order, even
//! for duplicate usernames — and the cursor is the (username, id) of the last one returned.

use std::cmp::Ordering;

use latchkey_plugin_sdk::{ConnectorError, ErrorInfo};

const PREFIX: &str = "uid1.";

/// Where a page ends: the last account's username and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub username: String,
    pub id: String,
}

impl Key {
    /// The order of accounts in pages.
    pub fn order(&self, other: &Key) -> Ordering {
        self.username
            .to_lowercase()
            .cmp(&other.username.to_lowercase())
            .then_with(|| self.username.cmp(&other.username))
            .then_with(|| self.id.cmp(&other.id))
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 1024 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The cursor that continues after `key`.
pub fn encode(key: &Key) -> String {
    format!("{PREFIX}{}.{}", hex(&key.username), hex(&key.id))
}

/// The key a cursor continues after, or an error saying the cursor is not one of this
/// connector's.
pub fn decode(cursor: &str) -> Result<Key, ConnectorError> {
    let bad = || {
        ConnectorError::Internal(ErrorInfo {
            message: "the paging cursor was not made by this connector (or is damaged); start \
                      the search again from the first page"
                .into(),
            directory_text: None,
        })
    };
    let rest = cursor.strip_prefix(PREFIX).ok_or_else(bad)?;
    let (username, id) = rest.split_once('.').ok_or_else(bad)?;
    let key = Key {
        username: unhex(username).ok_or_else(bad)?,
        id: unhex(id).ok_or_else(bad)?,
    };
    if key.username.is_empty() && key.id.is_empty() {
        return Err(bad());
    }
    Ok(key)
}

/// One page out of every matching account (`items` in any order, each with its key): those
/// after `after`, in order, at most `limit`, and the cursor for the next page if there is one.
pub fn select_page<T>(
    mut items: Vec<(Key, T)>,
    after: Option<&Key>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    if let Some(after) = after {
        items.retain(|(key, _)| key.order(after) == Ordering::Greater);
    }
    items.sort_by(|(a, _), (b, _)| a.order(b));
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next = match items.last() {
        Some((key, _)) if has_more => Some(encode(key)),
        _ => None,
    };
    (items.into_iter().map(|(_, item)| item).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(username: &str, id: &str) -> Key {
        Key {
            username: username.into(),
            id: id.into(),
        }
    }

    #[test]
    fn round_trip() {
        for k in [
            key("alice", "e11ea814-80f4-1041-8d16-51a39ddbfecc"),
            key("x*()\\.", "1"),
            key("é", ""),
        ] {
            assert_eq!(decode(&encode(&k)).unwrap(), k);
        }
        assert_eq!(encode(&key("ab", "1")), "uid1.6162.31");
    }

    #[test]
    fn garbage_cursors_are_refused_clearly() {
        for garbage in [
            "",
            "uid1.",
            "uid1.6162",
            "uid1.6.31",
            "uid1.zz.31",
            "sam1.6162",
            "uid1..",
        ] {
            let Err(ConnectorError::Internal(info)) = decode(garbage) else {
                panic!("{garbage:?} must be refused")
            };
            assert!(info.message.contains("cursor"));
        }
        assert!(decode(&format!("uid1.{}.31", "61".repeat(600))).is_err());
    }

    #[test]
    fn pages_follow_one_order_and_never_repeat_or_skip() {
        let all: Vec<(Key, &str)> = [
            ("carol", "3"),
            ("Bob", "2"),
            ("alice", "1"),
            ("dave", "4"),
            // The same username twice: the id decides.
            ("bob", "0"),
            ("bob", "9"),
        ]
        .into_iter()
        .map(|(u, id)| (key(u, id), id))
        .collect();
        let mut seen = vec![];
        let mut after = None;
        loop {
            let (page, next) = select_page(all.clone(), after.as_ref(), 2);
            seen.extend(page);
            match next {
                Some(cursor) => after = Some(decode(&cursor).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, ["1", "2", "0", "9", "3", "4"]);
    }

    #[test]
    fn the_last_page_has_no_cursor_and_limit_zero_is_empty() {
        let items = vec![(key("a", "1"), 1), (key("b", "2"), 2)];
        let (page, next) = select_page(items.clone(), None, 2);
        assert_eq!((page, next), (vec![1, 2], None));
        let (page, next) = select_page(items, None, 0);
        assert!(page.is_empty() && next.is_none());
    }
}
