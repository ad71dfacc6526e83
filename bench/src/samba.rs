//! Resets through Latchkey against the Samba AD DC next to bare ldap3 modifies of the same
//! attribute on an open connection, interleaved in the same run so both see the same DC: the
//! connector's `set-password` alone, and a whole password change through the HTTP API.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use latchkey::runtime::wit::types::SetOptions;
use latchkey_plugin_sdk::unicode_pwd;
use latchkey_tests::samba::{ServiceAccount, UserSpec, dc, random_password};
use latchkey_tests::{ad_connector, find_account};
use ldap3::Mod;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::report::{Section, met, ms, quantile};
use crate::setup::{Database, Db, client, registry};

pub async fn run(quick: bool) -> Section {
    let (warmup, rounds) = if quick { (2, 5) } else { (5, 60) };
    let mut section = Section::new(
        "Resets against the Samba AD DC, through Latchkey and bare",
        &format!(
            "Debian's Samba AD DC on loopback (`tests/services/samba-dc`), LDAPS verified \
             against the test CA. {rounds} rounds after {warmup} warm-up, each round one reset \
             through Latchkey then one bare ldap3 modify of unicodePwd on an open, bound \
             connection, on the same user. *Connector*: `ad-ldap`'s `set-password` in a fresh \
             instance (pooled LDAPS session, lookup by objectGUID, the modify, pwdLastSet read \
             back). *Whole change*: `POST …/password` in generate mode through Latchkey's API in \
             this process on SQLite (policy and check from the DC, generation, seal, held \
             delivery, the connector's reset, release, history hash, audit)."
        ),
        &["what", "p50", "p90", "min", "ratio to bare (p50)"],
    );
    if std::env::var(latchkey_tests::samba::ENV_VAR).is_err() {
        section.row(vec![
            "not run: no DC (start one with `tests/services/samba-dc start DIR` and set \
             LATCHKEY_SAMBA_ENV=DIR/env)"
                .into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
        ]);
        return section;
    }
    let dc = dc();
    let script = std::fs::read_to_string(dc.dir.join("etc/smb.conf"))
        .map(|conf| conf.contains("check password script"))
        .unwrap_or(false);
    let user = dc
        .create_user("tbench", UserSpec::in_groups(&[&dc.pso_group_dn]))
        .await;
    let ad = ad_connector("t-bench", ServiceAccount::Delegated, json!({})).await;
    let account = find_account(&ad, &user.username).await;
    let (svc_dn, svc_password) = dc.service_account(ServiceAccount::Delegated);
    let mut bare = dc.connect_as(svc_dn, svc_password).await.expect("bind");
    let bare_modify = async |bare: &mut ldap3::Ldap| {
        let value = unicode_pwd::encode(&random_password());
        let started = Instant::now();
        let result = bare
            .modify(
                &user.dn,
                vec![Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([value]))],
            )
            .await
            .expect("bare modify");
        assert_eq!(result.rc, 0, "{}", result.text);
        started.elapsed()
    };

    // The whole change through the API.
    let database = Database::open(Db::Sqlite).await;
    let registry = registry(&[], database.dir.path()).await;
    registry.install_bundled().await;
    let store = database.store.clone();
    let state = latchkey::api::AppState::new(store.clone(), registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(axum::serve(listener, latchkey::api::app(state)).into_future());
    let tenant = store.create_tenant("bench-ad").await.expect("tenant");
    let owner = store
        .create_admin(&tenant.id, "o", latchkey::store::Role::Owner)
        .await
        .expect("owner");
    let owner = owner.token.expose_secret().to_string();
    let http = client();
    let call = async |method: reqwest::Method, path: String, body: Value| -> Value {
        let response = http
            .request(method, format!("{url}/api/v1/tenants/{}{path}", tenant.id))
            .bearer_auth(&owner)
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    };
    let connector = call(
        reqwest::Method::POST,
        "/connectors".into(),
        json!({"plugin": "ad-ldap", "role": "primary",
               "config": {"url": dc.ldaps_url, "base_dn": dc.staff_ou, "bind_dn": svc_dn,
                          "ca_file": dc.ca_file},
               "secrets": {"bind_password": svc_password}}),
    )
    .await;
    let employee = call(
        reqwest::Method::POST,
        "/employees".into(),
        json!({"connector": connector["id"], "account": user.username}),
    )
    .await;
    let mut key =
        keyproto::softkey::SoftwareKey::generate("bench-ad", &mut rand_core::OsRng).expect("key");
    let _ = &mut key;
    let registered = call(
        reqwest::Method::POST,
        "/keys".into(),
        json!({"serial": "bench-ad",
               "kem_public_key": crate::setup::b64(key.identity().kem_public_key()),
               "sig_public_key": crate::setup::b64(key.identity().sig_public_key().as_bytes())}),
    )
    .await;
    call(
        reqwest::Method::PATCH,
        format!("/keys/{}", registered["id"].as_str().unwrap()),
        json!({"status": "active", "employee": employee["id"]}),
    )
    .await;
    let reset_path = format!("/employees/{}/password", employee["id"].as_str().unwrap());

    let options = SetOptions {
        must_change_at_next_logon: false,
        unlock: false,
        enforce_history: false,
    };
    let (mut connector_times, mut change_times, mut bare_times) = (vec![], vec![], vec![]);
    for round in 0..warmup + rounds {
        let password = SecretString::from(random_password());
        let started = Instant::now();
        ad.set_password(&account, &password, options)
            .await
            .expect("reset through the connector");
        let through = started.elapsed();
        let direct = bare_modify(&mut bare).await;
        let started = Instant::now();
        call(
            reqwest::Method::POST,
            reset_path.clone(),
            json!({"mode": "generate"}),
        )
        .await;
        let whole = started.elapsed();
        let direct2 = bare_modify(&mut bare).await;
        if round >= warmup {
            connector_times.push(through);
            change_times.push(whole);
            bare_times.push(direct);
            bare_times.push(direct2);
        }
    }
    server.abort();
    database.finish().await;
    for samples in [&mut connector_times, &mut change_times, &mut bare_times] {
        samples.sort();
    }
    let bare50 = quantile(&bare_times, 0.5);
    let ratio = |samples: &[Duration]| quantile(samples, 0.5).as_secs_f64() / bare50.as_secs_f64();
    for (name, samples) in [
        ("reset through the connector", &connector_times),
        ("whole password change through the API", &change_times),
        ("bare ldap3 modify", &bare_times),
    ] {
        section.row(vec![
            name.into(),
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.9)),
            ms(samples[0]),
            format!("{:.3}×", ratio(samples)),
        ]);
    }
    section.finding(format!(
        "The DC {} a `check password script` (the test suite's runs MS-SAMR's name rules in a \
         Python process per password write, ~70 ms, which dwarfs everything else: for figures, \
         remove it from DIR/etc/smb.conf and restart the DC). Goal: the Samba path within \
         1.15× of bare ldap3 — connector {} ({:.3}×), whole change {} ({:.3}×).",
        if script { "ran" } else { "ran without" },
        met(ratio(&connector_times) <= 1.15),
        ratio(&connector_times),
        met(ratio(&change_times) <= 1.15),
        ratio(&change_times),
    ));
    section.finding(
        "What limits the whole change: before the write, the connector's `get-policy` (for the \
         generator) and `check-password` (DESIGN's step 3: every candidate is checked by every \
         connector) each read the effective policy over LDAP (the account, its resultant PSO \
         or the domain object): ~5 ms of round trips to the DC; the host's own work (seal, \
         database, history hash overlapped with the write) is the rest. Reading the policy \
         once per change and passing it to the check would need a contract change.",
    );
    section
}
