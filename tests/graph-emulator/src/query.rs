//! OData query options as Graph applies them to users: `$select`, `$top`, `$filter` (`eq`,
//! `ne`, `in`, `startsWith`, `endsWith`, `not`, `and`, `or`, parentheses, `'…'` literals with
//! `''` escaping, case-insensitive comparison), `$search="property:text"` (tokenised prefix
//! match, clauses joined by `AND`/`OR`), `$count`, `$orderby` and `$skiptoken` paging.
//!
//! It parses and evaluates; it also says which parts need Graph's advanced query parameters
//! (`ConsistencyLevel: eventual` plus `$count=true`, or the header alone for `$search`). It never
//! sees the directory itself: it evaluates one user's JSON at a time.

use base64::Engine;
use serde_json::{Map, Value};

use crate::errors::GraphError;
use crate::user::{self, Filtering, Kind, Property};

/// Graph's default page size for users, and its largest.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
pub(crate) const MAX_PAGE_SIZE: usize = 999;

/// The query options of `GET /users`.
#[derive(Debug)]
pub(crate) struct ListQuery {
    pub select: Option<Vec<&'static Property>>,
    pub top: usize,
    pub filter: Option<Filter>,
    pub search: Option<Search>,
    pub count: bool,
    pub order_by: Vec<(&'static Property, bool)>,
    /// Where this page starts (from `$skiptoken`).
    pub offset: usize,
    /// The options as sent, `$skiptoken` left out, for the next page's link.
    pub carried: Vec<(String, String)>,
}

/// Splits a raw query string into decoded pairs.
fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|raw| {
        form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// The system query options among `pairs`, keyed by lowercase name without `$`; each at most
/// once, as OData requires.
fn system_options(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, GraphError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        let Some(name) = key.strip_prefix('$') else {
            continue; // Graph ignores custom query parameters.
        };
        let name = name.to_ascii_lowercase();
        if seen.iter().any(|(n, _)| *n == name) {
            return Err(GraphError::bad_request(format!(
                "Query option '{key}' was specified more than once, but it must be specified at \
                 most once."
            )));
        }
        seen.push((name, value.clone()));
    }
    Ok(seen)
}

/// `$select` of a single user (`GET /users/{id}`); other options are ignored there, unknown
/// ones refused.
pub(crate) fn parse_single(
    raw: Option<&str>,
) -> Result<Option<Vec<&'static Property>>, GraphError> {
    let mut select = None;
    for (name, value) in system_options(&pairs(raw))? {
        match name.as_str() {
            "select" => select = Some(parse_select(&value)?),
            "expand" => return Err(unknown_select_property(first_item(&value))),
            "filter" | "top" | "count" | "search" | "orderby" | "skiptoken" | "format" => {}
            other => return Err(unknown_option(other)),
        }
    }
    Ok(select)
}

impl ListQuery {
    pub fn parse(raw: Option<&str>) -> Result<ListQuery, GraphError> {
        let all = pairs(raw);
        let mut query = ListQuery {
            select: None,
            top: DEFAULT_PAGE_SIZE,
            filter: None,
            search: None,
            count: false,
            order_by: Vec::new(),
            offset: 0,
            carried: all
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("$skiptoken"))
                .cloned()
                .collect(),
        };
        for (name, value) in system_options(&all)? {
            match name.as_str() {
                "select" => query.select = Some(parse_select(&value)?),
                "top" => query.top = parse_top(&value)?,
                "filter" => query.filter = Some(Filter::parse(&value)?),
                "search" => query.search = Some(Search::parse(&value)?),
                "count" => query.count = parse_count(&value)?,
                "orderby" => query.order_by = parse_order_by(&value)?,
                "skiptoken" => query.offset = decode_skip_token(&value)?,
                "skip" => {
                    return Err(GraphError::directory_bad_request(
                        "'$skip' is not supported by the service.",
                    ));
                }
                "expand" => return Err(unknown_select_property(first_item(&value))),
                "format" => {}
                other => return Err(unknown_option(other)),
            }
        }
        Ok(query)
    }

    /// Refuses what Graph serves only as an advanced query when the request is not one:
    /// `$search` without `ConsistencyLevel: eventual`; `$count`, advanced filters and sorting a
    /// filtered or searched result without both that header and `$count=true`.
    pub fn check_advanced(&self, eventual: bool) -> Result<(), GraphError> {
        if self.search.is_some() && !eventual {
            return Err(GraphError::unsupported_query(
                "Request with $search query parameter only works through MSGraph with a special \
                 request header: 'ConsistencyLevel: eventual'",
            ));
        }
        if self.count && !eventual {
            return Err(GraphError::directory_bad_request(
                "$count is not currently supported.",
            ));
        }
        let advanced = eventual && self.count;
        if !advanced {
            if let Some(property) = self.filter.as_ref().and_then(Filter::needs_advanced) {
                return Err(GraphError::unsupported_filter_property(property));
            }
            if !self.order_by.is_empty() && (self.filter.is_some() || self.search.is_some()) {
                return Err(GraphError::unsupported_query(
                    "Sorting not supported for current query.",
                ));
            }
        }
        Ok(())
    }

    /// Whether one user (its full JSON) is in the result.
    pub fn matches(&self, user: &Map<String, Value>) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(user))
            && self.search.as_ref().is_none_or(|s| s.matches(user))
    }
}

fn first_item(value: &str) -> &str {
    value.split(',').next().unwrap_or_default().trim()
}

fn unknown_option(name: &str) -> GraphError {
    GraphError::bad_request(format!("The query parameter '${name}' is not supported."))
}

fn unknown_select_property(name: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Parsing OData Select and Expand failed: Could not find a property named '{name}' on \
         type 'microsoft.graph.user'."
    ))
}

/// `$select=a,b`: the properties in the order given (case-insensitive, duplicates dropped).
pub(crate) fn parse_select(value: &str) -> Result<Vec<&'static Property>, GraphError> {
    let mut selected: Vec<&'static Property> = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(GraphError::bad_request(format!(
                "Parsing OData Select and Expand failed: Term '{value}' is not valid in a $select \
                 or $expand expression."
            )));
        }
        if item == "*" {
            for p in user::PROPERTIES {
                if !selected.iter().any(|s| s.name == p.name) {
                    selected.push(p);
                }
            }
            continue;
        }
        let property = user::lookup(item).ok_or_else(|| unknown_select_property(item))?;
        if !selected.iter().any(|s| s.name == property.name) {
            selected.push(property);
        }
    }
    Ok(selected)
}

fn parse_top(value: &str) -> Result<usize, GraphError> {
    let n: i64 = value.trim().parse().map_err(|_| {
        GraphError::bad_request(format!(
            "Invalid value '{value}' for $top query option found. The $top query option requires \
             a non-negative integer value."
        ))
    })?;
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(GraphError::directory_bad_request(format!(
            "Invalid page size specified: '{n}'. Must be between 1 and {MAX_PAGE_SIZE} inclusive."
        ))),
    }
}

fn parse_count(value: &str) -> Result<bool, GraphError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(GraphError::bad_request(format!(
            "'{other}' is not a valid count option."
        ))),
    }
}

fn parse_order_by(value: &str) -> Result<Vec<(&'static Property, bool)>, GraphError> {
    let unsupported = || GraphError::unsupported_query("Sorting not supported for current query.");
    let mut order = Vec::new();
    for item in value.split(',') {
        let mut words = item.split_whitespace();
        let name = words.next().ok_or_else(unsupported)?;
        let property = user::lookup(name).ok_or_else(|| GraphError::unknown_property(name))?;
        if !matches!(property.name, "displayName" | "userPrincipalName") {
            return Err(unsupported());
        }
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(unsupported()),
        };
        if words.next().is_some() {
            return Err(unsupported());
        }
        order.push((property, descending));
    }
    Ok(order)
}

const SKIP_TOKEN_PREFIX: &str = "latchkey-emulator-page:";

/// An opaque `$skiptoken` for the page that starts at `offset`.
pub(crate) fn encode_skip_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{SKIP_TOKEN_PREFIX}{offset}"))
}

fn decode_skip_token(token: &str) -> Result<usize, GraphError> {
    let expired = || {
        GraphError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your \
             request.",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| expired())?;
    let text = String::from_utf8(bytes).map_err(|_| expired())?;
    text.strip_prefix(SKIP_TOKEN_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(expired)
}

// ---------------------------------------------------------------------------------------------
// $filter

/// A literal of a `$filter` comparison.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    String(String),
    Boolean(bool),
    Null,
}

impl Literal {
    fn edm(&self) -> &'static str {
        match self {
            Literal::String(_) => "Edm.String",
            Literal::Boolean(_) => "Edm.Boolean",
            Literal::Null => "null",
        }
    }
}

/// A parsed `$filter` expression.
#[derive(Clone, Debug)]
pub(crate) enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Equals {
        property: &'static Property,
        value: Literal,
        negated: bool,
    },
    In {
        property: &'static Property,
        values: Vec<Literal>,
    },
    StartsWith {
        property: &'static Property,
        prefix: String,
    },
    EndsWith {
        property: &'static Property,
        suffix: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
}

/// A filter the grammar rejects: 400 `BadRequest` "Invalid filter clause…".
fn invalid_filter(filter: &str, position: usize) -> GraphError {
    GraphError::bad_request(format!(
        "Invalid filter clause: Syntax error at position {position} in '{filter}'."
    ))
}

fn tokenize(filter: &str) -> Result<Vec<(usize, Token)>, GraphError> {
    let chars: Vec<char> = filter.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push((start, Token::Open));
                i += 1;
            }
            ')' => {
                tokens.push((start, Token::Close));
                i += 1;
            }
            ',' => {
                tokens.push((start, Token::Comma));
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid_filter(filter, start)),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
                tokens.push((start, Token::Text(text)));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == ':' => {
                let mut word = String::new();
                while let Some(&c) = chars.get(i) {
                    if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/') {
                        word.push(c);
                        i += 1;
                    } else {
                        break;
                    }
                }
                tokens.push((start, Token::Word(word)));
            }
            _ => return Err(invalid_filter(filter, start)),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens
            .get(self.next)
            .map_or(self.text.chars().count(), |(p, _)| *p)
    }

    fn error(&self) -> GraphError {
        invalid_filter(self.text, self.position())
    }

    fn take(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).map(|(_, t)| t.clone());
        self.next += 1;
        token
    }

    fn expect(&mut self, wanted: &Token) -> Result<(), GraphError> {
        if self.peek() == Some(wanted) {
            self.next += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.next += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, GraphError> {
        if self.keyword("not") {
            self.next += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, GraphError> {
        match self.take() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(&Token::Close)?;
                Ok(inner)
            }
            Some(Token::Word(word)) if self.peek() == Some(&Token::Open) => self.function(&word),
            Some(Token::Word(word)) => self.comparison(&word),
            _ => {
                self.next -= 1;
                Err(self.error())
            }
        }
    }

    /// `startswith(property,'text')` or `endswith(…)`; other OData functions are
    /// recognised and refused.
    fn function(&mut self, name: &str) -> Result<Filter, GraphError> {
        let lower = name.to_ascii_lowercase();
        if !matches!(lower.as_str(), "startswith" | "endswith") {
            return Err(match lower.as_str() {
                "contains" | "substringof" | "tolower" | "toupper" | "trim" | "length"
                | "indexof" | "concat" | "substring" => {
                    GraphError::unsupported_query("Unsupported Query.")
                }
                _ => GraphError::bad_request(format!(
                    "Invalid filter clause: An unknown function with name '{name}' was found."
                )),
            });
        }
        self.expect(&Token::Open)?;
        let property = match self.take() {
            Some(Token::Word(p)) => property_named(&p)?,
            _ => {
                self.next -= 1;
                return Err(self.error());
            }
        };
        self.expect(&Token::Comma)?;
        let text = match self.take() {
            Some(Token::Text(t)) => t,
            _ => {
                self.next -= 1;
                return Err(self.error());
            }
        };
        self.expect(&Token::Close)?;
        if property.kind != Kind::String {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: No function signature for the function with name '{name}' \
                 matches the specified arguments. The function signatures considered are: \
                 {lower}(Edm.String Nullable=true, Edm.String Nullable=true)."
            )));
        }
        Ok(if lower == "startswith" {
            Filter::StartsWith {
                property,
                prefix: text,
            }
        } else {
            Filter::EndsWith {
                property,
                suffix: text,
            }
        })
    }

    /// `property eq|ne literal` or `property in (literal, …)`.
    fn comparison(&mut self, name: &str) -> Result<Filter, GraphError> {
        let property = property_named(name)?;
        let operator = match self.take() {
            Some(Token::Word(op)) => op.to_ascii_lowercase(),
            _ => {
                self.next -= 1;
                return Err(self.error());
            }
        };
        match operator.as_str() {
            "eq" | "ne" => {
                let value = self.literal()?;
                check_type(property, &value, &operator)?;
                Ok(Filter::Equals {
                    property,
                    value,
                    negated: operator == "ne",
                })
            }
            "in" => {
                self.expect(&Token::Open)?;
                let mut values = vec![self.literal()?];
                while self.peek() == Some(&Token::Comma) {
                    self.next += 1;
                    values.push(self.literal()?);
                }
                self.expect(&Token::Close)?;
                for value in &values {
                    check_type(property, value, "eq")?;
                }
                Ok(Filter::In { property, values })
            }
            "gt" | "ge" | "lt" | "le" | "has" => {
                Err(GraphError::unsupported_filter_property(property.name))
            }
            _ => {
                self.next -= 1;
                Err(self.error())
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, GraphError> {
        match self.take() {
            Some(Token::Text(t)) => Ok(Literal::String(t)),
            Some(Token::Word(w)) if w == "true" => Ok(Literal::Boolean(true)),
            Some(Token::Word(w)) if w == "false" => Ok(Literal::Boolean(false)),
            Some(Token::Word(w)) if w == "null" => Ok(Literal::Null),
            _ => {
                self.next -= 1;
                Err(self.error())
            }
        }
    }
}

/// A property a filter names; an unknown one is an invalid filter clause.
fn property_named(name: &str) -> Result<&'static Property, GraphError> {
    user::lookup(name).ok_or_else(|| {
        GraphError::bad_request(format!(
            "Invalid filter clause: Could not find a property named '{name}' on type \
             'microsoft.graph.user'."
        ))
    })
}

/// Refuses a comparison whose literal's type is not the property's.
fn check_type(property: &Property, value: &Literal, operator: &str) -> Result<(), GraphError> {
    let fits = match (property.kind, value) {
        (_, Literal::Null) => true,
        (Kind::String, Literal::String(_)) | (Kind::Boolean, Literal::Boolean(_)) => true,
        (Kind::String | Kind::Boolean, _) => false,
        // Dates, collections and complex values are not filterable here anyway.
        _ => return Err(GraphError::unsupported_filter_property(property.name)),
    };
    if fits {
        Ok(())
    } else {
        let kind = if operator == "ne" {
            "NotEqual"
        } else {
            "Equal"
        };
        Err(GraphError::bad_request(format!(
            "Invalid filter clause: A binary operator with incompatible types was detected. Found \
             operand types '{}' and '{}' for operator kind '{kind}'.",
            property.kind.edm(),
            value.edm()
        )))
    }
}

/// How a clause uses its property, for deciding what it needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Equality,
    EqualsNull,
    StartsWith,
    Advanced,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, GraphError> {
        let mut parser = Parser {
            text,
            tokens: tokenize(text)?,
            next: 0,
        };
        if parser.tokens.is_empty() {
            return Err(invalid_filter(text, 0));
        }
        let filter = parser.or()?;
        if parser.next < parser.tokens.len() {
            return Err(parser.error());
        }
        filter.check_filterable()?;
        Ok(filter)
    }

    /// Every (property, use) pair of the expression; `negated` marks those under `not`.
    fn uses(&self, negated: bool, out: &mut Vec<(&'static Property, Use)>) {
        match self {
            Filter::Or(a, b) | Filter::And(a, b) => {
                a.uses(negated, out);
                b.uses(negated, out);
            }
            Filter::Not(inner) => inner.uses(true, out),
            Filter::Equals {
                property,
                value,
                negated: ne,
            } => {
                let usage = if negated || *ne {
                    Use::Advanced
                } else if *value == Literal::Null {
                    Use::EqualsNull
                } else {
                    Use::Equality
                };
                out.push((property, usage));
            }
            Filter::In { property, .. } => {
                out.push((
                    property,
                    if negated {
                        Use::Advanced
                    } else {
                        Use::Equality
                    },
                ));
            }
            Filter::StartsWith { property, .. } => {
                out.push((
                    property,
                    if negated {
                        Use::Advanced
                    } else {
                        Use::StartsWith
                    },
                ));
            }
            Filter::EndsWith { property, .. } => out.push((property, Use::Advanced)),
        }
    }

    /// Refuses properties that cannot be filtered at all, or not this way.
    fn check_filterable(&self) -> Result<(), GraphError> {
        let mut uses = Vec::new();
        self.uses(false, &mut uses);
        for (property, usage) in uses {
            let allowed = match property.filtering {
                Filtering::None => false,
                Filtering::Equality => usage != Use::StartsWith && usage != Use::EqualsNull,
                Filtering::Text | Filtering::AdvancedOnly => true,
            };
            if !allowed {
                return Err(GraphError::unsupported_filter_property(property.name));
            }
        }
        Ok(())
    }

    /// The first property whose use here needs an advanced query, if any.
    pub fn needs_advanced(&self) -> Option<&'static str> {
        let mut uses = Vec::new();
        self.uses(false, &mut uses);
        uses.into_iter()
            .find(|(property, usage)| {
                property.filtering == Filtering::AdvancedOnly
                    || matches!(usage, Use::Advanced | Use::EqualsNull)
            })
            .map(|(property, _)| property.name)
    }

    pub fn matches(&self, user: &Map<String, Value>) -> bool {
        match self {
            Filter::Or(a, b) => a.matches(user) || b.matches(user),
            Filter::And(a, b) => a.matches(user) && b.matches(user),
            Filter::Not(inner) => !inner.matches(user),
            Filter::Equals {
                property,
                value,
                negated,
            } => equals(user.get(property.name), value) != *negated,
            Filter::In { property, values } => {
                values.iter().any(|v| equals(user.get(property.name), v))
            }
            Filter::StartsWith { property, prefix } => text_of(user, property)
                .is_some_and(|t| t.to_lowercase().starts_with(&prefix.to_lowercase())),
            Filter::EndsWith { property, suffix } => text_of(user, property)
                .is_some_and(|t| t.to_lowercase().ends_with(&suffix.to_lowercase())),
        }
    }
}

fn text_of<'a>(user: &'a Map<String, Value>, property: &Property) -> Option<&'a str> {
    user.get(property.name).and_then(Value::as_str)
}

/// Graph's `eq`: strings case-insensitively, `null` matching only null.
fn equals(actual: Option<&Value>, wanted: &Literal) -> bool {
    match (actual.unwrap_or(&Value::Null), wanted) {
        (Value::Null, Literal::Null) => true,
        (Value::String(a), Literal::String(b)) => a.to_lowercase() == b.to_lowercase(),
        (Value::Bool(a), Literal::Boolean(b)) => a == b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// $search

/// A parsed `$search`: clauses `"property:text"` joined by `AND` (binding tighter) and `OR`.
#[derive(Clone, Debug)]
pub(crate) struct Search {
    /// Alternatives (OR) of conjunctions (AND) of clauses.
    any_of: Vec<Vec<SearchClause>>,
}

#[derive(Clone, Debug)]
struct SearchClause {
    property: &'static Property,
    /// The search text's tokens, lowercase.
    tokens: Vec<String>,
    /// The whole search text, lowercase (matched as a prefix of the whole value, too).
    text: String,
}

fn invalid_search(search: &str) -> GraphError {
    GraphError::unsupported_query(format!("Invalid search clause: {search}"))
}

impl Search {
    pub fn parse(search: &str) -> Result<Search, GraphError> {
        let chars: Vec<char> = search.chars().collect();
        let mut any_of: Vec<Vec<SearchClause>> = vec![Vec::new()];
        let mut expect_clause = true;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '"' && expect_clause {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '"')
                    .ok_or_else(|| invalid_search(search))?;
                let clause: String = chars[i + 1..i + 1 + end].iter().collect();
                any_of
                    .last_mut()
                    .ok_or_else(|| invalid_search(search))?
                    .push(SearchClause::parse(&clause, search)?);
                i += end + 2;
                expect_clause = false;
            } else if !expect_clause {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| !c.is_whitespace() && **c != '"')
                    .collect();
                match word.as_str() {
                    "OR" => any_of.push(Vec::new()),
                    "AND" => {}
                    _ => return Err(invalid_search(search)),
                }
                i += word.chars().count();
                expect_clause = true;
            } else {
                // Graph wants the whole clause in double quotes.
                return Err(invalid_search(search));
            }
        }
        if expect_clause {
            return Err(invalid_search(search));
        }
        Ok(Search { any_of })
    }

    pub fn matches(&self, user: &Map<String, Value>) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|clause| clause.matches(user)))
    }
}

impl SearchClause {
    fn parse(clause: &str, search: &str) -> Result<SearchClause, GraphError> {
        let (name, text) = clause
            .split_once(':')
            .ok_or_else(|| invalid_search(search))?;
        let property = user::lookup(name.trim()).ok_or_else(|| invalid_search(search))?;
        if !property.searchable {
            return Err(GraphError::unsupported_query(format!(
                "Search is not supported on property '{}'.",
                property.name
            )));
        }
        Ok(SearchClause {
            property,
            tokens: search_tokens(text),
            text: text.trim().to_lowercase(),
        })
    }

    /// Every token of the text starts some token of the value (or the whole value starts
    /// with the text).
    fn matches(&self, user: &Map<String, Value>) -> bool {
        let Some(value) = text_of(user, self.property) else {
            return false;
        };
        if value.to_lowercase().starts_with(&self.text) {
            return true;
        }
        let value_tokens = search_tokens(value);
        !self.tokens.is_empty()
            && self
                .tokens
                .iter()
                .all(|t| value_tokens.iter().any(|v| v.starts_with(t.as_str())))
    }
}

/// Tokenisation as directory search does it: split at anything not a letter or digit and at
/// lower-to-upper case changes (`AdeleVance` → `adele`, `vance`); lowercase.
pub(crate) fn search_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(display: &str, upn: &str, sam: Option<&str>) -> Map<String, Value> {
        match json!({
            "id": "4782e723-f4f4-4af3-a76e-25e3bab0d896",
            "displayName": display,
            "userPrincipalName": upn,
            "mail": upn,
            "accountEnabled": true,
            "onPremisesSamAccountName": sam,
        }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn eq_startswith_or_and_parentheses() {
        let adele = user("Adele Vance", "AdeleV@contoso.test", None);
        let alex = user("Alex Wilber", "alexw@contoso.test", Some("alexw"));
        let f = Filter::parse("userPrincipalName eq 'adelev@CONTOSO.test'").unwrap();
        assert!(f.matches(&adele) && !f.matches(&alex));
        let f = Filter::parse("startswith(displayName,'al') or startsWith(mail, 'ADE')").unwrap();
        assert!(f.matches(&adele) && f.matches(&alex));
        let f = Filter::parse("(startswith(displayName,'a') and accountEnabled eq true) and not (displayName eq 'Alex Wilber')")
            .unwrap();
        assert!(f.matches(&adele) && !f.matches(&alex));
        let f = Filter::parse("displayName in ('x', 'alex wilber')").unwrap();
        assert!(!f.matches(&adele) && f.matches(&alex));
    }

    #[test]
    fn string_literals_escape_quotes() {
        let obrien = user("Pat O'Brien", "pat@contoso.test", None);
        let f = Filter::parse("displayName eq 'Pat O''Brien'").unwrap();
        assert!(f.matches(&obrien));
    }

    #[test]
    fn what_needs_advanced_queries() {
        let f = Filter::parse("onPremisesSamAccountName eq 'alexw'").unwrap();
        assert_eq!(f.needs_advanced(), Some("onPremisesSamAccountName"));
        assert_eq!(
            Filter::parse("displayName eq 'x'")
                .unwrap()
                .needs_advanced(),
            None
        );
        assert_eq!(
            Filter::parse("endswith(mail,'@contoso.test')")
                .unwrap()
                .needs_advanced(),
            Some("mail")
        );
        assert_eq!(
            Filter::parse("displayName ne 'x'")
                .unwrap()
                .needs_advanced(),
            Some("displayName")
        );
    }

    #[test]
    fn bad_filters_are_refused_as_graph_refuses_them() {
        for (filter, code) in [
            ("displayName eq", "BadRequest"),
            ("displayName eq 'x", "BadRequest"),
            ("displayName eq 'x' or", "BadRequest"),
            ("(displayName eq 'x'", "BadRequest"),
            ("displayName eq 'x')", "BadRequest"),
            ("displayName = 'x'", "BadRequest"),
            ("nosuch eq 'x'", "BadRequest"),
            ("accountEnabled eq 'yes'", "BadRequest"),
            (
                "lastPasswordChangeDateTime eq 'x'",
                "Request_UnsupportedQuery",
            ),
            ("contains(displayName,'x')", "Request_UnsupportedQuery"),
            ("", "BadRequest"),
        ] {
            let error = Filter::parse(filter).expect_err(filter);
            assert_eq!(error.code(), code, "{filter}");
        }
    }

    #[test]
    fn search_is_a_tokenised_prefix_match() {
        let adele = user("Adele Vance", "AdeleV@contoso.test", None);
        let s = Search::parse("\"displayName:van\"").unwrap();
        assert!(s.matches(&adele));
        let s = Search::parse("\"displayName:wil\" OR \"displayName:ade\"").unwrap();
        assert!(s.matches(&adele));
        let s = Search::parse("\"displayName:ade\" AND \"mail:alex\"").unwrap();
        assert!(!s.matches(&adele));
        assert!(Search::parse("displayName:ade").is_err());
        assert!(Search::parse("\"displayName:ade\" OR").is_err());
        assert_eq!(
            search_tokens("AdeleVance o'hara"),
            ["adele", "vance", "o", "hara"]
        );
    }

    #[test]
    fn options_parse_and_check() {
        let q = ListQuery::parse(Some("$select=displayName,ID&$top=5&$count=true")).unwrap();
        assert_eq!(q.top, 5);
        assert_eq!(
            q.select.unwrap().iter().map(|p| p.name).collect::<Vec<_>>(),
            ["displayName", "id"]
        );
        assert!(ListQuery::parse(Some("$top=1000")).is_err());
        assert!(ListQuery::parse(Some("$top=x")).is_err());
        assert!(ListQuery::parse(Some("$select=nosuch")).is_err());
        assert!(ListQuery::parse(Some("$top=1&$top=2")).is_err());
        let q = ListQuery::parse(Some("$skiptoken=".to_string().as_str())).map(|q| q.offset);
        assert!(q.is_err());
        let token = encode_skip_token(42);
        let q = ListQuery::parse(Some(&format!("$top=2&$skiptoken={token}"))).unwrap();
        assert_eq!(q.offset, 42);
        assert_eq!(q.carried, [("$top".to_string(), "2".to_string())]);
        let q = ListQuery::parse(Some("$search=%22displayName:a%22")).unwrap();
        assert!(q.check_advanced(false).is_err());
        assert!(q.check_advanced(true).is_ok());
        let q = ListQuery::parse(Some("$filter=onPremisesSamAccountName eq 'a'")).unwrap();
        assert!(q.check_advanced(true).is_err());
        let q =
            ListQuery::parse(Some("$filter=onPremisesSamAccountName eq 'a'&$count=true")).unwrap();
        assert!(q.check_advanced(false).is_err());
        assert!(q.check_advanced(true).is_ok());
    }
}
