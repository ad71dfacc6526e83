//! The workstation client API: enrolment with a one-time code, the workstation's own status,
//! the long poll for a key's deliveries, the key's acks, and a user's own password change.
//!
//! A workstation sees only its tenant's keys (another tenant's key is 404, as if it did not
//! exist) and receives nothing until an admin approves it (403). An ack is verified with
//! keyproto before anything changes; a refused ack leaves the delivery where it was.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemars::JsonSchema;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::admin::workstation_json;
use super::auth::{Body, WorkstationCaller};
use super::error::{ApiError, ApiResult};
use crate::delivery;
use crate::store::{AckOutcome, Key, NewAuditRecord, StoreError, now};

/// The longest long poll.
const MAX_WAIT: u64 = 60;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    code: String,
    name: String,
}

pub async fn enroll(
    State(state): State<AppState>,
    Body(body): Body<EnrollBody>,
) -> ApiResult<impl IntoResponse> {
    let code = SecretString::from(body.code);
    let issued = state
        .store
        .redeem_enrollment_code(&code, &body.name, now())
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(
                "the enrolment code is not valid, was used already or expired; ask an admin \
                 for a new one",
            )
        })?;
    let workstation = issued.value;
    let server_key = state
        .store
        .tenant_signing_key(&workstation.tenant_id)
        .await?
        .verifying_key();
    audit(
        &state,
        &workstation.tenant_id,
        &workstation.id,
        "workstation.enroll",
        json!({"name": workstation.name}),
    )
    .await;
    let mut value = workstation_json(&workstation);
    value["tenant"] = json!(workstation.tenant_id);
    value["token"] = json!(issued.token.expose_secret());
    value["server_key"] = json!(URL_SAFE_NO_PAD.encode(server_key.to_bytes()));
    Ok((StatusCode::CREATED, Json(value)))
}

pub async fn me(caller: WorkstationCaller) -> Json<Value> {
    let mut value = workstation_json(&caller.0);
    value["tenant"] = json!(caller.0.tenant_id);
    Json(value)
}

/// An audit record by workstation `workstation` of `tenant`.
fn record(tenant: &str, workstation: &str, action: &str, details: Value) -> NewAuditRecord {
    let key = details
        .get("key")
        .and_then(Value::as_str)
        .map(str::to_string);
    NewAuditRecord::new(
        Some(tenant),
        &format!("workstation:{workstation}"),
        action,
        key.as_deref(),
        details,
    )
}

async fn audit(state: &AppState, tenant: &str, workstation: &str, action: &str, details: Value) {
    if let Err(error) = state
        .store
        .append_audit(record(tenant, workstation, action, details), now())
        .await
    {
        tracing::error!(%error, action, "writing the audit record failed");
    }
}

/// The key named in the path (its id or its serial) in the workstation's tenant.
async fn tenant_key(state: &AppState, tenant: &str, key: &str) -> ApiResult<Key> {
    match state.store.key(tenant, key).await {
        Ok(found) => Ok(found),
        Err(StoreError::NotFound(_)) => state
            .store
            .keys(tenant, None)
            .await?
            .into_iter()
            .find(|k| k.serial == key)
            .ok_or_else(|| ApiError::not_found("key")),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct WaitQuery {
    wait: Option<u64>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    caller: WorkstationCaller,
    Path(key): Path<String>,
    Query(query): Query<WaitQuery>,
) -> ApiResult<Json<Value>> {
    let workstation = caller.require_approved()?;
    let key = tenant_key(&state, &workstation.tenant_id, &key).await?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before the look, so a release in between is not missed.
        let waiting = state.waker.register(&key.id);
        let leased = state
            .store
            .lease_deliveries_audited(
                &workstation.tenant_id,
                &key.id,
                &workstation.id,
                16,
                state.lease_seconds,
                now(),
                {
                    // Written in the lease's transaction, which may run on the store's thread.
                    let (tenant, workstation, key) = (
                        workstation.tenant_id.clone(),
                        workstation.id.clone(),
                        key.id.clone(),
                    );
                    move |leased| {
                        Some(record(
                            &tenant,
                            &workstation,
                            "delivery.lease",
                            json!({"key": key,
                                   "deliveries": leased.iter().map(|d| d.id.clone()).collect::<Vec<_>>()}),
                        ))
                    }
                },
            )
            .await?;
        if !leased.is_empty() {
            let list: Vec<Value> = leased
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id, "slot": d.slot, "sequence": d.sequence,
                        "envelope": URL_SAFE_NO_PAD.encode(d.ciphertext.as_deref().unwrap_or_default()),
                        "lease_expires_at": d.lease_expires_at, "not_after": d.not_after,
                    })
                })
                .collect();
            return Ok(Json(json!({"key": key.id, "deliveries": list})));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() || !waiting.wait(left).await {
            return Ok(Json(json!({"key": key.id, "deliveries": []})));
        }
    }
}

/// One ack, or (`acks`) several: a workstation posts what the key answered for the deliveries
/// of one pull in one request.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    delivery: Option<String>,
    /// The key's ack, base64url.
    ack: Option<String>,
    acks: Option<Vec<AckItem>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckItem {
    delivery: String,
    ack: String,
}

/// The most acks one request may carry.
const MAX_ACKS: usize = 64;

pub async fn ack(
    State(state): State<AppState>,
    caller: WorkstationCaller,
    Path(key): Path<String>,
    Body(body): Body<AckBody>,
) -> ApiResult<Json<Value>> {
    let workstation = caller.require_approved()?;
    let (items, single) = match body {
        AckBody {
            delivery: Some(delivery),
            ack: Some(ack),
            acks: None,
        } => (vec![AckItem { delivery, ack }], true),
        AckBody {
            delivery: None,
            ack: None,
            acks: Some(acks),
        } if !acks.is_empty() && acks.len() <= MAX_ACKS => (acks, false),
        AckBody {
            acks: Some(acks), ..
        } if acks.len() > MAX_ACKS => {
            return Err(ApiError::field(
                "acks",
                format!("at most {MAX_ACKS} acks per request"),
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "send {\"delivery\", \"ack\"} for one ack, or {\"acks\": [{\"delivery\", \"ack\"}, ...]}",
            ));
        }
    };
    let key = tenant_key(&state, &workstation.tenant_id, &key).await?;
    let ids: Vec<String> = items.iter().map(|i| i.delivery.clone()).collect();
    let found = state
        .store
        .deliveries_by_ids(&workstation.tenant_id, &ids)
        .await?;
    let mut accepted = Vec::new();
    let mut results: Vec<(String, Result<(), ApiError>)> = Vec::new();
    // The key's public keys are parsed once for every ack of the request.
    let verifier = delivery::AckVerifier::for_key(&key);
    for item in &items {
        let Some(delivery) = found
            .iter()
            .find(|d| d.id == item.delivery && d.key_id == key.id)
        else {
            results.push((item.delivery.clone(), Err(ApiError::not_found("delivery"))));
            continue;
        };
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(item.ack.trim_end_matches('=')) else {
            results.push((
                item.delivery.clone(),
                Err(ApiError::field("ack", "must be base64url")),
            ));
            continue;
        };
        // Verified whatever the delivery's state (the receipt outlives the ciphertext), so a
        // forged ack is refused even for a delivery that has ended.
        let verified = match &verifier {
            Ok(verifier) => verifier.verify(delivery, &bytes),
            Err(error) => Err(error.clone()),
        };
        match verified {
            Ok(()) => {
                accepted.push(delivery.id.clone());
                results.push((delivery.id.clone(), Ok(())));
            }
            Err(error) => {
                audit(
                    &state,
                    &workstation.tenant_id,
                    &workstation.id,
                    "delivery.ack.refused",
                    json!({"key": key.id, "delivery": delivery.id, "reason": error.to_string()}),
                )
                .await;
                state.metrics.ack("refused");
                results.push((
                    delivery.id.clone(),
                    Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "ack-refused",
                        "The ack was refused",
                        format!("{error}; the delivery stays {}", delivery.state),
                    )
                    .with(json!({"delivery": delivery.id, "state": delivery.state.as_str()}))),
                ));
            }
        }
    }
    // One audit record for the deliveries this request delivered (with their changes).
    // (Written in the ack's transaction, which may run on the store's thread: owned.)
    let change_of: Vec<(String, Option<String>)> = found
        .iter()
        .filter(|d| accepted.contains(&d.id))
        .map(|d| (d.id.clone(), d.change_id.clone()))
        .collect();
    let (tenant, workstation_id, key_id) = (
        workstation.tenant_id.clone(),
        workstation.id.clone(),
        key.id.clone(),
    );
    let delivered_record = move |ids: &[String]| {
        let changes: Vec<Option<String>> = ids
            .iter()
            .map(|id| {
                change_of
                    .iter()
                    .find(|(d, _)| d == id)
                    .and_then(|(_, change)| change.clone())
            })
            .collect();
        record(
            &tenant,
            &workstation_id,
            "delivery.delivered",
            json!({"key": key_id, "deliveries": ids, "changes": changes}),
        )
    };
    // Crash point (the crash matrix, `failpoints` builds only): the key stored the envelope and
    // its ack verified, nothing recorded yet.
    if !accepted.is_empty() {
        crate::workflow::recovery::crash_point("ack::after-verify");
    }
    let outcomes = state
        .store
        .ack_deliveries_audited(
            &workstation.tenant_id,
            &key.id,
            &accepted,
            delivered_record,
            now(),
        )
        .await?;
    let state_of = |id: &str| -> &'static str {
        match outcomes.iter().find(|(d, _)| d == id).map(|(_, o)| *o) {
            Some(AckOutcome::Delivered) => {
                state.metrics.ack("delivered");
                "delivered"
            }
            Some(AckOutcome::AlreadyDelivered) => "delivered",
            Some(AckOutcome::Ended(other)) => other.as_str(),
            None => "unknown",
        }
    };
    if single {
        let (id, result) = results.pop().expect("one item");
        result?;
        return Ok(Json(json!({"delivery": id, "state": state_of(&id)})));
    }
    let answers: Vec<Value> = results
        .into_iter()
        .map(|(id, result)| match result {
            Ok(()) => json!({"delivery": id, "state": state_of(&id)}),
            Err(error) => json!({"delivery": id, "error": {
                "status": error.status.as_u16(), "type": error.code, "detail": error.detail,
            }}),
        })
        .collect();
    Ok(Json(json!({"results": answers})))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    old_password: String,
    new_password: String,
}

pub async fn password_change(
    State(state): State<AppState>,
    caller: WorkstationCaller,
    Path(key): Path<String>,
    Body(body): Body<UserChangeBody>,
) -> ApiResult<impl IntoResponse> {
    let workstation = caller.require_approved()?;
    let key = tenant_key(&state, &workstation.tenant_id, &key).await?;
    let old = SecretString::from(body.old_password);
    let new = SecretString::from(body.new_password);
    if new.expose_secret().is_empty() {
        return Err(ApiError::field("new_password", "the new password is empty"));
    }
    let accepted = state
        .workflow
        .user_change(
            &workstation.tenant_id,
            &key,
            &format!("workstation:{}", workstation.id),
            old,
            new,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"change_id": accepted.change_id, "state": accepted.state.as_str()})),
    ))
}
