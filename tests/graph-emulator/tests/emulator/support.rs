//! What every test needs: an emulator, an HTTP client, a token, and requests that return the
//! status, headers and JSON body.

use latchkey_graph_emulator::{EmulatorOptions, GRAPH_SCOPE, GraphEmulator};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// `error.code` of a Graph error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// `error.message` of a Graph error body.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn emulator() -> GraphEmulator {
    GraphEmulator::start(EmulatorOptions::default()).await
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// A token request with these form fields.
pub async fn token_request(graph: &GraphEmulator, tenant: &str, form: &[(&str, &str)]) -> Answer {
    let response = http()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", graph.url()))
        .form(form)
        .send()
        .await
        .expect("token request");
    answer(response).await
}

/// A token for the registered application (with its permissions as they are now).
pub async fn token(graph: &GraphEmulator) -> String {
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let answer = token_request(
        graph,
        &graph.tenant_id(),
        &[
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", GRAPH_SCOPE),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// GET `path_and_query` (after the base URL, e.g. `/v1.0/users?$top=1`) with `token`.
pub async fn get(graph: &GraphEmulator, token: &str, path_and_query: &str) -> Answer {
    get_url(&format!("{}{path_and_query}", graph.url()), token, &[]).await
}

/// GET an absolute URL with `token` and extra headers.
pub async fn get_url(url: &str, token: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = http().get(url).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.send().await.expect("GET")).await
}

/// GET with `ConsistencyLevel: eventual`.
pub async fn get_eventual(graph: &GraphEmulator, token: &str, path_and_query: &str) -> Answer {
    get_url(
        &format!("{}{path_and_query}", graph.url()),
        token,
        &[("ConsistencyLevel", "eventual")],
    )
    .await
}

/// PATCH `/v1.0/users/{key}` with a JSON body.
pub async fn patch_user(graph: &GraphEmulator, token: &str, key: &str, body: &Value) -> Answer {
    let response = http()
        .patch(format!("{}/v1.0/users/{key}", graph.url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("PATCH");
    answer(response).await
}

/// The `value` array's members' `key` values.
pub fn values_of<'a>(body: &'a Value, key: &str) -> Vec<&'a str> {
    body["value"]
        .as_array()
        .expect("a value array")
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default())
        .collect()
}
