//! The Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client credentials) and the
//! validation of the bearer tokens it issues.
//!
//! Tokens are random opaque strings remembered with their expiry and the application's
//! permissions at issue time. Errors are Entra's, AADSTS numbers included. The client secret
//! is compared here and never logged or echoed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use crate::errors::{TokenError, token_endpoint_headers};
use crate::request_log::FormFields;
use crate::state::{IssuedToken, Shared, Tenant};

/// The scopes that mean "Microsoft Graph, with the application's permissions".
const GRAPH_DEFAULT_SCOPES: &[&str] = &[
    "https://graph.microsoft.com/.default",
    "00000003-0000-0000-c000-000000000000/.default",
];

/// What a valid token lets a Graph request do.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub permissions: BTreeSet<String>,
}

/// `/{tenant}/oauth2/v2.0/token`.
pub(crate) async fn endpoint(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Extension(form_fields): Extension<FormFields>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form_fields.set(form.iter().map(|(k, _)| k.clone()).collect());
    let mut state = shared.tenant();
    state.token_requests += 1;
    match issue(&mut state, &tenant, &method, &headers, &form) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn issue(
    state: &mut Tenant,
    tenant: &str,
    method: &Method,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Response, TokenError> {
    if state.token_endpoint_down {
        return Err(TokenError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            90033,
            "A transient error has occurred. Please try again.",
        ));
    }
    if !tenant.eq_ignore_ascii_case(state.tenant_id())
        && !tenant.eq_ignore_ascii_case(&state.organization.domain)
    {
        return Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud. Check with your subscription \
                 administrator, this may happen if there are no active subscriptions for the \
                 tenant."
            ),
        ));
    }
    if method != Method::POST {
        return Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900561,
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {method} request."
            ),
        ));
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let grant_type = field("grant_type").ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let basic = basic_credentials(headers);
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| missing("client_id"))?;
    if !client_id.eq_ignore_ascii_case(&state.app.client_id) {
        return Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. \
                 This can happen if the application has not been installed by the administrator \
                 of the tenant or consented to by any user in the tenant. You may have sent your \
                 authentication request to the wrong tenant.",
                state.organization.display_name
            ),
        ));
    }
    let secret = field("client_secret")
        .map(str::to_string)
        .or_else(|| basic.map(|(_, secret)| secret))
        .ok_or_else(|| {
            TokenError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            )
        })?;
    if secret != state.app.client_secret {
        return Err(TokenError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is \
                 the client secret value, not the client secret ID, for a secret added to app \
                 '{}'.",
                state.app.client_id
            ),
        ));
    }
    let scope = field("scope").ok_or_else(|| missing("scope"))?;
    if !GRAPH_DEFAULT_SCOPES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scope.trim()))
    {
        return Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope \
                 {scope} is not valid."
            ),
        ));
    }

    let now = SystemTime::now();
    state
        .tokens
        .retain(|_, t| t.expires_at + Duration::from_secs(3600) > now);
    let access_token = random_token();
    let lifetime = state.token_lifetime;
    state.tokens.insert(
        access_token.clone(),
        IssuedToken {
            expires_at: now + lifetime,
            permissions: state.app.permissions.clone(),
        },
    );
    state.tokens_issued += 1;
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access_token,
    });
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    token_endpoint_headers(&mut response, &uuid::Uuid::new_v4().to_string());
    Ok(response)
}

/// AADSTS900144: a required form field is missing.
fn missing(name: &str) -> TokenError {
    TokenError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// `client_secret_basic`: the client id and secret from `Authorization: Basic …`, each
/// form-urlencoded as RFC 6749 2.3.1 says.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// An opaque access token (not a JWT: clients must not read Graph's tokens).
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a Graph request's `Authorization: Bearer …`.
pub(crate) fn authenticate(
    state: &Tenant,
    headers: &HeaderMap,
) -> Result<Grant, crate::errors::GraphError> {
    use crate::errors::GraphError;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| GraphError::invalid_token("Access token is empty."))?;
    let issued = state.tokens.get(token).ok_or_else(|| {
        GraphError::invalid_token("Access token validation failure. Invalid audience.")
    })?;
    if issued.expires_at <= SystemTime::now() {
        return Err(GraphError::invalid_token(
            "Access token has expired or is not yet valid.",
        ));
    }
    Ok(Grant {
        permissions: issued.permissions.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Ac~ret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("my id".to_string(), "s:c~ret".to_string()))
        );
    }

    #[test]
    fn a_missing_field_is_aadsts900144() {
        assert_eq!(missing("scope").aadsts(), 900144);
    }
}
