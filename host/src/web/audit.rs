//! The Audit page: the tenant's audit records, filtered by action, a page at a time, and a
//! check of the hash chain.
//!
//! The API lists records oldest first after a sequence number (`after`), and nothing else; so
//! this page finds the pages it links to with that alone: "Newer" is the records after the
//! last one shown, "Older" (`before=`) and the first page (the newest records) are found by
//! looking back in widening windows of sequence numbers. The chain is one for the whole server,
//! so Verify checks all of it and says only whether it is whole and where it breaks.

use std::collections::VecDeque;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebResult;
use super::render;
use super::session::Console;
use crate::api::AppState;
use crate::api::auth::Need;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/console/t/{tenant}/audit", get(list))
}

/// The actions the server records, for the filter's suggestions (a prefix filters too:
/// `password.change` finds every step of a change).
const ACTIONS: &[&str] = &[
    "admin.create",
    "admin.revoke",
    "connector.create",
    "connector.delete",
    "connector.test",
    "connector.update",
    "console.sign-in",
    "delivery.ack.refused",
    "delivery.delivered",
    "delivery.lease",
    "employee.create",
    "employee.import",
    "key.create",
    "key.update",
    "password.change",
    "password.change.applied",
    "password.change.begin",
    "password.change.failed",
    "password.change.recovered",
    "password.change.sync-overdue",
    "password.change.synced",
    "workstation.approve",
    "workstation.code.create",
    "workstation.enroll",
    "workstation.revoke",
];

/// Records a page shows by default, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// The most records one API call answers.
const API_PAGE: usize = 1000;

/// The query, as typed (numbers that do not parse are ignored rather than refused).
#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    verify: String,
}

fn number(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().filter(|n| *n >= 0)
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The tenant's records, read through the API.
struct Records<'a> {
    state: &'a AppState,
    console: &'a Console,
    tenant: &'a str,
    action: &'a str,
}

impl Records<'_> {
    /// Up to `limit` records after `after`, oldest first.
    async fn after(&self, after: i64, limit: usize) -> WebResult<Vec<Value>> {
        let mut uri = format!(
            "/api/v1/tenants/{}/audit?after={after}&limit={limit}",
            self.tenant
        );
        if !self.action.is_empty() {
            uri.push_str(&format!("&action={}", encode(self.action)));
        }
        let data = self.console.get(self.state, &uri).await?;
        Ok(data["records"].as_array().cloned().unwrap_or_default())
    }

    /// The sequence number of the first record after `after`.
    async fn next_seq(&self, after: i64) -> WebResult<Option<i64>> {
        Ok(self
            .after(after, 1)
            .await?
            .first()
            .and_then(|r| r["seq"].as_i64()))
    }

    /// The sequence number of the newest record: a widening, then halving, search.
    async fn last_seq(&self) -> WebResult<Option<i64>> {
        let Some(mut low) = self.next_seq(0).await? else {
            return Ok(None);
        };
        // `low` is a record; find `high` with no record after it.
        let mut high = loop {
            let probe = low.saturating_mul(2).saturating_add(1);
            match self.next_seq(probe).await? {
                Some(seq) => low = seq,
                None => break probe,
            }
        };
        while low < high {
            let middle = low + (high - low) / 2;
            match self.next_seq(middle).await? {
                Some(seq) => low = seq,
                None => high = middle,
            }
        }
        Ok(Some(low))
    }

    /// The `after` that shows the last `limit` records up to `end` (0 when there are fewer).
    async fn page_ending_at(&self, end: i64, limit: usize) -> WebResult<i64> {
        let mut window = (limit as i64).saturating_mul(2).max(64);
        loop {
            let start = end.saturating_sub(window).max(0);
            // The last limit + 1 records in (start, end], and how many there are.
            let mut last: VecDeque<i64> = VecDeque::with_capacity(limit + 1);
            let mut count = 0usize;
            let mut cursor = start;
            'scan: loop {
                let records = self.after(cursor, API_PAGE).await?;
                for record in &records {
                    let seq = record["seq"].as_i64().unwrap_or(i64::MAX);
                    if seq > end {
                        break 'scan;
                    }
                    if last.len() == limit + 1 {
                        last.pop_front();
                    }
                    last.push_back(seq);
                    count += 1;
                    cursor = seq;
                }
                if records.len() < API_PAGE {
                    break;
                }
            }
            if count > limit {
                return Ok(last[0]);
            }
            if count == limit || start == 0 {
                return Ok(start);
            }
            window = window.saturating_mul(4);
        }
    }
}

/// `GET /console/t/{tenant}/audit?action=&after=&before=&limit=&verify=`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Path(tenant): Path<String>,
    Query(query): Query<AuditQuery>,
) -> WebResult<Response> {
    console.require(&tenant, Need::Read)?;
    let action = query.action.trim();
    let limit = number(&query.limit)
        .map(|n| (n as usize).clamp(1, MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    let records = Records {
        state: &state,
        console: &console,
        tenant: &tenant,
        action,
    };
    let mut shown = if let Some(after) = number(&query.after) {
        records.after(after, limit).await?
    } else if let Some(before) = number(&query.before) {
        let end = before.saturating_sub(1);
        let after = records.page_ending_at(end, limit).await?;
        let mut page = records.after(after, limit).await?;
        page.retain(|r| r["seq"].as_i64().is_some_and(|seq| seq <= end));
        page
    } else {
        match records.last_seq().await? {
            Some(last) => {
                let after = records.page_ending_at(last, limit).await?;
                records.after(after, limit).await?
            }
            None => Vec::new(),
        }
    };
    let first = shown.first().and_then(|r| r["seq"].as_i64());
    let last = shown.last().and_then(|r| r["seq"].as_i64());
    let older = match first {
        Some(first) => records.next_seq(0).await?.is_some_and(|seq| seq < first),
        None => false,
    };
    let newer = match last {
        Some(last) => records.next_seq(last).await?.is_some(),
        None => false,
    };
    for record in &mut shown {
        let details = record["details"].to_string();
        record["details_text"] = json!(details);
    }
    let mut filters = format!("limit={limit}");
    if !action.is_empty() {
        filters.push_str(&format!("&action={}", encode(action)));
    }
    let base = format!("/console/t/{tenant}/audit?{filters}");
    let verify = if query.verify.is_empty() {
        Value::Null
    } else {
        console
            .get(&state, &format!("/api/v1/tenants/{tenant}/audit/verify"))
            .await?
    };
    let data = json!({
        "records": shown,
        "action": action,
        "limit": limit,
        "actions": ACTIONS,
        "older": first.filter(|_| older).map(|seq| format!("{base}&before={seq}")),
        "newer": last.filter(|_| newer).map(|seq| format!("{base}&after={seq}")),
        "newest": newer.then(|| base.clone()),
        "verify": verify,
    });
    render::page(&state, &console, Some(&tenant), "audit", "audit.html", data).await
}
