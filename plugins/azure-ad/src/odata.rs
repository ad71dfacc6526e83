//! OData pieces built from untrusted text (a query typed by an administrator): string literals
//! for `$filter`, phrases for `$search`, and object ids. Every value goes through [`literal`]
//! or [`search_phrase`], so no input can change a query's structure (`x' or true or 'y` is one
//! literal here). URL encoding is the host's job: these are the values before it.

/// `text` as an OData string literal: in single quotes, each `'` doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"property:text"` for `$search`. A search phrase is delimited by double quotes and Graph
/// gives no reliable way to escape one inside it, so `"` (and `\`, its would-be escape) are
/// dropped from the text; none when nothing searchable is left.
pub fn search_phrase(property: &str, text: &str) -> Option<String> {
    let cleaned: String = text.chars().filter(|c| !matches!(c, '"' | '\\')).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| format!("\"{property}:{cleaned}\""))
}

/// Clauses joined with `or` (no parentheses: the caller wraps when combining).
pub fn any_of(clauses: &[String]) -> String {
    clauses.join(" or ")
}

/// Filters that must all hold, each parenthesised; none when there are none.
pub fn all_of(filters: &[&str]) -> Option<String> {
    match filters {
        [] => None,
        [only] => Some((*only).to_string()),
        many => Some(
            many.iter()
                .map(|f| format!("({f})"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
    }
}

/// A GUID (an Entra object id) in its canonical lowercase form: 8-4-4-4-12 hex digits,
/// optionally in braces; none for anything else.
pub fn guid(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let groups: Vec<&str> = text.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let hex = groups
        .iter()
        .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    (lengths == [8, 4, 4, 4, 12] && hex).then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(literal("alice"), "'alice'");
        assert_eq!(literal("o'brien"), "'o''brien'");
        assert_eq!(literal("x' or true or 'y"), "'x'' or true or ''y'");
        assert_eq!(literal(""), "''");
        assert_eq!(literal("''"), "''''''");
        // Nothing else is special inside a literal (the host URL-encodes the value).
        assert_eq!(literal("a&b=c#d+e%f"), "'a&b=c#d+e%f'");
    }

    #[test]
    fn search_phrases_drop_quotes() {
        assert_eq!(
            search_phrase("displayName", "Al Smith").as_deref(),
            Some("\"displayName:Al Smith\"")
        );
        assert_eq!(
            search_phrase("displayName", "x\" OR \"mail:y").as_deref(),
            Some("\"displayName:x OR mail:y\"")
        );
        assert_eq!(
            search_phrase("displayName", "a\\\"b").as_deref(),
            Some("\"displayName:ab\"")
        );
        assert_eq!(search_phrase("displayName", "\"\""), None);
        assert_eq!(search_phrase("displayName", " \" "), None);
    }

    #[test]
    fn combining() {
        assert_eq!(
            any_of(&["a eq 'x'".into(), "b eq 'x'".into()]),
            "a eq 'x' or b eq 'x'"
        );
        assert_eq!(all_of(&[]), None);
        assert_eq!(all_of(&["a or b"]).as_deref(), Some("a or b"));
        assert_eq!(
            all_of(&["a or b", "accountEnabled eq true"]).as_deref(),
            Some("(a or b) and (accountEnabled eq true)")
        );
    }

    #[test]
    fn guids() {
        assert_eq!(
            guid("9C8B66A4-19EC-497C-B0BE-C764FF1C6391").as_deref(),
            Some("9c8b66a4-19ec-497c-b0be-c764ff1c6391")
        );
        assert_eq!(
            guid("{9c8b66a4-19ec-497c-b0be-c764ff1c6391}").as_deref(),
            Some("9c8b66a4-19ec-497c-b0be-c764ff1c6391")
        );
        for text in [
            "",
            "alice",
            "9c8b66a4-19ec-497c-b0be-c764ff1c639",
            "9c8b66a419ec497cb0bec764ff1c6391",
            "9c8b66a4-19ec-497c-b0be-c764ff1c639g",
            "9c8b66a4-19ec-497c-b0bec-764ff1c6391",
            "{9c8b66a4-19ec-497c-b0be-c764ff1c6391",
            "9c8b66a4-19ec-497c-b0be-c764ff1c639é",
            "9c8b66a4-19ec-497c-b0be-c764ff1c6391/x",
        ] {
            assert_eq!(guid(text), None, "{text}");
        }
    }
}
