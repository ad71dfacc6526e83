//! The host's `graph` capability against the Graph emulator (tests/graph-emulator), which
//! follows Microsoft's documented contract: the client-credentials token acquired once and
//! cached, renewed when Graph refuses it; `429`/`Retry-After` waited out within the retry
//! budget, then `throttled`; a `PATCH` never retried after a server error, a `GET` once; the
//! token endpoint's refusals as sentences naming the key to fix; paths checked and encoded;
//! advanced queries sent with `ConsistencyLevel: eventual`; nothing secret in any log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::capabilities::graph::{self, GraphApi, GraphError, Method, Request};
use latchkey::capabilities::ldap::ConnectorTags;
use latchkey::capabilities::secrets::Secrets;
use latchkey_graph_emulator::{EmulatorOptions, GraphEmulator};
use secrecy::SecretString;
use serde_json::{Value, json};

fn connection(g: &GraphEmulator, extra: Value, secret: &str) -> Arc<dyn GraphApi> {
    let mut config = json!({
        "tenant_id": g.tenant_id(), "client_id": g.client_id(),
        "graph_endpoint": g.url(), "authority": g.url(),
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let secrets: Secrets = [("client_secret", SecretString::from(secret.to_string()))]
        .into_iter()
        .collect();
    graph::connection(
        config.as_object().unwrap(),
        &secrets,
        ConnectorTags::new("graph-tests", "entra"),
    )
}

fn get(path: &str, query: &[(&str, &str)]) -> Request {
    Request {
        method: Method::Get,
        path: path.to_string(),
        query: query
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: None,
    }
}

fn patch(path: &str, body: Value) -> Request {
    Request {
        method: Method::Patch,
        path: path.to_string(),
        query: vec![],
        body: Some(body.to_string()),
    }
}

fn graph_requests(g: &GraphEmulator) -> usize {
    g.requests()
        .iter()
        .filter(|r| !r.is_token_request())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_many_calls_and_a_refused_token_is_renewed_once() {
    let g = GraphEmulator::start(EmulatorOptions::default()).await;
    let user = g.add_cloud_user("dana@latchkeytest.onmicrosoft.com", "Dana Cloud");
    let graph = connection(&g, json!({}), &g.client_secret());

    for _ in 0..5 {
        let answer = graph
            .send(get(
                &format!("/v1.0/users/{}", user.id),
                &[("$select", "id,displayName")],
            ))
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["displayName"], "Dana Cloud");
        assert!(
            answer.headers.iter().any(|(n, _)| n == "request-id"),
            "Graph's request-id reaches the plugin: {:?}",
            answer.headers
        );
    }
    assert_eq!(g.token_requests(), 1, "the token is cached");

    // Graph refuses the token (expired early, revoked): one new token, the call goes through.
    g.expire_tokens();
    let answer = graph
        .send(get("/v1.0/users", &[("$top", "1")]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(g.token_requests(), 2);

    // A guest's UPN (with `#`) is one literal path segment, encoded by the host.
    g.add_cloud_user(
        "guest_example.com#EXT#@latchkeytest.onmicrosoft.com",
        "A Guest",
    );
    let answer = graph
        .send(get(
            "/v1.0/users/guest_example.com#EXT#@latchkeytest.onmicrosoft.com",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);

    // An advanced query carries ConsistencyLevel: eventual, which Graph requires for it.
    let answer = graph
        .send(get(
            "/v1.0/users",
            &[
                ("$filter", "startswith(displayName,'Dana')"),
                ("$count", "true"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let last = g.requests().pop().unwrap();
    assert!(
        last.header_names.iter().any(|h| h == "consistencylevel"),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_within_the_budget_then_reported() {
    let g = GraphEmulator::start(EmulatorOptions::default()).await;
    let user = g.add_cloud_user("erin@latchkeytest.onmicrosoft.com", "Erin Cloud");
    let graph = connection(&g, json!({"retry_budget_seconds": 5}), &g.client_secret());
    let reset = json!({"passwordProfile": {"password": "Zq8!vwx-Plenty",
        "forceChangePasswordNextSignIn": false}});

    // Two 429s with Retry-After: 2 — the PATCH lands after both waits, exactly once.
    g.throttle_next(2, 2);
    let started = Instant::now();
    let answer = graph
        .send(patch(&format!("/v1.0/users/{}", user.id), reset.clone()))
        .await
        .unwrap();
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(g.user(&user.id).unwrap().password_resets, 1);

    // Past the budget: `throttled` with Graph's wait, nothing written.
    g.throttle_next(3, 30);
    let started = Instant::now();
    let error = graph
        .send(patch(&format!("/v1.0/users/{}", user.id), reset.clone()))
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::Throttled(30)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait beyond the budget"
    );
    assert_eq!(g.user(&user.id).unwrap().password_resets, 1);
    g.clear_faults();

    // A 503 with Retry-After is throttling too.
    g.fail_next_with_retry_after(1, 503, Some(1));
    let answer = graph
        .send(get(&format!("/v1.0/users/{}", user.id), &[]))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_never_retried_blindly_a_read_once() {
    let g = GraphEmulator::start(EmulatorOptions::default()).await;
    let user = g.add_cloud_user("finn@latchkeytest.onmicrosoft.com", "Finn Cloud");
    let graph = connection(&g, json!({}), &g.client_secret());
    let path = format!("/v1.0/users/{}", user.id);

    // A 502 to a PATCH is the plugin's answer: the write may or may not have happened.
    g.fail_next(1, 502);
    let before = graph_requests(&g);
    let answer = graph
        .send(patch(
            &path,
            json!({"passwordProfile": {"password": "Zq8!vwx-Plenty"}}),
        ))
        .await
        .unwrap();
    assert_eq!(answer.status, 502);
    assert_eq!(graph_requests(&g) - before, 1, "the PATCH was sent once");

    // A 502 to a GET is tried once more.
    g.fail_next(1, 502);
    let before = graph_requests(&g);
    let answer = graph.send(get(&path, &[])).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(graph_requests(&g) - before, 2);
    // Twice in a row: the second answer is the plugin's.
    g.fail_next(2, 504);
    let answer = graph.send(get(&path, &[])).await.unwrap();
    assert_eq!(answer.status, 504);

    // Malformed requests never leave the host.
    let before = g.requests().len();
    for bad in [
        get("/v2/users", &[]),
        get("/v1.0/users/../groups", &[]),
        get("/v1.0/users?$top=1", &[]),
        Request {
            body: Some("{not json".into()),
            ..patch(&path, json!({}))
        },
    ] {
        let error = graph.send(bad).await.unwrap_err();
        assert!(matches!(error, GraphError::InvalidRequest(_)), "{error:?}");
    }
    assert_eq!(g.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refusals_and_bad_settings_say_what_to_fix_and_never_show_the_secret() {
    let logs = latchkey_tests::logs();
    let g = GraphEmulator::start(EmulatorOptions::default()).await;
    let wrong_secret = "Wr0ng~secret-value-9f8e7d";
    let graph = connection(&g, json!({}), wrong_secret);
    let error = graph.send(get("/v1.0/users", &[])).await.unwrap_err();
    let GraphError::Token(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert!(message.contains("`client_secret`"), "{message}");
    assert!(!message.contains(wrong_secret), "{message}");

    let graph = connection(
        &g,
        json!({"client_id": "00000000-1111-2222-3333-444444444444"}),
        &g.client_secret(),
    );
    let error = graph.send(get("/v1.0/users", &[])).await.unwrap_err();
    let GraphError::Token(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("`client_id`"), "{message}");

    g.set_token_endpoint_down(true);
    let graph = connection(&g, json!({}), &g.client_secret());
    let error = graph.send(get("/v1.0/users", &[])).await.unwrap_err();
    assert!(matches!(error, GraphError::Unavailable(_)), "{error:?}");
    g.set_token_endpoint_down(false);

    // Settings that cannot work never reach the network.
    let before = g.requests().len();
    for (extra, key) in [
        (json!({"client_id": "not-a-guid"}), "`client_id`"),
        (
            json!({"graph_endpoint": "http://graph.example.net"}),
            "`graph_endpoint`",
        ),
        (json!({"cloud": "mars"}), "`cloud`"),
    ] {
        let error = connection(&g, extra, &g.client_secret())
            .send(get("/v1.0/users", &[]))
            .await
            .unwrap_err();
        let GraphError::NotConfigured(message) = &error else {
            panic!("{error:?}")
        };
        assert!(message.contains(key), "{message}");
    }
    assert_eq!(g.requests().len(), before);

    // The token endpoint saw the secret as a form field; nothing else ever carries it.
    let token_forms: Vec<_> = g
        .requests()
        .into_iter()
        .filter(|r| r.is_token_request())
        .collect();
    assert!(
        token_forms
            .iter()
            .all(|r| r.form_fields.contains(&"client_secret".to_string())),
        "{token_forms:?}"
    );
    assert!(
        g.requests().iter().all(|r| !r
            .query
            .as_deref()
            .unwrap_or("")
            .contains(&g.client_secret())),
        "no query carries the secret"
    );
    // An override is never silent.
    assert!(
        !logs.lines_with("for testing only").is_empty(),
        "using a Graph endpoint override is logged"
    );
    assert!(logs.lines_with(&g.client_secret()).is_empty());
    assert!(logs.lines_with(wrong_secret).is_empty());
}
