//! fuzzing: the entry points shared by the cargo-fuzz targets (`host/fuzz`) and the corpus
//! regression test (`tests/fuzz_corpus.rs`), so both run exactly the same code on hostile
//! input: a plugin's manifest, what a plugin hands back, and an HTTP request. Not part of the
//! API (hidden from the docs) and never called by the server.
//!
//! Each function takes arbitrary bytes and asserts what must hold for every input: no panic,
//! nothing over a documented cap let through, no 500, problem+json on every API error. It
//! always compiles (no feature): the corpus then replays on every plain `cargo test`, and its
//! one extra dependency, `arbitrary`, is already in the server's build through Cranelift. It
//! must never touch anything but a temporary directory of its own.

use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;

use crate::runtime::Manifest;
use crate::runtime::wit::types::{
    Account, AccountPage, CharClass, Check, CheckStatus, Complexity, ConnectorError, ErrorInfo,
    PasswordPolicy, Report, SetOutcome, SetStatus, Step, StepOutcome, Violation,
};
use crate::runtime::{CallError, validate};
use crate::workflow::{describe, generator, policy};

/// The manifest parser on arbitrary text: whatever it accepts has a valid id and survives a
/// round trip through TOML unchanged.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text) else {
        return;
    };
    assert!(!manifest.id.is_empty() && manifest.id.len() <= 64);
    assert!(!manifest.id.starts_with('-'));
    assert!(
        manifest
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    );
    let _ = manifest.requested().to_string();
    let again = toml::to_string(&manifest).expect("a parsed manifest serialises");
    let back = Manifest::parse(&again).expect("a re-serialised manifest parses");
    assert_eq!(
        serde_json::to_value(&manifest).expect("json"),
        serde_json::to_value(&back).expect("json"),
        "the manifest changed in a round trip through TOML"
    );
}

/// Plugin answers built from arbitrary data (oversize strings and lists, control characters,
/// extreme numbers) through the host's size checks and then everything that turns an accepted
/// answer into JSON, a merged policy or a generated password.
pub fn plugin_output(data: &[u8]) {
    BUDGET.set(PLUGIN_OUTPUT_BYTES);
    let mut u = Unstructured::new(data);
    // Several answers per input: the fuzzer reaches the conversions after the checks.
    for _ in 0..4 {
        if u.is_empty() {
            return;
        }
        let Ok(choice) = u.int_in_range(0u8..=6) else {
            return;
        };
        let done = match choice {
            0 => page(&mut u),
            1 => policies(&mut u),
            2 => violations(&mut u),
            3 => connector_error(&mut u),
            4 => outcome(&mut u),
            5 => report(&mut u),
            _ => stored_account(&mut u),
        };
        if done.is_err() {
            return;
        }
    }
}

type Gen<T> = arbitrary::Result<T>;

/// The most bytes of strings one input's answers may hold: a plugin's answer is built in its
/// linear memory, capped at 64 MiB (`Limits::default`), so nothing larger ever reaches the
/// host. Without it, one account of 1 MiB strings cloned 4,100 times asked for 20 GiB and
/// stopped the fuzzer at its memory limit before the host's checks ran.
const PLUGIN_OUTPUT_BYTES: usize = 64 << 20;

thread_local! {
    /// What is left of [`PLUGIN_OUTPUT_BYTES`] for the input being built.
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(PLUGIN_OUTPUT_BYTES) };
}

/// Takes up to `wanted` bytes from the input's budget; what it may use.
fn spend(wanted: usize) -> usize {
    BUDGET.with(|budget| {
        let granted = wanted.min(budget.get());
        budget.set(budget.get() - granted);
        granted
    })
}

/// A string up to a few times over the largest cap: arbitrary text (any Unicode, control
/// characters included) repeated a chosen number of times, so a short input can make a long
/// string.
fn text(u: &mut Unstructured<'_>) -> Gen<String> {
    let base = <&str>::arbitrary(u)?;
    let times = if base.is_empty() {
        0
    } else {
        match u.int_in_range(0u8..=3)? {
            0 => 1,
            1 => u.int_in_range(1usize..=8)?,
            // Around the caps: 64, 256, 512, 1024, 2048, 4096 bytes, and the schema's 256 KiB.
            2 => {
                let cap = *u.choose(&[64usize, 256, 512, 1024, 2048, 4096, 256 * 1024])?;
                (cap / base.len()).max(1) + u.int_in_range(0usize..=1)?
            }
            _ => u.int_in_range(1usize..=(1 << 20) / base.len().max(1))?,
        }
    };
    let times = spend(base.len().saturating_mul(times)) / base.len().max(1);
    Ok(base.repeat(times))
}

fn opt_text(u: &mut Unstructured<'_>) -> Gen<Option<String>> {
    Ok(if bool::arbitrary(u)? {
        Some(text(u)?)
    } else {
        None
    })
}

/// A list of `item`s: a few generated, or one generated and cloned up to ~4× the list caps.
fn list<T: Clone>(
    u: &mut Unstructured<'_>,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Gen<T>,
) -> Gen<Vec<T>> {
    if bool::arbitrary(u)? {
        let mut out = Vec::new();
        u.arbitrary_loop(None, Some(8), |u| {
            out.push(item(u)?);
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        Ok(out)
    } else {
        let before = BUDGET.get();
        let one = item(u)?;
        let each = (before - BUDGET.get()).max(1);
        let n = u.int_in_range(0usize..=4100)?;
        let n = spend(each.saturating_mul(n)) / each;
        Ok(vec![one; n])
    }
}

fn account(u: &mut Unstructured<'_>) -> Gen<Account> {
    Ok(Account {
        id: text(u)?,
        username: text(u)?,
        principal_name: opt_text(u)?,
        display_name: opt_text(u)?,
        email: opt_text(u)?,
        location: opt_text(u)?,
        enabled: bool::arbitrary(u)?,
        locked_out: bool::arbitrary(u)?,
        synced_from_on_premises: bool::arbitrary(u)?,
    })
}

fn char_class(u: &mut Unstructured<'_>) -> Gen<CharClass> {
    Ok(*u.choose(&[
        CharClass::Uppercase,
        CharClass::Lowercase,
        CharClass::Digit,
        CharClass::Symbol,
        CharClass::OtherLetter,
    ])?)
}

/// A number that is often an edge: 0, 1, the type's maximum, or anything.
fn edgy_u32(u: &mut Unstructured<'_>) -> Gen<u32> {
    Ok(match u.int_in_range(0u8..=4)? {
        0 => 0,
        1 => u32::MAX,
        2 => u.int_in_range(0u32..=300)?,
        _ => u32::arbitrary(u)?,
    })
}

fn password_policy(u: &mut Unstructured<'_>) -> Gen<PasswordPolicy> {
    Ok(PasswordPolicy {
        min_length: edgy_u32(u)?,
        max_length: edgy_u32(u)?,
        complexity: if bool::arbitrary(u)? {
            Some(Complexity {
                required: u8::arbitrary(u)?,
                classes: list(u, char_class)?,
            })
        } else {
            None
        },
        allowed_symbols: opt_text(u)?,
        forbid_username: bool::arbitrary(u)?,
        forbid_display_name: bool::arbitrary(u)?,
        history_length: edgy_u32(u)?,
        min_age_seconds: u64::arbitrary(u)?,
        max_age_seconds: Option::<u64>::arbitrary(u)?,
        lockout_threshold: edgy_u32(u)?,
        source: text(u)?,
    })
}

fn violation(u: &mut Unstructured<'_>) -> Gen<Violation> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => Violation::TooShort(edgy_u32(u)?),
        1 => Violation::TooLong(edgy_u32(u)?),
        2 => Violation::NotComplex(u8::arbitrary(u)?),
        3 => Violation::ContainsAccountName,
        4 => Violation::ContainsDisplayName,
        5 => Violation::InHistory,
        6 => Violation::TooYoung(u64::arbitrary(u)?),
        7 => Violation::InvalidCharacter,
        8 => Violation::BannedWord,
        _ => Violation::RejectedByDirectory(text(u)?),
    })
}

fn error_info(u: &mut Unstructured<'_>) -> Gen<ErrorInfo> {
    Ok(ErrorInfo {
        message: text(u)?,
        directory_text: opt_text(u)?,
    })
}

fn step_outcome(u: &mut Unstructured<'_>) -> Gen<StepOutcome> {
    Ok(StepOutcome {
        step: match u.int_in_range(0u8..=4)? {
            0 => Step::SetPassword,
            1 => Step::Unlock,
            2 => Step::MustChange,
            3 => Step::HistoryHint,
            _ => Step::Other(text(u)?),
        },
        done: bool::arbitrary(u)?,
        detail: opt_text(u)?,
    })
}

fn check(u: &mut Unstructured<'_>) -> Gen<Check> {
    Ok(Check {
        name: text(u)?,
        status: *u.choose(&[CheckStatus::Ok, CheckStatus::Warning, CheckStatus::Failed])?,
        detail: text(u)?,
        advice: opt_text(u)?,
    })
}

/// A JSON value's text, which must exist and stay under `max` bytes.
fn json_under(value: &Value, max: usize) {
    let text = serde_json::to_string(value).expect("converted answers serialise");
    assert!(
        text.len() <= max,
        "{} bytes of JSON from an accepted answer",
        text.len()
    );
}

fn opt_len(value: &Option<String>) -> usize {
    value.as_ref().map_or(0, String::len)
}

/// `find-accounts`: a page is accepted only within the limit asked for and the field caps;
/// an accepted account survives the JSON it is stored as.
fn page(u: &mut Unstructured<'_>) -> Gen<()> {
    let limit = u.int_in_range(0u32..=validate::MAX_PAGE)?;
    let page = AccountPage {
        accounts: list(u, account)?,
        next_cursor: opt_text(u)?,
    };
    if validate::page(&page, limit).is_err() {
        return Ok(());
    }
    assert!(page.accounts.len() <= limit as usize);
    assert!(opt_len(&page.next_cursor) <= validate::MAX_TEXT);
    for account in &page.accounts {
        assert!(account.id.len() <= 256 && account.username.len() <= 256);
        assert!(opt_len(&account.principal_name) <= 512);
        assert!(opt_len(&account.display_name) <= 512);
        assert!(opt_len(&account.email) <= 512);
        assert!(opt_len(&account.location) <= 2048);
        let json = describe::account_to_json(account);
        // Each of the six strings at most 6 bytes of JSON per byte (\u00XX), plus the names.
        json_under(&json, 6 * (256 * 2 + 512 * 3 + 2048) + 512);
        let back = describe::account_from_json(&json).expect("an accepted account round-trips");
        assert_eq!(&back, account);
    }
    Ok(())
}

/// `get-policy`: accepted policies merge, and the merge either says why nothing fits or
/// yields a policy the generator can meet (or refuse) quickly, never one that makes it
/// allocate without bound.
fn policies(u: &mut Unstructured<'_>) -> Gen<()> {
    let mut accepted = Vec::new();
    for i in 0..u.int_in_range(1u8..=3)? {
        let policy = password_policy(u)?;
        if validate::policy(&policy).is_ok() {
            assert!(policy.source.len() <= 1024);
            assert!(opt_len(&policy.allowed_symbols) <= 1024);
            assert!(
                policy
                    .complexity
                    .as_ref()
                    .is_none_or(|c| c.classes.len() <= 5)
            );
            accepted.push(policy::ConnectorPolicy {
                connector: format!("c{i}"),
                policy,
            });
        }
    }
    let Ok(merged) = policy::merge(&accepted) else {
        return Ok(());
    };
    assert!(merged.min_length <= merged.max_length);
    let account = account(u)?;
    let length = Option::<u32>::arbitrary(u)?;
    if let Ok(password) = generator::generate(&merged, &account, length) {
        use secrecy::ExposeSecret as _;
        let password = password.expose_secret();
        assert!(password.len() <= generator::MAX_GENERATED_LENGTH as usize);
        assert!(crate::workflow::check::check(password, &account, &merged).is_empty());
    }
    Ok(())
}

/// `check-password`: at most [`validate::MAX_VIOLATIONS`], each sentence bounded.
fn violations(u: &mut Unstructured<'_>) -> Gen<()> {
    let list = list(u, violation)?;
    if validate::violations(&list).is_err() {
        return Ok(());
    }
    assert!(list.len() <= validate::MAX_VIOLATIONS);
    for v in &list {
        json_under(&describe::violation(v), 6 * validate::MAX_TEXT + 512);
    }
    Ok(())
}

/// A connector's error: checked, then the JSON the API answers and the audit's text.
fn connector_error(u: &mut Unstructured<'_>) -> Gen<()> {
    let error = if bool::arbitrary(u)? {
        ConnectorError::Policy(list(u, violation)?)
    } else {
        let info = error_info(u)?;
        match u.int_in_range(0u8..=6)? {
            0 => ConnectorError::NotFound(info),
            1 => ConnectorError::Denied(info),
            2 => ConnectorError::WrongOldPassword(info),
            3 => ConnectorError::Unavailable(info),
            4 => ConnectorError::InvalidConfig(info),
            5 => ConnectorError::Unsupported(info),
            _ => ConnectorError::Internal(info),
        }
    };
    if validate::connector_error(&error).is_err() {
        return Ok(());
    }
    let error = CallError::Connector(error);
    let (json, _) = describe::call_error(&error);
    json_under(
        &json,
        validate::MAX_VIOLATIONS * (6 * validate::MAX_TEXT + 512) + 512,
    );
    assert!(describe::directory_text(&error).is_none_or(|t| t.len() <= validate::MAX_TEXT));
    let _ = error.to_string();
    Ok(())
}

/// `set-password` / `change-password`: at most [`validate::MAX_ITEMS`] steps, each bounded.
fn outcome(u: &mut Unstructured<'_>) -> Gen<()> {
    let outcome = SetOutcome {
        status: *u.choose(&[SetStatus::Applied, SetStatus::AwaitingSync])?,
        steps: list(u, step_outcome)?,
        changed_at: Option::<i64>::arbitrary(u)?,
    };
    if validate::outcome(&outcome).is_err() {
        return Ok(());
    }
    assert!(outcome.steps.len() <= validate::MAX_ITEMS);
    json_under(
        &describe::set_outcome(&outcome),
        validate::MAX_ITEMS * 6 * (256 + validate::MAX_TEXT + 64) + 256,
    );
    Ok(())
}

/// `test-connection`: at most [`validate::MAX_ITEMS`] checks, each bounded.
fn report(u: &mut Unstructured<'_>) -> Gen<()> {
    let report = Report {
        checks: list(u, check)?,
    };
    if validate::report(&report).is_err() {
        return Ok(());
    }
    assert!(report.checks.len() <= validate::MAX_ITEMS);
    for check in &report.checks {
        assert!(check.name.len() <= 256 && check.detail.len() <= validate::MAX_TEXT);
        assert!(opt_len(&check.advice) <= validate::MAX_TEXT);
    }
    Ok(())
}

/// An account read back from the database's JSON (which an earlier, accepted answer wrote):
/// arbitrary JSON never panics the reader.
fn stored_account(u: &mut Unstructured<'_>) -> Gen<()> {
    let raw = <&[u8]>::arbitrary(u)?;
    if let Ok(value) = serde_json::from_slice::<Value>(raw) {
        let _ = describe::account_from_json(&value);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The HTTP API.

/// One server for the whole process: a SQLite file in a temporary directory, no plugins, an
/// operator, a tenant with an owner and a helpdesk admin, a current-thread runtime to drive it.
struct Api {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    tenant: String,
    operator: String,
    owner: String,
    helpdesk: String,
    _dir: tempfile::TempDir,
}

/// The fixed operator token of the fuzzing server (public: it guards a throw-away database).
const OPERATOR_TOKEN: &str = "fuzzing-operator-token-0123456789";

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        use secrecy::{ExposeSecret as _, SecretString};

        use crate::api::limiter::{AuthLimiter, LimiterSettings};
        use crate::runtime::{PluginRegistry, Runtime, RuntimeConfig, TrustStore};
        use crate::store::{MasterKey, Role, Store};

        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (router, tenant, owner, helpdesk) = runtime.block_on(async {
            let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
            let store = Store::open(&url, MasterKey::generate())
                .await
                .expect("store");
            store
                .create_operator_with_token("fuzz", &SecretString::from(OPERATOR_TOKEN))
                .await
                .expect("operator");
            let tenant = store.create_tenant("fuzz").await.expect("tenant");
            let owner = store
                .create_admin(&tenant.id, "owner", Role::Owner)
                .await
                .expect("owner");
            let helpdesk = store
                .create_admin(&tenant.id, "helpdesk", Role::Helpdesk)
                .await
                .expect("helpdesk");
            let plugins = Runtime::new(RuntimeConfig {
                max_concurrent_calls: 1,
                ..RuntimeConfig::new(dir.path().join("cache"))
            })
            .expect("plugin runtime");
            let registry = Arc::new(PluginRegistry::new(plugins, TrustStore::default()));
            let mut state = crate::api::AppState::new(store, registry);
            // Every input comes from one address: a lockout would hide every route behind 429.
            state.auth_limiter = Arc::new(AuthLimiter::new(LimiterSettings {
                max_failures: u32::MAX,
                ..LimiterSettings::default()
            }));
            (
                crate::api::app(state),
                tenant.id,
                owner.token.expose_secret().to_string(),
                helpdesk.token.expose_secret().to_string(),
            )
        });
        Api {
            runtime,
            router,
            tenant,
            operator: OPERATOR_TOKEN.to_string(),
            owner,
            helpdesk,
            _dir: dir,
        }
    })
}

/// Paths the fuzzer starts from: every API route, the console's, and the operations.
fn path_templates() -> Vec<&'static str> {
    let mut paths: Vec<&str> = crate::api::ROUTES.iter().map(|r| r.path).collect();
    paths.extend([
        "/console",
        "/console/sign-in",
        "/console/sign-out",
        "/console/tenants",
        "/console/static/{file}",
        "/console/t/{tenant}/employees",
        "/console/t/{tenant}/employees/{employee}",
        "/console/t/{tenant}/employees/{employee}/password",
        "/console/t/{tenant}/employees/{employee}/password/check",
        "/console/t/{tenant}/changes/{change}",
        "/console/t/{tenant}/changes/{change}/events",
    ]);
    paths
}

/// A path from a template, each `{param}` the fuzzing tenant or arbitrary text
/// (percent-encoded so that the URI is valid and the handler sees the raw text).
fn request_path(u: &mut Unstructured<'_>, tenant: &str) -> Gen<String> {
    if u.ratio(1u8, 8)? {
        return Ok(<&str>::arbitrary(u)?.to_string());
    }
    let template = *u.choose(&path_templates())?;
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        if rest[open..close].contains("tenant") && u.ratio(3u8, 4)? {
            out.push_str(tenant);
        } else {
            let raw = <&str>::arbitrary(u)?;
            out.extend(url::form_urlencoded::byte_serialize(raw.as_bytes()));
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    if bool::arbitrary(u)? {
        out.push('?');
        out.push_str(<&str>::arbitrary(u)?);
    }
    Ok(out)
}

/// An arbitrary request to the whole router (API and console): never a panic, never a 500,
/// 5xx only where documented (502/503 from a directory), every API error problem+json with
/// its own status.
pub fn api_request(data: &[u8]) {
    let api = api();
    let mut u = Unstructured::new(data);
    let Ok(request) = build_request(&mut u, api) else {
        return;
    };
    let Some(request) = request else { return };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let api_path = !path.starts_with("/console");
    let response = api.runtime.block_on(async {
        use tower::ServiceExt as _;
        let response = api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 16 << 20)
            .await
            .expect("a response body is readable");
        (parts, body)
    });
    let (parts, body) = response;
    let status = parts.status.as_u16();
    assert!(
        status < 500 || status == 502 || status == 503,
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if status >= 400 && api_path && method != axum::http::Method::HEAD {
        let content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(
            content_type,
            "application/problem+json",
            "{method} {path}: {status} without problem+json: {}",
            String::from_utf8_lossy(&body)
        );
        let problem: Value = serde_json::from_slice(&body).expect("problem+json is JSON");
        if status == 405 {
            assert!(
                parts.headers.contains_key(axum::http::header::ALLOW),
                "{method} {path}: 405 without Allow"
            );
        }
        assert_eq!(problem["status"], status, "{method} {path}: {problem}");
    }
}

fn build_request(
    u: &mut Unstructured<'_>,
    api: &Api,
) -> Gen<Option<axum::http::Request<axum::body::Body>>> {
    use axum::http::{HeaderName, HeaderValue, Method, Request, header};

    let method = match u.int_in_range(0u8..=7)? {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PATCH,
        3 => Method::DELETE,
        4 => Method::PUT,
        5 => Method::HEAD,
        6 => Method::OPTIONS,
        _ => match Method::from_bytes(<&str>::arbitrary(u)?.as_bytes()) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        },
    };
    let path = request_path(u, &api.tenant)?;
    let mut builder = Request::builder().method(method).uri(path);
    let auth = match u.int_in_range(0u8..=5)? {
        0 => None,
        1 => Some(format!("Bearer {}", api.operator)),
        2 => Some(format!("Bearer {}", api.owner)),
        3 => Some(format!("Bearer {}", api.helpdesk)),
        4 => Some(format!("Bearer {}", <&str>::arbitrary(u)?)),
        _ => Some(<&str>::arbitrary(u)?.to_string()),
    };
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    match u.int_in_range(0u8..=3)? {
        0 => {}
        1 => builder = builder.header(header::CONTENT_TYPE, "application/json"),
        2 => builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        _ => builder = builder.header(header::CONTENT_TYPE, <&[u8]>::arbitrary(u)?),
    }
    for _ in 0..u.int_in_range(0u8..=3)? {
        let name = *u.choose(&[
            "cookie",
            "x-csrf-token",
            "origin",
            "referer",
            "host",
            "accept",
            "content-length",
            "x-request-id",
            "last-event-id",
        ])?;
        let value = <&[u8]>::arbitrary(u)?;
        if let Ok(value) = HeaderValue::from_bytes(value) {
            builder = builder.header(HeaderName::from_static(name), value);
        }
    }
    let rest = u.len();
    let body = u.bytes(rest)?.to_vec();
    Ok(builder.body(axum::body::Body::from(body)).ok())
}
