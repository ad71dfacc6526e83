//! Injected throttling and server errors, and the request log.

use latchkey_graph_emulator::GraphEmulator;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{emulator, get, patch_user, token};

async fn seeded() -> (GraphEmulator, String, String) {
    let graph = emulator().await;
    let user = graph.add_cloud_user("adelev@contoso.test", "Adele Vance");
    let bearer = token(&graph).await;
    (graph, bearer, user.id)
}

#[tokio::test]
async fn throttled_requests_answer_429_with_retry_after_and_have_no_effect() {
    let (graph, bearer, id) = seeded().await;
    graph.throttle_next(2, 7);
    let reset = json!({"passwordProfile": {"password": "Qx7-a1b2c3-Zk9", "forceChangePasswordNextSignIn": false}});
    for _ in 0..2 {
        let answer = patch_user(&graph, &bearer, &id, &reset).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.header("retry-after"), Some("7"));
        assert_eq!(answer.code(), "TooManyRequests");
        assert!(answer.header("request-id").is_some());
    }
    assert_eq!(graph.user(&id).unwrap().password_resets, 0);
    let answer = patch_user(&graph, &bearer, &id, &reset).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(graph.user(&id).unwrap().password_resets, 1);
}

#[tokio::test]
async fn injected_server_errors_come_in_order() {
    let (graph, bearer, _) = seeded().await;
    graph.fail_next(1, 503);
    graph.fail_next_with_retry_after(1, 504, Some(3));
    let answer = get(&graph, &bearer, "/v1.0/users").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.code(), "serviceNotAvailable");
    let answer = get(&graph, &bearer, "/v1.0/users").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.header("retry-after"), Some("3"));
    assert_eq!(
        get(&graph, &bearer, "/v1.0/users").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_request_log_has_methods_paths_and_queries_but_no_secrets() {
    let (graph, bearer, id) = seeded().await;
    let password = "Qx7-d4e5f6-Zk9";
    get(&graph, &bearer, "/v1.0/users?$select=id&$top=5").await;
    patch_user(
        &graph,
        &bearer,
        &id,
        &json!({"passwordProfile": {"password": password}}),
    )
    .await;
    let log = graph.requests();
    assert_eq!(log.len(), 3);
    assert!(log[0].is_token_request());
    assert_eq!(log[1].method, "GET");
    assert_eq!(log[1].path, "/v1.0/users");
    assert_eq!(log[1].query.as_deref(), Some("$select=id&$top=5"));
    assert_eq!(log[1].status, 200);
    assert!(log[1].header_names.iter().any(|h| h == "authorization"));
    assert_eq!(log[2].method, "PATCH");
    assert_eq!(log[2].path, format!("/v1.0/users/{id}"));
    assert_eq!(log[2].status, 204);
    let text = format!("{log:?}");
    for secret in [password, bearer.as_str(), graph.client_secret().as_str()] {
        assert!(!text.contains(secret));
    }
    graph.clear_requests();
    assert!(graph.requests().is_empty());
}
