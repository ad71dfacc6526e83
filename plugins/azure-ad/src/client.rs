//! The one place that calls the host's `graph` capability. The host attaches the app's token,
//! picks the cloud's Graph endpoint (or the test override), percent-encodes the path's
//! segments and the query's names and values, adds `ConsistencyLevel: eventual` to advanced
//! queries, applies timeouts and honours throttling within its budget. Here, an answer other
//! than success becomes a typed error through `errors`, and is logged at info with Graph's
//! words (which never contain a password) for the audit trail.
//!
//! Neither a request's body nor the generated types' `Debug` output is ever logged: the body of
//! a reset holds the password.

use latchkey_plugin_sdk::graph::{self, GraphError, Method, Request, Response};
use latchkey_plugin_sdk::log::{self, Level};
use latchkey_plugin_sdk::{ConnectorError, ErrorInfo};
use serde::de::DeserializeOwned;

use crate::errors::{self, Operation};

/// A request with no body.
pub fn get(path: impl Into<String>, query: &[(&str, &str)]) -> Request {
    Request {
        method: Method::Get,
        path: path.into(),
        query: query
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: None,
    }
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Patch => "PATCH",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
    }
}

/// Send a request as it is; any status is an answer. For diagnostics, which judge statuses
/// themselves.
pub fn send_raw(request: Request) -> Result<Response, GraphError> {
    let what = format!("{} {}", method_name(request.method), request.path);
    log::log(Level::Debug, &format!("Graph: {what}"));
    let answer = graph::send(&request);
    match &answer {
        Ok(response) if !(200..300).contains(&response.status) => log::log(
            Level::Info,
            &format!(
                "Graph answered {what} with {}",
                errors::directory_text(response.status, &response.headers, &response.body)
                    .unwrap_or_default()
            ),
        ),
        Ok(_) => {}
        Err(error) => log::log(
            Level::Info,
            &format!(
                "the host could not send {what}: {}",
                latchkey_plugin_sdk::error_message(&errors::from_host(error))
            ),
        ),
    }
    answer
}

/// Send a request for `operation`; a success (2xx) is the response, anything else a typed
/// error.
pub fn call(operation: Operation<'_>, request: Request) -> Result<Response, ConnectorError> {
    let response = send_raw(request).map_err(|e| errors::from_host(&e))?;
    if (200..300).contains(&response.status) {
        Ok(response)
    } else {
        Err(errors::refused(operation, &response))
    }
}

/// A successful answer's JSON body as `T`.
pub fn parse<T: DeserializeOwned>(response: &Response) -> Result<T, ConnectorError> {
    serde_json::from_str(&response.body).map_err(|e| {
        ConnectorError::Internal(ErrorInfo {
            message: format!(
                "Microsoft Graph's answer could not be read ({e}); check graph_endpoint if it \
                 is set, otherwise this is a bug in the azure-ad plugin"
            ),
            directory_text: Some(response.body.chars().take(300).collect()),
        })
    })
}

/// GET `request` for `operation` and read its JSON body as `T`.
pub fn get_json<T: DeserializeOwned>(
    operation: Operation<'_>,
    request: Request,
) -> Result<T, ConnectorError> {
    parse(&call(operation, request)?)
}
