//! The soak (issue 10): a running `latchkey serve` under a steady load of mixed password changes,
//! workstations pulling and acknowledging the deliveries, policy checks and reads, for a fixed
//! time; measured in windows (requests, errors, latency quantiles, the server's resident set),
//! then drained and accounted for: every change made was delivered to its key and acknowledged,
//! nothing is left pending, and the server's own counters agree.
//!
//! `tests/it/soak.rs` runs two minutes of it against the debug build and asserts what a user
//! relies on; `latchkey-bench soak` runs half an hour against the release build and writes
//! docs/soak.md. The driver lives here, in the harness, because the bench depends on the
//! harness: the test could not depend on the bench without a cycle.
//!
//! The server runs as a process of its own (the harness's `Server`), so the resident set is the
//! server's alone, read from /proc/PID/status, and the driver's clients and software keys do
//! not blur it. The directory is `test-echo`, which accepts every write: what is measured is
//! Latchkey. Each employee has at most one change in flight (a new one starts only once the
//! previous one is answered and its delivery acknowledged), so no delivery is superseded and
//! "every change ends delivered" is exact. Changes start at a fixed rate whatever their latency
//! (an open loop), so a server that slows down shows it instead of being waited for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyproto::envelope::TrustAnchor;
use keyproto::identity::TenantId;
use keyproto::softkey::SoftwareKey;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::samba::rand_u32;
use crate::server::{Options, Server};

/// The load: how much of what, for how long.
#[derive(Debug, Clone)]
pub struct Load {
    /// How long changes are started (the drain and the accounting come after).
    pub duration: Duration,
    /// Password changes started per second.
    pub changes_per_second: f64,
    pub tenants: usize,
    pub employees_per_tenant: usize,
    /// Every this-many-th change is a password the admin typed; the others are generated.
    pub typed_every: u64,
    /// Policy checks and reads per second.
    pub reads_per_second: f64,
    /// The length of a measurement window.
    pub window: Duration,
}

/// How long the drain may take: every change answered and its delivery acknowledged.
const DRAIN: Duration = Duration::from_secs(60);

/// How long a workstation's pull waits for a delivery (a long poll, as `latchkey agent` does).
pub const PULL_WAIT_SECONDS: u32 = 5;

/// The harness options of a soak's server: the no-op directory, and a log of warnings and
/// errors only (the debug log of half an hour of changes would be gigabytes); `binary` runs
/// another build than the debug one.
pub fn server_options(binary: Option<std::path::PathBuf>) -> Options {
    Options {
        plugins: vec!["test-echo"],
        env: vec![("LATCHKEY_LOG", "warn".into())],
        binary,
        ..Options::default()
    }
}

/// What one window measured.
#[derive(Debug, Clone)]
pub struct Window {
    /// When the window ended, from the start of the load.
    pub ends_at: Duration,
    /// Changes answered 202, and their latency (request to answer).
    pub changes: Vec<Duration>,
    /// Deliveries acknowledged, and their latency (the change's request to the key's ack
    /// recorded: what the admin's click waits for to reach the key).
    pub deliveries: Vec<Duration>,
    /// Pull requests answered (long polls, with or without a delivery).
    pub pulls: usize,
    /// Policy checks and reads answered.
    pub reads: usize,
    /// Requests that failed or answered something else than expected.
    pub errors: usize,
    /// The server's resident set at the window's end (VmRSS), in MiB.
    pub rss_mib: f64,
    /// Of which anonymous memory (RssAnon: the heap, the stacks, plugin instances), in MiB; the
    /// rest is mapped files, chiefly the binary's code.
    pub anon_mib: f64,
}

/// The windows' columns, for `Window::cells`.
pub const COLUMNS: [&str; 12] = [
    "t (s)",
    "changes",
    "change p50",
    "change p99",
    "delivered",
    "delivery p50",
    "delivery p99",
    "pulls",
    "reads",
    "errors",
    "server RSS",
    "of which anon",
];

impl Window {
    /// One row of the table, in the order of `COLUMNS`.
    pub fn cells(&self) -> Vec<String> {
        vec![
            format!("{:.0}", self.ends_at.as_secs_f64()),
            self.changes.len().to_string(),
            ms(quantile(&self.changes, 0.5)),
            ms(quantile(&self.changes, 0.99)),
            self.deliveries.len().to_string(),
            ms(quantile(&self.deliveries, 0.5)),
            ms(quantile(&self.deliveries, 0.99)),
            self.pulls.to_string(),
            self.reads.to_string(),
            self.errors.to_string(),
            format!("{:.1} MiB", self.rss_mib),
            format!("{:.1} MiB", self.anon_mib),
        ]
    }
}

/// Which latency.
#[derive(Debug, Clone, Copy)]
pub enum Latency {
    Change,
    Delivery,
}

/// What the soak measured and found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The server's resident set once set up, before the load, in MiB.
    pub rss_before_mib: f64,
    pub windows: Vec<Window>,
    /// Changes the server accepted (202).
    pub changes: usize,
    /// Deliveries the server recorded as delivered on the key's ack.
    pub delivered: usize,
    /// Every error (the first 50 described; `errors` counts them all).
    pub error_messages: Vec<String>,
    pub errors: usize,
    /// How long the drain took after the load stopped.
    pub drain: Duration,
    /// Changes the server does not report applied and delivered after the drain.
    pub undelivered: Vec<String>,
    /// Deliveries a final pull of every key still found.
    pub left_pending: usize,
    /// The server's own counters at the end: changes accepted, acks delivered, 5xx answers.
    pub server_changes_accepted: u64,
    pub server_acks_delivered: u64,
    pub server_errors: u64,
    /// Lines of the server's log at ERROR, or a panic.
    pub log_errors: Vec<String>,
}

impl Outcome {
    /// The windows as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "| {} |\n|{}\n",
            COLUMNS.join(" | "),
            " --- |".repeat(COLUMNS.len())
        );
        for window in &self.windows {
            out.push_str(&format!("| {} |\n", window.cells().join(" | ")));
        }
        out
    }

    /// The windows after the first, which includes the warm-up (token verification, compiled
    /// plugins loaded, caches filling).
    pub fn steady(&self) -> &[Window] {
        self.windows.get(1..).unwrap_or_default()
    }

    /// The p99 of `which` over the first and the last third of the steady windows, each third's
    /// samples pooled.
    pub fn p99_thirds(&self, which: Latency) -> (Duration, Duration) {
        let steady = self.steady();
        let third = (steady.len() / 3).max(1);
        let pooled = |windows: &[Window]| {
            let mut all: Vec<Duration> = windows
                .iter()
                .flat_map(|w| match which {
                    Latency::Change => &w.changes,
                    Latency::Delivery => &w.deliveries,
                })
                .copied()
                .collect();
            all.sort();
            quantile(&all, 0.99)
        };
        (
            pooled(&steady[..third.min(steady.len())]),
            pooled(&steady[steady.len().saturating_sub(third)..]),
        )
    }

    /// The server's resident set in the first steady window and the last one, in MiB.
    pub fn rss_first_and_last(&self) -> (f64, f64) {
        let steady = self.steady();
        (
            steady.first().map_or(0.0, |w| w.rss_mib),
            steady.last().map_or(0.0, |w| w.rss_mib),
        )
    }

    /// How fast the resident set grows over the last half of the steady windows, in MiB per
    /// minute.
    pub fn rss_slope_last_half(&self) -> f64 {
        let steady = self.steady();
        slope(&steady[steady.len() / 2..])
    }
}

/// The Theil–Sen slope of the windows' resident set, in MiB per minute: the median of the
/// slopes between every two windows. Resident memory grows in steps (an allocator arena, a
/// cache filling), and a step or two moves the median little where it would tilt a
/// least-squares line; a leak, growing in every window, moves it fully.
fn slope(windows: &[Window]) -> f64 {
    let mut slopes = Vec::new();
    for (i, a) in windows.iter().enumerate() {
        for b in &windows[i + 1..] {
            let minutes = (b.ends_at.as_secs_f64() - a.ends_at.as_secs_f64()) / 60.0;
            slopes.push((b.rss_mib - a.rss_mib) / minutes);
        }
    }
    slopes.sort_by(f64::total_cmp);
    match slopes.len() {
        0 => 0.0,
        n if n % 2 == 1 => slopes[n / 2],
        n => (slopes[n / 2 - 1] + slopes[n / 2]) / 2.0,
    }
}

/// The q-quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Milliseconds, to a tenth.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A tenant of the soak: its admin (who resets and reads) and its approved workstation.
struct Tenant {
    id: String,
    admin: String,
    workstation: String,
}

/// An employee of a tenant with an active software key.
struct Employee {
    tenant: usize,
    id: String,
    username: String,
    key_id: String,
}

/// A change on its way: started, answered, its delivery acknowledged.
struct InFlight {
    sent: Instant,
    /// The password the admin typed (a generated one nobody sees).
    typed: Option<String>,
    answered: bool,
    acked: bool,
}

/// What the current window has counted so far.
#[derive(Default)]
struct Counts {
    changes: Vec<Duration>,
    deliveries: Vec<Duration>,
    pulls: usize,
    reads: usize,
    errors: usize,
}

/// What every task of the soak shares.
struct Shared {
    http: reqwest::Client,
    url: String,
    tenants: Vec<Tenant>,
    employees: Vec<Employee>,
    in_flight: Vec<Mutex<Option<InFlight>>>,
    /// Employees with nothing in flight.
    idle: mpsc::UnboundedSender<usize>,
    counts: Mutex<Counts>,
    /// (tenant, change id) of every change the server accepted.
    made: Mutex<Vec<(usize, String)>>,
    errors: Mutex<(usize, Vec<String>)>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn error(&self, what: String) {
        lock(&self.counts).errors += 1;
        let mut errors = lock(&self.errors);
        errors.0 += 1;
        if errors.1.len() < 50 {
            errors.1.push(what);
        }
    }

    /// Marks a step of employee `e`'s change done; once answered and acknowledged, the employee
    /// is free for the next one.
    fn progress(&self, e: usize, mark: impl FnOnce(&mut InFlight)) {
        let mut slot = lock(&self.in_flight[e]);
        if let Some(change) = slot.as_mut() {
            mark(change);
            if change.answered && change.acked {
                *slot = None;
                let _ = self.idle.send(e);
            }
        }
    }

    /// Gives up on employee `e`'s change (its failure is already counted).
    fn abandon(&self, e: usize) {
        if lock(&self.in_flight[e]).take().is_some() {
            let _ = self.idle.send(e);
        }
    }

    fn anything_in_flight(&self) -> bool {
        self.in_flight.iter().any(|slot| lock(slot).is_some())
    }

    fn tenant_path(&self, tenant: usize, path: &str) -> String {
        format!(
            "{}/api/v1/tenants/{}{path}",
            self.url, self.tenants[tenant].id
        )
    }
}

/// A request's status and JSON body, or why there was none.
async fn answer(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Runs `load` against `server` (started with [`server_options`]); `on_window` sees each
/// window as it ends.
pub async fn run(server: &Server, load: &Load, mut on_window: impl FnMut(&Window)) -> Outcome {
    let pid = server.pid().expect("the server runs");
    let (idle, mut idle_employees) = mpsc::unbounded_channel();
    let (tenants, employees, keys) = set_up(server, load).await;
    for e in 0..employees.len() {
        idle.send(e).expect("the channel is open");
    }
    let shared = Arc::new(Shared {
        http: server.http.clone(),
        url: server.url.clone(),
        in_flight: employees.iter().map(|_| Mutex::new(None)).collect(),
        tenants,
        employees,
        idle,
        counts: Mutex::new(Counts::default()),
        made: Mutex::new(Vec::new()),
        errors: Mutex::new((0, Vec::new())),
    });
    let stop_pulls = Arc::new(AtomicBool::new(false));
    let stop_reads = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(e, key)| tokio::spawn(pull_and_ack(shared.clone(), e, key, stop_pulls.clone())))
        .collect();
    let reader = tokio::spawn(read(
        shared.clone(),
        load.reads_per_second,
        stop_reads.clone(),
    ));

    let started = Instant::now();
    let deadline = started + load.duration;
    let changes = {
        let (shared, rate, typed_every) =
            (shared.clone(), load.changes_per_second, load.typed_every);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut running = Vec::new();
            for n in 1u64.. {
                ticks.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let Some(e) = idle_employees.recv().await else {
                    break;
                };
                running.push(tokio::spawn(change(shared.clone(), e, n, typed_every)));
                running.retain(|task: &tokio::task::JoinHandle<()>| !task.is_finished());
            }
            for task in running {
                let _ = task.await;
            }
        })
    };

    let mut outcome = Outcome {
        rss_before_mib: memory_mib(pid, "VmRSS:"),
        ..Outcome::default()
    };
    let count = (load.duration.as_secs_f64() / load.window.as_secs_f64()).ceil() as u32;
    for w in 1..=count {
        let ends_at = (load.window * w).min(load.duration);
        tokio::time::sleep_until((started + ends_at).into()).await;
        let mut counts = std::mem::take(&mut *lock(&shared.counts));
        counts.changes.sort();
        counts.deliveries.sort();
        let window = Window {
            ends_at,
            changes: counts.changes,
            deliveries: counts.deliveries,
            pulls: counts.pulls,
            reads: counts.reads,
            errors: counts.errors,
            rss_mib: memory_mib(pid, "VmRSS:"),
            anon_mib: memory_mib(pid, "RssAnon:"),
        };
        on_window(&window);
        outcome.windows.push(window);
    }
    stop_reads.store(true, Ordering::SeqCst);
    changes.await.expect("the changes' task");
    let _ = reader.await;

    let drain_started = Instant::now();
    while shared.anything_in_flight() && drain_started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outcome.drain = drain_started.elapsed();
    if shared.anything_in_flight() {
        shared.error(format!(
            "changes still undelivered {} s after the load stopped",
            DRAIN.as_secs()
        ));
    }
    stop_pulls.store(true, Ordering::SeqCst);
    for poller in pollers {
        let _ = poller.await;
    }
    // The windows counted what happened during the load; the drain's deliveries count too.
    let late = std::mem::take(&mut *lock(&shared.counts));
    outcome.delivered = outcome
        .windows
        .iter()
        .map(|w| w.deliveries.len())
        .sum::<usize>()
        + late.deliveries.len();
    account(&shared, server, &mut outcome).await;
    let errors = std::mem::take(&mut *lock(&shared.errors));
    outcome.errors = errors.0;
    outcome.error_messages = errors.1;
    outcome
}

/// A field of the server's /proc/PID/status (`VmRSS:`, `RssAnon:`) in MiB; 0 if it cannot be
/// read.
fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Tenants, each with a test-echo primary, an admin, an approved workstation and employees with
/// active keys, all through the API; the keys provisioned with their tenant's signing key as the
/// workstation learnt it.
async fn set_up(server: &Server, load: &Load) -> (Vec<Tenant>, Vec<Employee>, Vec<SoftwareKey>) {
    let (mut tenants, mut employees, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..load.tenants {
        let (id, owner) = server
            .tenant_with_admin(&format!("soak-{t}"), "owner")
            .await;
        let path = |p: &str| format!("/api/v1/tenants/{id}{p}");
        let connector = server
            .expect(
                201,
                "POST",
                &path("/connectors"),
                &owner,
                Some(json!({"plugin": "test-echo", "role": "primary"})),
            )
            .await;
        let admin = server
            .expect(
                201,
                "POST",
                &path("/admins"),
                &owner,
                Some(json!({"name": format!("soak-{t} admin"), "role": "admin"})),
            )
            .await;
        let code = server
            .expect(201, "POST", &path("/enrollment-codes"), &owner, None)
            .await;
        let enrolled = server
            .expect(
                201,
                "POST",
                "/api/v1/client/enroll",
                "",
                Some(json!({"code": code["code"], "name": format!("soak-desk-{t}")})),
            )
            .await;
        let workstation = enrolled["id"].as_str().expect("an id");
        server
            .expect(
                200,
                "POST",
                &path(&format!("/workstations/{workstation}/approve")),
                &owner,
                None,
            )
            .await;
        let server_key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(enrolled["server_key"].as_str().expect("the server key"))
            .expect("base64url")
            .try_into()
            .expect("32 bytes");
        let anchor = TrustAnchor {
            tenant: TenantId(*uuid::Uuid::parse_str(&id).expect("a UUID").as_bytes()),
            server_key: ed25519_dalek::VerifyingKey::from_bytes(&server_key).expect("a key"),
        };
        for i in 0..load.employees_per_tenant {
            // No part of the name appears in the typed passwords (the policy's name rule).
            let username = format!("emp{t}x{i:03}");
            let employee = server
                .expect(
                    201,
                    "POST",
                    &path("/employees"),
                    &owner,
                    Some(json!({"connector": connector["id"], "account": username})),
                )
                .await;
            let mut key = SoftwareKey::generate(&format!("soak-{t}-{i}"), &mut rand_core::OsRng)
                .expect("a key");
            key.provision(anchor.clone()).expect("provisioning");
            let registered = server
                .expect(
                    201,
                    "POST",
                    &path("/keys"),
                    &owner,
                    Some(json!({
                        "serial": key.serial(),
                        "kem_public_key": URL_SAFE_NO_PAD.encode(key.identity().kem_public_key()),
                        "sig_public_key": URL_SAFE_NO_PAD.encode(key.identity().sig_public_key().as_bytes()),
                    })),
                )
                .await;
            let key_id = registered["id"].as_str().expect("an id").to_string();
            server
                .expect(
                    200,
                    "PATCH",
                    &path(&format!("/keys/{key_id}")),
                    &owner,
                    Some(json!({"employee": employee["id"], "status": "active"})),
                )
                .await;
            employees.push(Employee {
                tenant: t,
                id: employee["id"].as_str().expect("an id").to_string(),
                username,
                key_id,
            });
            keys.push(key);
        }
        tenants.push(Tenant {
            id,
            admin: admin["token"].as_str().expect("a token").to_string(),
            workstation: enrolled["token"].as_str().expect("a token").to_string(),
        });
    }
    (tenants, employees, keys)
}

/// Change number `n`, for employee `e`: typed every `typed_every`-th, generated otherwise (with
/// the unlock and must-change options now and then).
async fn change(shared: Arc<Shared>, e: usize, n: u64, typed_every: u64) {
    let employee = &shared.employees[e];
    // Upper, lower, digit and symbol; nothing of "Test empTxIII", the account's names.
    let typed = n
        .is_multiple_of(typed_every)
        .then(|| format!("Kv7#{n}.{:08x}", rand_u32()));
    let body = match &typed {
        Some(password) => json!({"mode": "manual", "password": password, "confirm": password}),
        None => json!({"mode": "generate", "unlock": n % 3 == 1,
                       "must_change_at_next_logon": n % 5 == 2}),
    };
    let sent = Instant::now();
    *lock(&shared.in_flight[e]) = Some(InFlight {
        sent,
        typed: typed.clone(),
        answered: false,
        acked: false,
    });
    let request = shared
        .http
        .post(shared.tenant_path(
            employee.tenant,
            &format!("/employees/{}/password", employee.id),
        ))
        .bearer_auth(&shared.tenants[employee.tenant].admin)
        .json(&body);
    match answer(request).await {
        Ok((202, body))
            if body["change_id"].is_string()
                && typed
                    .as_ref()
                    .is_none_or(|p| !body.to_string().contains(p.as_str())) =>
        {
            lock(&shared.counts).changes.push(sent.elapsed());
            let id = body["change_id"].as_str().unwrap_or_default().to_string();
            lock(&shared.made).push((employee.tenant, id));
            shared.progress(e, |c| c.answered = true);
        }
        other => {
            shared.error(format!("change {n} of {}: {other:?}", employee.username));
            shared.abandon(e);
        }
    }
}

/// Employee `e`'s workstation: pulls the key's deliveries (a long poll), has the key open each
/// and checks what it now holds, posts the key's ack, and checks it was recorded as delivered.
async fn pull_and_ack(shared: Arc<Shared>, e: usize, mut key: SoftwareKey, stop: Arc<AtomicBool>) {
    let employee = &shared.employees[e];
    let token = &shared.tenants[employee.tenant].workstation;
    let keys = format!("{}/api/v1/client/keys/{}", shared.url, employee.key_id);
    while !stop.load(Ordering::SeqCst) {
        let request = shared
            .http
            .get(format!("{keys}/deliveries?wait={PULL_WAIT_SECONDS}"))
            .bearer_auth(token);
        let pulled = match answer(request).await {
            Ok((200, pulled)) => pulled,
            other => {
                shared.error(format!("pull of {}: {other:?}", employee.username));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        lock(&shared.counts).pulls += 1;
        let deliveries = pulled["deliveries"].as_array().cloned().unwrap_or_default();
        if deliveries.is_empty() {
            continue;
        }
        let expected = lock(&shared.in_flight[e])
            .as_ref()
            .map(|c| (c.sent, c.typed.clone()));
        let Some((sent, typed)) = expected else {
            shared.error(format!(
                "{} got a delivery nobody asked for: {pulled}",
                employee.username
            ));
            continue;
        };
        if deliveries.len() != 1 || deliveries[0]["slot"] != employee.username.as_str() {
            shared.error(format!(
                "{} expected one delivery for its slot: {pulled}",
                employee.username
            ));
            continue;
        }
        let delivery = deliveries[0]["id"].as_str().unwrap_or_default();
        let envelope = URL_SAFE_NO_PAD
            .decode(deliveries[0]["envelope"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let ack = match key.receive(&envelope, latchkey::store::now() as u64) {
            Ok(ack) => ack,
            Err(error) => {
                shared.error(format!("{}'s key refused: {error}", employee.username));
                continue;
            }
        };
        let held = key
            .credential_for_account(&employee.username)
            .map(|c| c.password().expose_secret().to_string())
            .unwrap_or_default();
        let as_set = match &typed {
            Some(password) => held == *password,
            None => held.chars().count() == 20,
        };
        if !as_set {
            shared.error(format!(
                "{}'s key does not hold the password the admin set",
                employee.username
            ));
        }
        let request = shared
            .http
            .post(format!("{keys}/acks"))
            .bearer_auth(token)
            .json(&json!({"delivery": delivery, "ack": URL_SAFE_NO_PAD.encode(&ack)}));
        match answer(request).await {
            Ok((200, body)) if body["state"] == "delivered" => {
                lock(&shared.counts).deliveries.push(sent.elapsed());
                shared.progress(e, |c| c.acked = true);
            }
            other => shared.error(format!("ack of {delivery}: {other:?}")),
        }
    }
}

/// Policy checks (a good candidate and a short one) and reads (an employee, a recent change,
/// the changes list, the metrics), round robin, at `per_second`.
async fn read(shared: Arc<Shared>, per_second: f64, stop: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    for n in 0usize.. {
        ticks.tick().await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let employee = &shared.employees[n % shared.employees.len()];
        let (tenant, admin) = (employee.tenant, &shared.tenants[employee.tenant].admin);
        let check = shared.tenant_path(
            tenant,
            &format!("/employees/{}/password/check", employee.id),
        );
        let recent = lock(&shared.made)
            .iter()
            .rev()
            .find(|(t, _)| *t == tenant)
            .map(|(_, id)| id.clone());
        let (what, request) = match n % 5 {
            0 => (
                "a good candidate is ok",
                shared
                    .http
                    .post(&check)
                    .json(&json!({"password": format!("Qz8!{:08x}", rand_u32())})),
            ),
            1 => (
                "a short candidate is refused",
                shared.http.post(&check).json(&json!({"password": "Qz8!"})),
            ),
            2 => (
                "the employee",
                shared
                    .http
                    .get(shared.tenant_path(tenant, &format!("/employees/{}", employee.id))),
            ),
            3 => match recent {
                Some(id) => (
                    "a recent change",
                    shared
                        .http
                        .get(shared.tenant_path(tenant, &format!("/password-changes/{id}"))),
                ),
                None => (
                    "the changes",
                    shared
                        .http
                        .get(shared.tenant_path(tenant, "/password-changes")),
                ),
            },
            _ => (
                "the metrics",
                shared.http.get(format!("{}/metrics", shared.url)),
            ),
        };
        let answered = answer(request.bearer_auth(admin)).await;
        let right = match &answered {
            Ok((200, body)) => match n % 5 {
                0 => body["ok"] == true,
                1 => body["ok"] == false && body["violations"][0].is_object(),
                2 => body["id"] == employee.id.as_str(),
                3 => body["id"].is_string() || body["changes"].is_array(),
                _ => body
                    .as_str()
                    .is_some_and(|t| t.contains("latchkey_http_requests")),
            },
            _ => false,
        };
        if right {
            lock(&shared.counts).reads += 1;
        } else {
            shared.error(format!("read of {what}: {answered:?}"));
        }
    }
}

/// After the drain: the server reports every accepted change applied and delivered, a final
/// pull of every key finds nothing, its counters agree, and its log holds no error.
async fn account(shared: &Arc<Shared>, server: &Server, outcome: &mut Outcome) {
    let made = std::mem::take(&mut *lock(&shared.made));
    outcome.changes = made.len();
    let made = Arc::new(made);
    let lanes = 8;
    let mut checkers = Vec::new();
    for lane in 0..lanes {
        let (shared, made) = (shared.clone(), made.clone());
        checkers.push(tokio::spawn(async move {
            let mut undelivered = Vec::new();
            for (tenant, id) in made.iter().skip(lane).step_by(lanes) {
                let request = shared
                    .http
                    .get(shared.tenant_path(*tenant, &format!("/password-changes/{id}")))
                    .bearer_auth(&shared.tenants[*tenant].admin);
                match answer(request).await {
                    Ok((200, change))
                        if change["state"] == "applied"
                            && change["delivery"]["state"] == "delivered" => {}
                    other => undelivered.push(format!("{id}: {other:?}")),
                }
            }
            undelivered
        }));
    }
    for checker in checkers {
        outcome
            .undelivered
            .extend(checker.await.expect("a checker"));
    }
    for employee in &shared.employees {
        let request = shared
            .http
            .get(format!(
                "{}/api/v1/client/keys/{}/deliveries",
                shared.url, employee.key_id
            ))
            .bearer_auth(&shared.tenants[employee.tenant].workstation);
        match answer(request).await {
            Ok((200, pulled)) => {
                outcome.left_pending += pulled["deliveries"].as_array().map_or(0, Vec::len);
            }
            other => shared.error(format!("final pull of {}: {other:?}", employee.username)),
        }
    }
    match answer(shared.http.get(format!("{}/metrics", shared.url))).await {
        Ok((200, Value::String(metrics))) => {
            outcome.server_changes_accepted =
                counter(&metrics, "latchkey_password_changes_total", |l| {
                    l.contains("outcome=\"accepted\"")
                });
            outcome.server_acks_delivered =
                counter(&metrics, "latchkey_delivery_acks_total", |l| {
                    l.contains("outcome=\"delivered\"")
                });
            outcome.server_errors = counter(&metrics, "latchkey_http_requests_total", |l| {
                l.contains("status=\"5")
            });
        }
        other => shared.error(format!("the final metrics: {other:?}")),
    }
    outcome.log_errors = server
        .log()
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
        .take(20)
        .map(str::to_string)
        .collect();
}

/// The sum of the Prometheus counter `name`'s series whose labels `matches`.
fn counter(metrics: &str, name: &str, matches: impl Fn(&str) -> bool) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && matches(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
