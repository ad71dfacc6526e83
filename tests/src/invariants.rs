//! The crash matrix's invariant checker: what must be true of one password change once a server
//! that died during it has restarted and recovered, whatever step it died at.
//!
//! One of three outcomes, in this order:
//! - **agree**: the change is applied (or partially applied), its delivery delivered, the
//!   password the software key types binds to the real directory and the old one does not, and
//!   the host's password history remembers it (a check of it names `in-history`);
//! - **failed, untouched**: the change failed, nothing is left to deliver, the old password
//!   still binds and the key holds the old password or nothing;
//! - **admin told**: neither, the change is not failed (a failed change must leave the
//!   directory untouched, whatever it says), and it carries a `failure` sentence telling the
//!   admin what happened and what to do.
//!
//! And always: the change is resolved (not held or applying), the audit chain verifies, and
//! neither the password the key ended with nor the admin's candidate is anywhere on disk (every
//! file of the data directory: the SQLite database, its WAL and shared memory, the server's
//! log; on PostgreSQL a `pg_dump` of the server's database), nor in what the API shows of the
//! change and the audit. A needle is looked for as UTF-8, UTF-16LE, hex and base64.
//!
//! It only reads: it never changes the server, the directory or the key (binds with a wrong
//! password are kept to one per check, below the DC's lockout threshold).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::samba::{TestUser, dc};
use crate::server::{Server, agent};

/// Which invariant held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The directory and the key agree on the new password.
    Agree,
    /// The change failed with the directory untouched.
    FailedUntouched,
    /// The change tells the admin what to do.
    AdminTold,
}

/// The change to check and where it lives.
pub struct Subject<'a> {
    pub server: &'a Server,
    pub tenant: &'a str,
    /// An admin of the tenant (reads the change and the audit).
    pub token: &'a str,
    pub change_id: &'a str,
    /// The directory account, with the password it had before the change.
    pub user: &'a TestUser,
    /// The software key's file (`latchkey agent type` reads it).
    pub key_file: &'a Path,
    /// The password the admin typed (manual mode): never on disk either.
    pub candidate: Option<&'a str>,
    /// More output to scan (e.g. what the agent printed).
    pub extra: Vec<(String, Vec<u8>)>,
}

/// What the check found.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    /// The change as the API shows it.
    pub change: Value,
    /// What the key types for the account, if it holds anything.
    pub key_password: Option<String>,
}

/// Checks every invariant; an error says which failed and with what evidence.
pub async fn check(subject: &Subject<'_>) -> Result<Report, String> {
    let server = subject.server;
    let tenant = subject.tenant;
    let (status, change) = server
        .call(
            "GET",
            &format!(
                "/api/v1/tenants/{tenant}/password-changes/{}",
                subject.change_id
            ),
            subject.token,
            None,
        )
        .await;
    if status != 200 {
        return Err(format!("reading the change: {status} {change:#}"));
    }
    let state = change["state"].as_str().unwrap_or_default().to_string();
    if matches!(state.as_str(), "held" | "applying") {
        return Err(format!(
            "the change is still {state} after restart and recovery: {change:#}"
        ));
    }
    let key_password = key_password(subject.key_file, &subject.user.username).await?;
    let outcome = outcome(subject, &state, &change, key_password.as_deref()).await?;

    let (status, verified) = server
        .call(
            "GET",
            &format!("/api/v1/tenants/{tenant}/audit/verify"),
            subject.token,
            None,
        )
        .await;
    if status != 200 || verified["ok"] != true {
        return Err(format!(
            "the audit chain does not verify after the crash: {verified:#}"
        ));
    }

    let mut needles: Vec<&str> = Vec::new();
    needles.extend(key_password.as_deref());
    needles.extend(subject.candidate);
    needles.retain(|n| *n != subject.user.password);
    needles.dedup();
    let (_, audit) = server
        .call(
            "GET",
            &format!("/api/v1/tenants/{tenant}/audit"),
            subject.token,
            None,
        )
        .await;
    let mut scanned = files_under(server.data_dir.path())
        .into_iter()
        .map(|file| {
            let bytes = std::fs::read(&file).unwrap_or_default();
            (file.display().to_string(), bytes)
        })
        .collect::<Vec<_>>();
    if let Some(dump) = pg_dump(server)? {
        scanned.push(("pg_dump of the server's database".into(), dump));
    }
    scanned.push(("the change's JSON".into(), change.to_string().into_bytes()));
    scanned.push(("the audit's JSON".into(), audit.to_string().into_bytes()));
    scanned.extend(subject.extra.iter().cloned());
    let mut leaks = Vec::new();
    for needle in &needles {
        for (encoding, encoded) in encodings(needle) {
            for (what, bytes) in &scanned {
                if contains(bytes, &encoded) {
                    leaks.push(format!("the password ({encoding}) is in {what}"));
                }
            }
        }
    }
    if !leaks.is_empty() {
        return Err(format!("plaintext on disk: {}", leaks.join("; ")));
    }
    Ok(Report {
        outcome,
        change,
        key_password,
    })
}

/// Which of the three outcomes holds, or why none does.
async fn outcome(
    subject: &Subject<'_>,
    state: &str,
    change: &Value,
    key_password: Option<&str>,
) -> Result<Outcome, String> {
    let user = subject.user;
    let dc = dc();
    let delivery = change["delivery"]["state"].as_str().unwrap_or("none");
    let mut evidence = vec![format!("state {state}, delivery {delivery}")];
    // The key's password first: a successful bind resets the DC's count of bad ones.
    if matches!(state, "applied" | "partially_applied")
        && let Some(typed) = key_password
    {
        match dc.bind(&user.dn, typed).await {
            Ok(()) => {
                if dc.bind(&user.dn, &user.password).await.is_ok() {
                    return Err(format!(
                        "both the key's and the old password bind: {change:#}"
                    ));
                }
                if delivery != "delivered" {
                    return Err(format!(
                        "the key and the directory agree, but the delivery is {delivery}: \
                         {change:#}"
                    ));
                }
                if !remembered(subject, change, typed).await? {
                    return Err(format!(
                        "the key and the directory agree, but the host's password history does \
                         not remember the password: {change:#}"
                    ));
                }
                return Ok(Outcome::Agree);
            }
            Err(error) => evidence.push(format!("the key's password does not bind: {error}")),
        }
    }
    if state == "failed" {
        match dc.bind(&user.dn, &user.password).await {
            Ok(()) => {
                let key_ok = key_password.is_none_or(|p| p == user.password);
                let nothing_due = !matches!(delivery, "held" | "pending" | "leased");
                if key_ok && nothing_due {
                    return Ok(Outcome::FailedUntouched);
                }
                evidence.push(format!(
                    "the old password binds, but the key holds another ({}) or something is \
                     still due ({delivery})",
                    key_password.is_some()
                ));
            }
            Err(error) => evidence.push(format!("the old password does not bind: {error}")),
        }
    }
    // A failed change whose directory did change is never acceptable, whatever it says: the
    // directory holds a password no key was given.
    if state != "failed"
        && let Some(failure) = change["failure"].as_str()
        && failure.split_whitespace().count() >= 6
        && failure.contains('.')
    {
        return Ok(Outcome::AdminTold);
    }
    Err(format!(
        "no invariant holds ({}): {change:#}",
        evidence.join("; ")
    ))
}

/// Whether the host's history remembers `password` for the change's employee: a policy check
/// of it lists the host's own `in-history` violation.
async fn remembered(subject: &Subject<'_>, change: &Value, password: &str) -> Result<bool, String> {
    let employee = change["employee"].as_str().unwrap_or_default();
    let (status, checked) = subject
        .server
        .call(
            "POST",
            &format!(
                "/api/v1/tenants/{}/employees/{employee}/password/check",
                subject.tenant
            ),
            subject.token,
            Some(serde_json::json!({ "password": password })),
        )
        .await;
    if status != 200 {
        return Err(format!("checking the key's password: {status} {checked:#}"));
    }
    Ok(checked["violations"].as_array().is_some_and(|list| {
        list.iter()
            .any(|v| v["rule"] == "in-history" && v["connector"] == "latchkey")
    }))
}

/// What `latchkey agent type` prints for `account`, or None when the key holds nothing for it.
async fn key_password(key_file: &Path, account: &str) -> Result<Option<String>, String> {
    let (key_file, account) = (key_file.display().to_string(), account.to_string());
    let output = tokio::task::spawn_blocking(move || {
        agent(&["type", "--key-file", &key_file, "--account", &account])
    })
    .await
    .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        return Ok(Some(stdout.trim_end_matches(['\r', '\n']).to_string()));
    }
    if stderr.contains("holds no password") {
        return Ok(None);
    }
    Err(format!("agent type failed ({}): {stderr}", output.status))
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => files.push(path),
                _ => {}
            }
        }
    }
    files
}

/// On PostgreSQL: a `pg_dump` of the server's database (wherever it is: the shared server or
/// a private cluster). None on SQLite.
fn pg_dump(server: &Server) -> Result<Option<Vec<u8>>, String> {
    if server.sqlite_file.is_some() {
        return Ok(None);
    }
    let output = Command::new("pg_dump")
        .arg("--dbname")
        .arg(server.database_url())
        .output()
        .map_err(|e| {
            format!("running pg_dump: {e} (install it: apt-get install postgresql-client)")
        })?;
    if !output.status.success() {
        return Err(format!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(Some(output.stdout))
}

/// `password` as it could sit in a file: UTF-8, UTF-16LE (what AD's unicodePwd carries), hex of
/// either (PostgreSQL dumps bytea as hex), base64 of the UTF-8.
fn encodings(password: &str) -> Vec<(&'static str, Vec<u8>)> {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let standard = base64::engine::general_purpose::STANDARD.encode(password);
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(password);
    vec![
        ("UTF-8", password.as_bytes().to_vec()),
        ("UTF-16LE", utf16.clone()),
        ("hex", hex::encode(password).into_bytes()),
        ("hex of UTF-16LE", hex::encode(&utf16).into_bytes()),
        ("base64", standard.trim_end_matches('=').as_bytes().to_vec()),
        ("base64url", url.into_bytes()),
    ]
}

/// Whether `needle` occurs in `haystack`. ASCII needles (all of ours: passwords are ASCII, and
/// so are UTF-16LE code units of ASCII with their NULs) go through std's substring search,
/// which is optimised even in a debug build of the tests; data directories hold megabytes of
/// compiled plugins.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return false;
    }
    match std::str::from_utf8(needle) {
        // Invalid UTF-8 in the haystack becomes U+FFFD, never an ASCII byte, so an ASCII needle
        // is found exactly where its bytes are.
        Ok(text) if needle.is_ascii() => String::from_utf8_lossy(haystack).contains(text),
        _ => haystack.windows(needle.len()).any(|w| w == needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needles_are_found_in_binary_data_in_every_encoding() {
        let password = "Crash-1a2b3c4d-Pw!";
        for (encoding, needle) in encodings(password) {
            let mut haystack = vec![0xff, 0xc3, 0x00, 0x80];
            haystack.extend(&needle);
            haystack.extend([0xe2, 0x82]);
            assert!(contains(&haystack, &needle), "{encoding}");
            assert!(
                !contains(&haystack[..haystack.len() - 3], &needle),
                "{encoding}"
            );
        }
        assert!(!contains(b"anything", b""));
    }
}
