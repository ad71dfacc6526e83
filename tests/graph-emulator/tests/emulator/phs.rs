//! The simulated password hash sync against the real Samba AD DC (`LATCHKEY_SAMBA_ENV`), and
//! its survival of a directory it cannot reach.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use latchkey_graph_emulator::{
    EmulatorOptions, GraphEmulator, OnPremSource, SyncSettings, UserState, parse_graph_datetime,
};
use ldap3::Mod;
use reqwest::StatusCode;

use crate::support::{get, token};

const ENV_VAR: &str = "LATCHKEY_SAMBA_ENV";

/// The DC's env file, or a failure saying how to get one: this test never passes without it.
fn samba_env() -> String {
    std::env::var(ENV_VAR).unwrap_or_else(|_| {
        panic!(
            "{ENV_VAR} is not set, so there is no Samba AD DC for the password hash sync test. \
             Start one as root with `tests/services/samba-dc start /tmp/latchkey-dc` and run the \
             tests with {ENV_VAR}=/tmp/latchkey-dc/env"
        )
    })
}

/// A user's unicodePwd value: the quoted password in UTF-16LE.
fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn random_password() -> String {
    let hex = random_hex();
    format!("Qx7-{}-Zk9{}", &hex[..8], &hex[8..12])
}

/// An administrator's reset of `dn`'s password: pwdLastSet becomes now, or 0 with
/// `must_change`.
async fn reset_on_premises(source: &OnPremSource, dn: &str, must_change: bool) {
    let mut admin = source
        .connect()
        .await
        .expect("binding as the administrator");
    let mut mods = vec![Mod::Replace(
        b"unicodePwd".to_vec(),
        HashSet::from([unicode_pwd(&random_password())]),
    )];
    if must_change {
        mods.push(Mod::Replace(
            b"pwdLastSet".to_vec(),
            HashSet::from([b"0".to_vec()]),
        ));
    }
    let result = admin.modify(dn, mods).await.expect("modify");
    assert_eq!(result.rc, 0, "resetting {dn}: {}", result.text);
    let _ = admin.unbind().await;
}

/// Polls until `check` holds for the user, or fails after `timeout`.
async fn wait_for(
    graph: &GraphEmulator,
    upn: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&UserState) -> bool,
) -> UserState {
    let start = Instant::now();
    loop {
        let state = graph.user(upn).expect("the user");
        if check(&state) {
            return state;
        }
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}: {state:?}, sync {:?}",
            graph.sync_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_on_premises_password_change_lands_after_the_delay_and_not_while_paused() {
    let source = OnPremSource::from_samba_env(samba_env()).expect("the DC's env file");
    let delay = Duration::from_secs(1);
    let interval = Duration::from_millis(300);

    // An account of this test's own in the DC's Users container.
    let sam = format!("phs{}", &random_hex()[..10]);
    let dn = format!("CN={sam},CN=Users,{}", source.base_dn);
    let upn = format!("{sam}@corp.test");
    {
        let mut admin = source
            .connect()
            .await
            .expect("binding as the administrator");
        let attrs = vec![
            (
                b"objectClass".to_vec(),
                HashSet::from([
                    b"top".to_vec(),
                    b"person".to_vec(),
                    b"organizationalPerson".to_vec(),
                    b"user".to_vec(),
                ]),
            ),
            (
                b"sAMAccountName".to_vec(),
                HashSet::from([sam.as_bytes().to_vec()]),
            ),
            (
                b"userPrincipalName".to_vec(),
                HashSet::from([upn.as_bytes().to_vec()]),
            ),
            (
                b"userAccountControl".to_vec(),
                HashSet::from([b"512".to_vec()]),
            ),
            (
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd(&random_password())]),
            ),
        ];
        let result = admin.add(&dn, attrs).await.expect("add");
        assert_eq!(result.rc, 0, "creating {dn}: {}", result.text);
        let _ = admin.unbind().await;
    }

    let graph = GraphEmulator::start(EmulatorOptions {
        on_prem: Some(source.clone()),
        sync: SyncSettings { interval, delay },
        ..EmulatorOptions::default()
    })
    .await;
    let linked = graph.add_synced_user(&upn, "PHS Test", &sam);

    // A cycle reads the account: no change to carry, the DN is learnt, the org's sync time set.
    graph
        .wait_for_sync_cycle(Duration::from_secs(10))
        .await
        .expect("a sync cycle");
    graph
        .wait_for_sync_cycle(Duration::from_secs(10))
        .await
        .expect("a sync cycle");
    let status = graph.sync_status();
    assert!(status.last_error.is_none(), "{status:?}");
    let state = graph.user(&upn).unwrap();
    assert_eq!(state.last_password_change, linked.last_password_change);
    assert_eq!(state.synced_password_changes, 0);
    assert_eq!(
        state
            .on_premises_distinguished_name
            .as_deref()
            .map(str::to_lowercase),
        Some(dn.to_lowercase())
    );
    assert!(graph.organization().on_premises_last_sync.is_some());

    // A change on-premises lands after the delay, not before.
    let changed_at = SystemTime::now();
    reset_on_premises(&source, &dn, false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        graph.user(&upn).unwrap().synced_password_changes,
        0,
        "landed before the delay"
    );
    let landed = wait_for(
        &graph,
        &upn,
        Duration::from_secs(10),
        "the change landing",
        |s| s.synced_password_changes == 1,
    )
    .await;
    assert!(
        landed.last_password_change >= changed_at + delay,
        "{landed:?}"
    );
    assert_eq!(landed.password_resets, 0);

    // Graph shows it (whole seconds), and the organization's last sync moved too.
    let bearer = token(&graph).await;
    let answer = get(
        &graph,
        &bearer,
        &format!(
            "/v1.0/users/{}?$select=lastPasswordChangeDateTime,onPremisesSyncEnabled",
            linked.id
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let shown =
        parse_graph_datetime(answer.body["lastPasswordChangeDateTime"].as_str().unwrap()).unwrap();
    assert!(shown > linked.last_password_change, "{}", answer.body);
    let answer = get(&graph, &bearer, "/v1.0/organization").await;
    let org_sync = parse_graph_datetime(
        answer.body["value"][0]["onPremisesLastSyncDateTime"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(org_sync + Duration::from_secs(1) >= landed.last_password_change);

    // Paused: a change is neither read nor landed; resumed: it lands.
    graph.pause_sync();
    tokio::time::sleep(interval * 2).await;
    reset_on_premises(&source, &dn, false).await;
    tokio::time::sleep(interval + delay + Duration::from_secs(1)).await;
    let paused = graph.user(&upn).unwrap();
    assert_eq!(paused.synced_password_changes, 1, "landed while paused");
    assert_eq!(paused.last_password_change, landed.last_password_change);
    assert!(graph.sync_status().paused);
    graph.resume_sync();
    wait_for(
        &graph,
        &upn,
        Duration::from_secs(10),
        "the change landing after resuming",
        |s| s.synced_password_changes == 2,
    )
    .await;

    // A reset that makes the user change it at next logon leaves pwdLastSet at 0: the new
    // hash is carried all the same.
    reset_on_premises(&source, &dn, true).await;
    wait_for(
        &graph,
        &upn,
        Duration::from_secs(10),
        "a must-change reset landing",
        |s| s.synced_password_changes == 3,
    )
    .await;

    let mut admin = source
        .connect()
        .await
        .expect("binding as the administrator");
    let _ = admin.delete(&dn).await;
    let _ = admin.unbind().await;
}

#[tokio::test]
async fn the_sync_survives_a_directory_it_cannot_reach() {
    let ca = std::env::temp_dir().join(format!("graph-emulator-no-ca-{}", random_hex()));
    let graph = GraphEmulator::start(EmulatorOptions {
        on_prem: Some(OnPremSource::new(
            "ldaps://127.0.0.1:1",
            ca,
            "CN=nobody",
            "nothing",
            "DC=corp,DC=test",
        )),
        sync: SyncSettings {
            interval: Duration::from_millis(100),
            delay: Duration::ZERO,
        },
        ..EmulatorOptions::default()
    })
    .await;
    graph.add_synced_user("bob@corp.test", "Bob Hybrid", "bob");
    for _ in 0..3 {
        graph
            .wait_for_sync_cycle(Duration::from_secs(10))
            .await
            .expect("cycles go on");
    }
    let status = graph.sync_status();
    assert!(status.cycles >= 3, "{status:?}");
    assert!(status.last_error.is_some(), "{status:?}");
    assert_eq!(
        graph.user("bob@corp.test").unwrap().synced_password_changes,
        0
    );

    // Without a source there is no sync to wait for.
    let cloud = GraphEmulator::start(EmulatorOptions::default()).await;
    assert!(!cloud.sync_status().enabled);
    assert!(
        cloud
            .wait_for_sync_cycle(Duration::from_millis(10))
            .await
            .is_err()
    );
}
