//! Paging for `find-accounts`. Graph pages with `@odata.nextLink`, a full URL that carries the
//! query and Graph's own `$skiptoken`. The cursor is that link reduced to its path and query
//! (`/v1.0/users?$select=…&$skiptoken=…`): the scheme and host are dropped whatever they are
//! (the host picks the endpoint: the cloud's, or a test override), and so is any path prefix
//! before the version. The next page sends the same path with the query decoded back into
//! name/value pairs, which the host encodes again; `$top` follows the limit of the new call.
//!
//! Every call runs in a fresh instance, so the cursor is the only state between pages, and it is
//! checked before use: it may only continue a search of `/v1.0/users`.

use latchkey_plugin_sdk::graph::{Method, Request};
use latchkey_plugin_sdk::{ConnectorError, ErrorInfo};

/// The collection every search pages through.
pub const USERS_PATH: &str = "/v1.0/users";

/// The cursor for Graph's `@odata.nextLink`; none when the link has no Graph version in its
/// path (then it is not a Graph link the host could follow).
pub fn from_next_link(link: &str) -> Option<String> {
    let link = link.trim();
    let link = link.split('#').next().unwrap_or_default();
    // Drop scheme and authority: everything up to the first '/' after "://".
    let path_and_query = match link.find("://") {
        Some(scheme_end) => {
            let rest = &link[scheme_end + 3..];
            &rest[rest.find('/')?..]
        }
        None => link,
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    // Keep the path from the version on (a test endpoint may serve Graph below a prefix).
    let version_at = ["/v1.0/", "/beta/"]
        .iter()
        .filter_map(|version| path.find(version))
        .min()?;
    let path = &path[version_at..];
    Some(match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    })
}

fn bad_cursor() -> ConnectorError {
    ConnectorError::Internal(ErrorInfo {
        message: "the paging cursor was not made by this connector (or is damaged); start the \
                  search again from the first page"
            .into(),
        directory_text: None,
    })
}

/// One URL query component decoded: `%XX` escapes, and `+` as a space (as Graph's servers read
/// their own links).
fn decode_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query of a cursor as decoded name/value pairs.
pub fn decode_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_component(name)?;
            (!name.is_empty()).then_some(())?;
            Some((name, decode_component(value)?))
        })
        .collect()
}

/// The request for the page a cursor points at, with at most `top` accounts.
pub fn to_request(cursor: &str, top: u32) -> Result<Request, ConnectorError> {
    let (path, query) = cursor.split_once('?').unwrap_or((cursor, ""));
    if path != USERS_PATH {
        return Err(bad_cursor());
    }
    let mut query = decode_query(query).ok_or_else(bad_cursor)?;
    query.retain(|(name, _)| name != "$top");
    query.push(("$top".into(), top.to_string()));
    Ok(Request {
        method: Method::Get,
        path: path.to_string(),
        query,
        body: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: &str = "https://graph.microsoft.com/v1.0/users?$select=id%2cuserPrincipalName&$count=true&$top=2&$filter=startswith(displayName%2C%27Al%20B%27)&$skiptoken=RFNwdAIAAQAAACE6YWxpY2VAY29ycC50ZXN0KVVzZXJfN2Y%3d";

    #[test]
    fn a_next_link_becomes_a_cursor_and_the_cursor_a_request() {
        let cursor = from_next_link(NEXT).unwrap();
        assert!(cursor.starts_with("/v1.0/users?$select="));
        let request = to_request(&cursor, 5).unwrap();
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.path, "/v1.0/users");
        assert_eq!(request.body, None);
        assert_eq!(
            request.query,
            vec![
                ("$select".to_string(), "id,userPrincipalName".to_string()),
                ("$count".to_string(), "true".to_string()),
                (
                    "$filter".to_string(),
                    "startswith(displayName,'Al B')".to_string()
                ),
                (
                    "$skiptoken".to_string(),
                    "RFNwdAIAAQAAACE6YWxpY2VAY29ycC50ZXN0KVVzZXJfN2Y=".to_string()
                ),
                ("$top".to_string(), "5".to_string()),
            ]
        );
    }

    #[test]
    fn any_scheme_host_or_prefix_is_dropped() {
        for link in [
            "http://127.0.0.1:41234/v1.0/users?$skiptoken=abc",
            "https://graph.microsoft.us/v1.0/users?$skiptoken=abc",
            "https://microsoftgraph.chinacloudapi.cn/v1.0/users?$skiptoken=abc#frag",
            "http://localhost:8080/emulator/graph/v1.0/users?$skiptoken=abc",
            "/v1.0/users?$skiptoken=abc",
        ] {
            assert_eq!(
                from_next_link(link).as_deref(),
                Some("/v1.0/users?$skiptoken=abc"),
                "{link}"
            );
        }
        assert_eq!(from_next_link("https://graph.microsoft.com"), None);
        assert_eq!(from_next_link("https://example.com/users?x=1"), None);
        assert_eq!(from_next_link(""), None);
    }

    #[test]
    fn plus_is_a_space_and_escapes_are_decoded() {
        assert_eq!(
            decode_query("$search=%22displayName:a+b%22&$count=true&&"),
            Some(vec![
                ("$search".to_string(), "\"displayName:a b\"".to_string()),
                ("$count".to_string(), "true".to_string()),
            ])
        );
        assert_eq!(
            decode_query("a=%2B%26%3D%c3%a9"),
            Some(vec![("a".to_string(), "+&=é".to_string())])
        );
        assert_eq!(
            decode_query("flag"),
            Some(vec![("flag".to_string(), String::new())])
        );
        assert_eq!(decode_query("a=%zz"), None);
        assert_eq!(decode_query("a=%4"), None);
        assert_eq!(decode_query("a=%ff"), None, "not UTF-8");
        assert_eq!(decode_query("=x"), None);
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for cursor in [
            "",
            "sam1.6162",
            "/v1.0/users/9c8b66a4-19ec-497c-b0be-c764ff1c6391?$select=id",
            "/v1.0/groups?$skiptoken=abc",
            "/beta/users?$skiptoken=abc",
            "/v1.0/users?$skiptoken=%zz",
            "https://graph.microsoft.com/v1.0/users?$skiptoken=abc",
        ] {
            let Err(ConnectorError::Internal(info)) = to_request(cursor, 10) else {
                panic!("{cursor:?} must be refused")
            };
            assert!(info.message.contains("cursor"));
        }
    }
}
