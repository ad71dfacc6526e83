//! Who is calling: an operator or a tenant's admin (`Caller`, from `Authorization: Bearer`),
//! or a workstation (`WorkstationCaller`). Also the JSON body extractor whose rejections are
//! problem+json.
//!
//! Tenant isolation lives here: an admin asking about another tenant gets 404, exactly as if
//! the tenant did not exist; a role that is too weak gets 403 naming the role needed. It must
//! never log a token.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use std::time::Instant;

use super::AppState;
use super::error::ApiError;
use super::limiter::client_address;
use crate::store::{Principal, PrincipalKind, Role, Workstation};

/// What a route needs of an admin's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any role (auditor and up).
    Read,
    /// helpdesk and up: check and reset passwords.
    Reset,
    /// admin and up: connectors, employees, keys, workstations.
    Manage,
    /// owner: the tenant's admins.
    Owner,
    /// An operator only.
    Operator,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Read => "auditor",
            Need::Reset => "helpdesk",
            Need::Manage => "admin",
            Need::Owner => "owner",
            Need::Operator => "operator",
        }
    }

    fn allows(self, role: Role) -> bool {
        match self {
            Need::Read => role.can_read(),
            Need::Reset => role.can_reset(),
            Need::Manage => role.can_manage(),
            Need::Owner => role == Role::Owner,
            Need::Operator => false,
        }
    }
}

fn bearer(parts: &Parts) -> Option<SecretString> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretString::from(token.trim().to_string()))
}

/// An authenticated operator or admin.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// A principal the admin console signed in (session cookie and CSRF token already checked).
/// The console calls the API in-process with this in the request's extensions; a request from
/// the network can never carry one, so it is as good as a verified bearer token.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(SignedIn(principal)) = parts.extensions.get::<SignedIn>() {
            return Ok(Caller(principal.clone()));
        }
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let client = client_address(&parts.extensions);
        state
            .auth_limiter
            .check(client, Instant::now())
            .map_err(ApiError::locked_out)?;
        match state.store.authenticate(&token).await? {
            Some(principal) => {
                state.auth_limiter.succeeded(client);
                Ok(Caller(principal))
            }
            None => {
                tracing::info!(%client, "refused a request with an unknown or revoked token");
                state.auth_limiter.failed(client, Instant::now());
                Err(ApiError::unauthorized())
            }
        }
    }
}

impl Caller {
    /// The caller's id, for the audit.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// Allows the call on `tenant_id` when the caller is an operator, or an admin of that
    /// tenant whose role allows `need`.
    pub fn require(&self, tenant_id: &str, need: Need) -> Result<(), ApiError> {
        match &self.0.kind {
            PrincipalKind::Operator => Ok(()),
            PrincipalKind::Admin {
                tenant_id: own,
                role,
            } => {
                if own != tenant_id {
                    Err(ApiError::not_found("tenant"))
                } else if need.allows(*role) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "this needs the {} role or higher; you are {}",
                        need.as_str(),
                        role.as_str()
                    )))
                }
            }
        }
    }

    /// Allows operators only.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.0.kind {
            PrincipalKind::Operator => Ok(()),
            PrincipalKind::Admin { .. } => {
                Err(ApiError::forbidden("this needs an operator's token"))
            }
        }
    }
}

/// What a route needs, as a type (for [`TenantAdmin`]).
pub trait Requirement: Send + Sync {
    const NEED: Need;
}

/// Any role.
#[derive(Debug)]
pub struct ReadRole;
/// helpdesk and up.
#[derive(Debug)]
pub struct ResetRole;
/// admin and up.
#[derive(Debug)]
pub struct ManageRole;
/// owner.
#[derive(Debug)]
pub struct OwnerRole;

impl Requirement for ReadRole {
    const NEED: Need = Need::Read;
}
impl Requirement for ResetRole {
    const NEED: Need = Need::Reset;
}
impl Requirement for ManageRole {
    const NEED: Need = Need::Manage;
}
impl Requirement for OwnerRole {
    const NEED: Need = Need::Owner;
}

/// A caller allowed on the path's `{tenant}` with role `R`: checked before the body is read, so
/// another tenant's admin learns nothing (404) whatever they send.
#[derive(Debug)]
pub struct TenantAdmin<R>(pub Caller, std::marker::PhantomData<R>);

impl<R> std::ops::Deref for TenantAdmin<R> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<R: Requirement> FromRequestParts<AppState> for TenantAdmin<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let axum::extract::Path(params) = axum::extract::Path::<
            std::collections::HashMap<String, String>,
        >::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::not_found("tenant"))?;
        let tenant = params
            .get("tenant")
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        caller.require(tenant, R::NEED)?;
        Ok(TenantAdmin(caller, std::marker::PhantomData))
    }
}

/// An operator (refused with 403 before the body is read).
#[derive(Debug)]
pub struct OperatorCaller(pub Caller);

impl FromRequestParts<AppState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_operator()?;
        Ok(OperatorCaller(caller))
    }
}

/// An authenticated workstation (enrolled or approved; revoked ones are refused with 401).
#[derive(Debug, Clone)]
pub struct WorkstationCaller(pub Workstation);

impl FromRequestParts<AppState> for WorkstationCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let client = client_address(&parts.extensions);
        state
            .auth_limiter
            .check(client, Instant::now())
            .map_err(ApiError::locked_out)?;
        match state.store.authenticate_workstation(&token).await? {
            Some(workstation) => {
                state.auth_limiter.succeeded(client);
                Ok(WorkstationCaller(workstation))
            }
            None => {
                tracing::info!(
                    %client,
                    "refused a workstation request with an unknown or revoked token"
                );
                state.auth_limiter.failed(client, Instant::now());
                Err(ApiError::forbidden(
                    "this workstation's token is not valid or the workstation was revoked; \
                     enroll again with a new enrolment code",
                ))
            }
        }
    }
}

impl WorkstationCaller {
    /// Refuses (403) unless an admin approved this workstation.
    pub fn require_approved(&self) -> Result<&Workstation, ApiError> {
        if self.0.is_approved() {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!(
                "workstation {} is {}: an admin must approve it before it receives anything",
                self.0.id, self.0.status
            )))
        }
    }
}

/// A JSON body whose rejections (malformed JSON, a missing field, the wrong content type) are
/// problem+json 400s saying what is wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection_text(&rejection))),
        }
    }
}

fn rejection_text(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with `Content-Type: application/json`".into()
        }
        other => other.body_text(),
    }
}
