//! The token endpoint and bearer-token checks.

use std::time::Duration;

use latchkey_graph_emulator::{GRAPH_SCOPE, permission};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{emulator, get, get_url, token, token_request};

fn form<'a>(id: &'a str, secret: &'a str, scope: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("client_id", id),
        ("client_secret", secret),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ]
}

/// Entra's error shape: `error`, an AADSTS description with trace lines, `error_codes`, ids.
fn assert_entra_error(body: &Value, error: &str, aadsts: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([aadsts]), "{body}");
    let description = body["error_description"]
        .as_str()
        .expect("error_description");
    assert!(
        description.starts_with(&format!("AADSTS{aadsts}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    for key in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
}

#[tokio::test]
async fn client_credentials_get_a_bearer_token_and_requests_are_counted() {
    let graph = emulator().await;
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let answer = token_request(&graph, &graph.tenant_id(), &form(&id, &secret, GRAPH_SCOPE)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3599);
    assert_eq!(answer.body["ext_expires_in"], 3599);
    assert!(
        answer.body["access_token"]
            .as_str()
            .is_some_and(|t| t.len() > 20)
    );
    assert_eq!(graph.token_requests(), 1);
    assert_eq!(graph.tokens_issued(), 1);

    // The tenant's domain works in place of its id.
    let answer = token_request(
        &graph,
        "latchkeytest.onmicrosoft.com",
        &form(&id, &secret, GRAPH_SCOPE),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(graph.token_requests(), 2);

    // The log has the form's field names, never its values.
    let log = graph.requests();
    let record = log.iter().find(|r| r.is_token_request()).expect("logged");
    assert_eq!(record.method, "POST");
    assert_eq!(
        record.form_fields,
        ["client_id", "client_secret", "scope", "grant_type"]
    );
    assert!(!format!("{log:?}").contains(&secret));
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client_7000215() {
    let graph = emulator().await;
    let id = graph.client_id();
    let answer = token_request(
        &graph,
        &graph.tenant_id(),
        &form(&id, "not-the-secret", GRAPH_SCOPE),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_entra_error(&answer.body, "invalid_client", 7000215);
    let description = answer.body["error_description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains(&format!("for a secret added to app '{id}'")),
        "{description}"
    );
    assert_eq!(graph.token_requests(), 1);
    assert_eq!(graph.tokens_issued(), 0);
}

#[tokio::test]
async fn unknown_tenant_client_and_scope_are_refused_as_entra_does() {
    let graph = emulator().await;
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let other = "0b5cf2a4-0000-4000-8000-000000000000";

    let answer = token_request(&graph, other, &form(&id, &secret, GRAPH_SCOPE)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_entra_error(&answer.body, "invalid_request", 90002);

    let answer = token_request(
        &graph,
        &graph.tenant_id(),
        &form(other, &secret, GRAPH_SCOPE),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_entra_error(&answer.body, "unauthorized_client", 700016);

    let answer = token_request(
        &graph,
        &graph.tenant_id(),
        &form(&id, &secret, "https://graph.microsoft.com/User.Read.All"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_entra_error(&answer.body, "invalid_scope", 70011);

    let answer = token_request(&graph, &graph.tenant_id(), &[("client_id", id.as_str())]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_entra_error(&answer.body, "invalid_request", 900144);
    assert_eq!(graph.tokens_issued(), 0);
}

#[tokio::test]
async fn client_secret_basic_is_accepted() {
    let graph = emulator().await;
    let answer = reqwest::Client::new()
        .post(graph.token_url())
        .basic_auth(graph.client_id(), Some(graph.client_secret()))
        .form(&[("scope", GRAPH_SCOPE), ("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn graph_wants_a_valid_unexpired_bearer_token() {
    let graph = emulator().await;
    // None at all.
    let answer = reqwest::Client::new()
        .get(format!("{}/v1.0/users", graph.url()))
        .header("client-request-id", "5f1e6b4e-1111-4222-8333-944455556666")
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let request_id = answer.headers()["request-id"].to_str().unwrap().to_string();
    assert_eq!(
        answer.headers()["client-request-id"],
        "5f1e6b4e-1111-4222-8333-944455556666"
    );
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "5f1e6b4e-1111-4222-8333-944455556666"
    );
    let date = body["error"]["innerError"]["date"].as_str().expect("date");
    assert_eq!(date.len(), "2026-11-30T10:00:00".len(), "{date}");

    // Not one of ours.
    let answer = get(&graph, "made-up", "/v1.0/users").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "InvalidAuthenticationToken");
    assert_eq!(
        answer.message(),
        "Access token validation failure. Invalid audience."
    );

    // Expired.
    let bearer = token(&graph).await;
    assert_eq!(
        get(&graph, &bearer, "/v1.0/users").await.status,
        StatusCode::OK
    );
    graph.expire_tokens();
    let answer = get(&graph, &bearer, "/v1.0/users").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.message(),
        "Access token has expired or is not yet valid."
    );
    assert!(answer.header("www-authenticate").is_some());
}

#[tokio::test]
async fn short_lived_tokens_expire_and_tokens_keep_their_permissions() {
    let graph = emulator().await;
    graph.set_token_lifetime(Duration::from_secs(1));
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let answer = token_request(&graph, &graph.tenant_id(), &form(&id, &secret, GRAPH_SCOPE)).await;
    assert_eq!(answer.body["expires_in"], 1);
    let short = answer.body["access_token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        get(&graph, &short, "/v1.0/users").await.status,
        StatusCode::UNAUTHORIZED
    );

    graph.set_token_lifetime(Duration::from_secs(3599));
    let before = token(&graph).await;
    graph.set_app_permissions(&[permission::ORGANIZATION_READ_ALL]);
    let after = token(&graph).await;
    assert_eq!(
        get(&graph, &before, "/v1.0/users").await.status,
        StatusCode::OK
    );
    let answer = get(&graph, &after, "/v1.0/users").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "Authorization_RequestDenied");
}

#[tokio::test]
async fn the_token_endpoint_can_be_down() {
    let graph = emulator().await;
    graph.set_token_endpoint_down(true);
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let answer = token_request(&graph, &graph.tenant_id(), &form(&id, &secret, GRAPH_SCOPE)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["error"], "temporarily_unavailable");
    graph.set_token_endpoint_down(false);
    token(&graph).await;
    assert_eq!(graph.token_requests(), 2);
    // Graph's own answers carry ids even when a request needs no token to fail.
    let answer = get_url(&format!("{}/v2.0/users", graph.url()), "x", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.header("request-id").is_some());
}
