//! `/users`: list (with `$select`, `$filter`, `$search`, `$count`, `$orderby`, `$top` and
//! `@odata.nextLink` paging), `/users/$count`, get one by id or userPrincipalName, and the PATCH
//! that resets a password.
//!
//! The PATCH follows Graph's order: parse the body, check the application's permission
//! (before looking the user up, so a PATCH of a nonexistent id answers 403 without the
//! permission and 404 with it), find the user, check the directory role, refuse on-premises
//! mastered users, check the cloud password policy, then apply and answer 204.

use std::time::SystemTime;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::app::{self, DirectoryRole};
use crate::errors::GraphError;
use crate::graph::{GraphRequest, odata_json, plain_count};
use crate::password_policy;
use crate::query::{self, ListQuery};
use crate::user::{self, PasswordProfileRecord, Property, User};

/// What the query of a link must escape (OData's `$`, `'`, `(`, `)`, `,` stay readable).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn require_read(request: &GraphRequest<'_>) -> Result<(), GraphError> {
    if app::may_read_users(&request.grant.permissions) {
        Ok(())
    } else {
        Err(GraphError::insufficient_privileges())
    }
}

fn select_fragment(select: Option<&[&'static Property]>) -> String {
    match select {
        Some(properties) => format!(
            "users({})",
            properties
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(",")
        ),
        None => "users".to_string(),
    }
}

/// The users `query` selects, ordered as it asks.
fn matching<'a>(users: &'a [User], query: &ListQuery) -> Vec<&'a User> {
    let mut matched: Vec<&User> = users
        .iter()
        .filter(|u| query.matches(&u.to_json()))
        .collect();
    for (property, descending) in query.order_by.iter().rev() {
        let key = |u: &User| match property.name {
            "displayName" => u.display_name.to_lowercase(),
            _ => u.user_principal_name.to_lowercase(),
        };
        matched.sort_by(|a, b| {
            let order = key(a).cmp(&key(b));
            if *descending { order.reverse() } else { order }
        });
    }
    matched
}

/// `GET /users`.
pub(crate) fn list(request: &GraphRequest<'_>) -> Result<Response, GraphError> {
    require_read(request)?;
    let query = ListQuery::parse(request.query)?;
    query.check_advanced(request.eventual())?;
    let tenant = request.shared.tenant();
    let matched = matching(&tenant.users, &query);
    let total = matched.len();
    let page: Vec<Value> = matched
        .iter()
        .skip(query.offset)
        .take(query.top)
        .map(|u| Value::Object(user::project(u, query.select.as_deref())))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_string(),
        json!(request.context(&select_fragment(query.select.as_deref()))),
    );
    if query.count {
        body.insert("@odata.count".to_string(), json!(total));
    }
    let next = query.offset.saturating_add(query.top);
    if next < total {
        body.insert(
            "@odata.nextLink".to_string(),
            json!(next_link(request, &query, next)),
        );
    }
    body.insert("value".to_string(), Value::Array(page));
    Ok(odata_json(&Value::Object(body)))
}

/// The absolute link to the page starting at `offset`, keeping the other options.
fn next_link(request: &GraphRequest<'_>, query: &ListQuery, offset: usize) -> String {
    let mut parts: Vec<String> = query
        .carried
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect();
    parts.push(format!("$skiptoken={}", query::encode_skip_token(offset)));
    format!(
        "{}/{}/users?{}",
        request.shared.base_url,
        request.version,
        parts.join("&")
    )
}

/// `GET /users/$count` (needs `ConsistencyLevel: eventual`).
pub(crate) fn count(request: &GraphRequest<'_>) -> Result<Response, GraphError> {
    require_read(request)?;
    if !request.eventual() {
        return Err(GraphError::unsupported_query(
            "Raw count (/$count) is not supported because the 'ConsistencyLevel:eventual' header \
             is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        ));
    }
    let mut query = ListQuery::parse(request.query)?;
    // The raw count is itself the count: the filter may use advanced capabilities.
    query.count = true;
    query.check_advanced(true)?;
    let tenant = request.shared.tenant();
    Ok(plain_count(matching(&tenant.users, &query).len()))
}

/// `GET /users/{id | userPrincipalName}`.
pub(crate) fn get(request: &GraphRequest<'_>, key: &str) -> Result<Response, GraphError> {
    require_read(request)?;
    let select = query::parse_single(request.query)?;
    let tenant = request.shared.tenant();
    let user = tenant.user(key).ok_or_else(|| GraphError::not_found(key))?;
    let mut body = user::project(user, select.as_deref());
    body.insert(
        "@odata.context".to_string(),
        json!(request.context(&format!("{}/$entity", select_fragment(select.as_deref())))),
    );
    Ok(odata_json(&Value::Object(body)))
}

// ---------------------------------------------------------------------------------------------
// PATCH

/// A PATCH body, checked for shape and types.
#[derive(Default)]
struct UserPatch {
    password_profile: Option<PasswordProfilePatch>,
    password_policies: Option<Option<String>>,
    account_enabled: Option<bool>,
    display_name: Option<String>,
    given_name: Option<Option<String>>,
    surname: Option<Option<String>>,
    mail: Option<Option<String>>,
}

struct PasswordProfilePatch {
    password: Option<String>,
    force_change: Option<bool>,
    force_change_with_mfa: Option<bool>,
}

impl UserPatch {
    /// Whether it writes anything besides the password profile (needs User.ReadWrite.All).
    fn writes_other_properties(&self) -> bool {
        self.password_policies.is_some()
            || self.account_enabled.is_some()
            || self.display_name.is_some()
            || self.given_name.is_some()
            || self.surname.is_some()
            || self.mail.is_some()
    }

    /// Whether it writes properties an on-premises sync masters (all but `passwordPolicies`).
    fn writes_on_premises_mastered(&self) -> bool {
        self.password_profile.is_some()
            || self.account_enabled.is_some()
            || self.display_name.is_some()
            || self.given_name.is_some()
            || self.surname.is_some()
            || self.mail.is_some()
    }
}

const UNREADABLE_JSON: &str = "Unable to read JSON request payload. Please ensure Content-Type \
                               header is set and payload is of valid JSON format.";

fn does_not_exist(name: &str, on_type: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Property '{name}' does not exist on type '{on_type}'. Make sure to only use property \
         names that are defined by the type or mark the type as open type."
    ))
}

fn cannot_convert(value: &Value, edm: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Cannot convert the literal '{}' to the expected type '{edm}'.",
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    ))
}

fn as_bool(value: &Value) -> Result<bool, GraphError> {
    value
        .as_bool()
        .ok_or_else(|| cannot_convert(value, "Edm.Boolean"))
}

fn as_string(value: &Value) -> Result<String, GraphError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| cannot_convert(value, "Edm.String"))
}

fn as_optional_string(value: &Value) -> Result<Option<String>, GraphError> {
    if value.is_null() {
        Ok(None)
    } else {
        as_string(value).map(Some)
    }
}

fn parse_patch(request: &GraphRequest<'_>, body: &[u8]) -> Result<UserPatch, GraphError> {
    let json_content = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_content {
        return Err(GraphError::bad_request(UNREADABLE_JSON));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(GraphError::bad_request(UNREADABLE_JSON));
    };
    let mut patch = UserPatch::default();
    for (name, value) in &fields {
        let property =
            user::lookup(name).ok_or_else(|| does_not_exist(name, "microsoft.graph.user"))?;
        if user::READ_ONLY.contains(&property.name) {
            return Err(GraphError::directory_bad_request(format!(
                "Property '{}' is read-only and cannot be set.",
                property.name
            )));
        }
        match property.name {
            "passwordProfile" => patch.password_profile = Some(parse_password_profile(value)?),
            "passwordPolicies" => {
                let policies = as_optional_string(value)?;
                check_password_policies(policies.as_deref())?;
                patch.password_policies = Some(policies);
            }
            "accountEnabled" => patch.account_enabled = Some(as_bool(value)?),
            "displayName" => patch.display_name = Some(as_string(value)?),
            "givenName" => patch.given_name = Some(as_optional_string(value)?),
            "surname" => patch.surname = Some(as_optional_string(value)?),
            "mail" => patch.mail = Some(as_optional_string(value)?),
            other => {
                return Err(GraphError::bad_request(format!(
                    "The Latchkey Graph emulator does not model updates of '{other}'."
                )));
            }
        }
    }
    Ok(patch)
}

fn parse_password_profile(value: &Value) -> Result<PasswordProfilePatch, GraphError> {
    let Value::Object(members) = value else {
        return Err(cannot_convert(value, "microsoft.graph.passwordProfile"));
    };
    let mut profile = PasswordProfilePatch {
        password: None,
        force_change: None,
        force_change_with_mfa: None,
    };
    for (name, value) in members {
        match name.to_ascii_lowercase().as_str() {
            "password" => profile.password = as_optional_string(value)?,
            "forcechangepasswordnextsignin" => profile.force_change = Some(as_bool(value)?),
            "forcechangepasswordnextsigninwithmfa" => {
                profile.force_change_with_mfa = Some(as_bool(value)?);
            }
            _ => return Err(does_not_exist(name, "microsoft.graph.passwordProfile")),
        }
    }
    Ok(profile)
}

/// `passwordPolicies`: `DisableStrongPassword`, `DisablePasswordExpiration`, both
/// comma-separated, `None`, or null.
fn check_password_policies(policies: Option<&str>) -> Result<(), GraphError> {
    let valid = policies.is_none_or(|p| {
        p.split(',').map(str::trim).all(|item| {
            ["DisableStrongPassword", "DisablePasswordExpiration", "None"]
                .iter()
                .any(|known| known.eq_ignore_ascii_case(item))
        })
    });
    if valid {
        Ok(())
    } else {
        Err(GraphError::directory_bad_request(
            "Invalid value specified for property 'passwordPolicies' of resource 'User'.",
        ))
    }
}

/// `PATCH /users/{id | userPrincipalName}`.
pub(crate) fn patch(
    request: &GraphRequest<'_>,
    key: &str,
    body: &[u8],
) -> Result<Response, GraphError> {
    let patch = parse_patch(request, body)?;
    let permissions = &request.grant.permissions;
    let may_write = app::may_reset_passwords(permissions) || app::may_write_users(permissions);
    if !may_write || (patch.writes_other_properties() && !app::may_write_users(permissions)) {
        return Err(GraphError::insufficient_privileges());
    }
    let mut tenant = request.shared.tenant();
    let roles = tenant.app.directory_roles.clone();
    let banned = tenant.banned_passwords.clone();
    let user = tenant
        .user_mut(key)
        .ok_or_else(|| GraphError::not_found(key))?;
    if let Some(profile) = &patch.password_profile {
        let role_suffices = if user.privileged {
            roles.contains(&DirectoryRole::PrivilegedAuthenticationAdministrator)
        } else {
            !roles.is_empty()
        };
        if profile.password.is_some() && !role_suffices {
            return Err(GraphError::insufficient_privileges());
        }
    }
    if user.is_synced() && patch.writes_on_premises_mastered() {
        return Err(GraphError::directory_bad_request(
            "Unable to update the specified properties for on-premises mastered Directory Sync \
             objects or objects currently undergoing migration.",
        ));
    }
    let strong_disabled = match &patch.password_policies {
        Some(policies) => policies
            .as_deref()
            .is_some_and(|p| p.to_ascii_lowercase().contains("disablestrongpassword")),
        None => user.strong_password_disabled(),
    };
    if let Some(password) = patch
        .password_profile
        .as_ref()
        .and_then(|p| p.password.as_deref())
        && password_policy::check(password, strong_disabled, &banned).is_err()
    {
        return Err(GraphError::directory_bad_request(
            "The specified password does not comply with password complexity requirements. \
             Please provide a different password.",
        ));
    }
    apply(user, patch, SystemTime::now());
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn apply(user: &mut User, patch: UserPatch, now: SystemTime) {
    if let Some(policies) = patch.password_policies {
        user.password_policies = policies;
    }
    if let Some(enabled) = patch.account_enabled {
        user.account_enabled = enabled;
    }
    if let Some(name) = patch.display_name {
        user.display_name = name;
    }
    if let Some(name) = patch.given_name {
        user.given_name = name;
    }
    if let Some(name) = patch.surname {
        user.surname = name;
    }
    if let Some(mail) = patch.mail {
        user.mail = mail;
    }
    if let Some(profile) = patch.password_profile {
        if let Some(password) = &profile.password {
            user.password = Some(password.clone());
            user.last_password_change = now;
            user.password_resets += 1;
        }
        user.last_password_profile = Some(PasswordProfileRecord {
            password: profile.password,
            force_change_password_next_sign_in: profile.force_change,
            force_change_password_next_sign_in_with_mfa: profile.force_change_with_mfa,
            at: now,
        });
    }
}
