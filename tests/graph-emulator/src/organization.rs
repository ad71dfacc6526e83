//! `GET /organization` and `GET /organization/{id}`: the tenant, with whether it syncs from
//! on-premises and when that sync last ran. Any read permission will do (Graph asks for
//! Organization.Read.All or broader; the emulator is lenient here on purpose).

use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::app;
use crate::errors::GraphError;
use crate::graph::{GraphRequest, odata_json};

/// The organization's JSON as a request selects it.
struct Selected {
    /// The `$select`ed names, in Graph's spelling; `None` without `$select`.
    names: Option<Vec<String>>,
    body: Map<String, Value>,
}

pub(crate) fn list(request: &GraphRequest<'_>) -> Result<Response, GraphError> {
    let Selected { names, body } = read(request)?;
    Ok(odata_json(&json!({
        "@odata.context": request.context(&context_fragment(names.as_deref())),
        "value": [body],
    })))
}

pub(crate) fn get(request: &GraphRequest<'_>, id: &str) -> Result<Response, GraphError> {
    let Selected { names, body } = read(request)?;
    if !body
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|own| own.eq_ignore_ascii_case(id))
    {
        return Err(GraphError::not_found(id));
    }
    let mut body = body;
    body.insert(
        "@odata.context".to_string(),
        json!(request.context(&format!("{}/$entity", context_fragment(names.as_deref())))),
    );
    Ok(odata_json(&Value::Object(body)))
}

fn context_fragment(select: Option<&[String]>) -> String {
    match select {
        Some(names) => format!("organization({})", names.join(",")),
        None => "organization".to_string(),
    }
}

/// The organization's JSON, restricted to `$select` when given.
fn read(request: &GraphRequest<'_>) -> Result<Selected, GraphError> {
    if !app::may_read_organization(&request.grant.permissions) {
        return Err(GraphError::insufficient_privileges());
    }
    let all = request.shared.tenant().organization.to_json();
    let select = request.query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
            .map(|(_, v)| v.into_owned())
    });
    let Some(select) = select else {
        return Ok(Selected {
            names: None,
            body: all,
        });
    };
    let mut names = Vec::new();
    let mut out = Map::new();
    for item in select.split(',').map(str::trim) {
        let (name, value) = all
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(item))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Parsing OData Select and Expand failed: Could not find a property named \
                     '{item}' on type 'microsoft.graph.organization'."
                ))
            })?;
        names.push(name.clone());
        out.insert(name.clone(), value.clone());
    }
    Ok(Selected {
        names: Some(names),
        body: out,
    })
}
