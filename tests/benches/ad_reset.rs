//! A password reset through Latchkey's AD connector next to the same reset as a bare ldap3
//! modify on an open connection, against the same Samba AD DC in the same run, interleaved so
//! that both see the same DC load. Prints a Markdown table for BENCHMARKS.md.
//!
//! Through the connector, one reset is: a fresh plugin instance, a pooled LDAPS session bound
//! as the service account, the account's lookup by objectGUID, the unicodePwd modify, and the
//! read of pwdLastSet for the outcome. Bare: the unicodePwd modify alone.
//!
//! Run with a DC (tests/services/samba-dc start DIR):
//! `LATCHKEY_SAMBA_ENV=DIR/env cargo bench -p latchkey-tests --bench ad_reset`. For the figures
//! in BENCHMARKS.md, remove `check password script` from DIR/etc/smb.conf and restart the DC
//! first: the script spawns a process per password write (~70 ms), which hides the cost
//! measured here.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use latchkey::runtime::wit::types::SetOptions;
use latchkey_plugin_sdk::unicode_pwd;
use latchkey_tests::samba::{ServiceAccount, UserSpec, dc, random_password};
use latchkey_tests::{ad_connector, find_account};
use ldap3::Mod;
use secrecy::SecretString;
use serde_json::json;

const WARMUP: usize = 5;
const ROUNDS: usize = 60;

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(bench());
}

async fn bench() {
    let dc = dc();
    let user = dc.create_user("tbench", UserSpec::default()).await;
    let ad = ad_connector("t-bench", ServiceAccount::Delegated, json!({})).await;
    let account = find_account(&ad, &user.username).await;
    let (svc_dn, svc_password) = dc.service_account(ServiceAccount::Delegated);
    let mut bare = dc.connect_as(svc_dn, svc_password).await.expect("bind");
    let options = SetOptions {
        must_change_at_next_logon: false,
        unlock: false,
        enforce_history: false,
    };

    let mut through = Vec::with_capacity(ROUNDS);
    let mut direct = Vec::with_capacity(ROUNDS);
    for round in 0..WARMUP + ROUNDS {
        let password = SecretString::from(random_password());
        let started = Instant::now();
        ad.set_password(&account, &password, options)
            .await
            .expect("reset through the connector");
        let plugin = started.elapsed();

        let value = unicode_pwd::encode(&random_password());
        let started = Instant::now();
        let result = bare
            .modify(
                &user.dn,
                vec![Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([value]))],
            )
            .await
            .expect("bare modify");
        let bare_time = started.elapsed();
        assert_eq!(result.rc, 0, "{}", result.text);

        if round >= WARMUP {
            through.push(plugin);
            direct.push(bare_time);
        }
    }
    through.sort();
    direct.sort();
    let ratio = |q: f64| quantile(&through, q).as_secs_f64() / quantile(&direct, q).as_secs_f64();
    // The test DC's check password script (MS-SAMR's name rules) starts a process for every
    // password written, which dwarfs what is measured here: say whether it ran.
    let script = std::fs::read_to_string(dc.dir.join("etc/smb.conf"))
        .map(|conf| conf.contains("check password script"))
        .unwrap_or(false);
    println!(
        "AD reset, {ROUNDS} rounds (after {WARMUP} warm-up), interleaved; {}; Samba {} a check \
         password script",
        machine(),
        if script { "with" } else { "without" }
    );
    println!();
    println!("| what | p50 | p90 | min |");
    println!("| --- | --- | --- | --- |");
    for (name, samples) in [
        (
            "reset through Latchkey (plugin + pooled session + lookup + modify + pwdLastSet)",
            &through,
        ),
        ("bare ldap3 modify on an open connection", &direct),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.9)),
            ms(samples[0])
        );
    }
    println!(
        "| ratio (Latchkey / bare) | {:.3}× | {:.3}× | |",
        ratio(0.5),
        ratio(0.9)
    );
}
