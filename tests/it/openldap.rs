//! The OpenLDAP connector (`plugins/openldap`) against a real slapd with the ppolicy overlay:
//! every behaviour an admin relies on, proven by what the server itself does afterwards (a
//! user's bind, an attribute read as the rootdn, a policy refusal).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use latchkey::runtime::CallError;
use latchkey::runtime::ConnectorInstance;
use latchkey::runtime::wit::types::{
    Account, AccountQuery, CheckStatus, ConnectorError, MatchMode, SetOptions, SetOutcome,
    SetStatus, Step, StepOutcome, Violation,
};
use latchkey_tests::slapd::{
    ServiceAccount, TestUser, UserSpec, openldap_connector, random_password, slapd,
};
use latchkey_tests::{find_account, logs};
use secrecy::SecretString;
use serde_json::json;

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn reset(unlock: bool, must_change: bool) -> SetOptions {
    SetOptions {
        must_change_at_next_logon: must_change,
        unlock,
        enforce_history: false,
    }
}

fn step<'a>(outcome: &'a SetOutcome, which: &Step) -> &'a StepOutcome {
    outcome
        .steps
        .iter()
        .find(|s| &s.step == which)
        .unwrap_or_else(|| panic!("no {which:?} step in {outcome:?}"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The violations of a refused write, or a panic saying what came instead.
fn violations(result: Result<SetOutcome, CallError>) -> Vec<Violation> {
    match result {
        Err(CallError::Connector(ConnectorError::Policy(violations))) => violations,
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

async fn find(connector: &ConnectorInstance, user: &TestUser) -> Account {
    find_account(connector, &user.username).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_binds_and_must_change_sets_pwd_reset() {
    logs();
    let server = slapd();
    let user = server.create_user("oreset", UserSpec::default()).await;
    let connector = openldap_connector("t-ol-reset", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;
    assert_eq!(account.id, user.id, "the id is the entryUUID");
    assert_eq!(account.username, user.username);
    assert_eq!(account.location.as_deref(), Some(user.dn.as_str()));
    assert_eq!(account.email.as_deref(), Some(user.mail.as_str()));
    assert_eq!(
        account.display_name.as_deref(),
        Some(user.display_name.as_str())
    );
    assert!(account.enabled && !account.locked_out);

    let before = connector
        .password_changed_at(&account)
        .await
        .unwrap()
        .expect("ppolicy records pwdChangedTime at creation");
    // pwdChangedTime has whole seconds: let one pass so that the reset's is later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = random_password();
    let outcome = connector
        .set_password(&account, &secret(&new), reset(false, true))
        .await
        .unwrap();
    assert_eq!(outcome.status, SetStatus::Applied);
    assert!(step(&outcome, &Step::SetPassword).done);
    assert!(step(&outcome, &Step::MustChange).done, "{outcome:?}");

    server
        .bind(&user.dn, &new)
        .await
        .expect("the new password binds");
    let old = server.bind(&user.dn, &user.password).await.unwrap_err();
    assert!(old.contains("rc 49"), "the old password must fail: {old}");
    assert_eq!(
        server.read(&user.dn, "pwdReset").await.as_deref(),
        Some("TRUE"),
        "must change at next logon is ppolicy's pwdReset"
    );
    // Stored hashed, never as the cleartext that was sent (ppolicy_hash_cleartext).
    let stored = server.read(&user.dn, "userPassword").await.unwrap();
    assert!(stored.starts_with("{SSHA}"), "{stored}");

    let after = connector
        .password_changed_at(&account)
        .await
        .unwrap()
        .unwrap();
    assert!(after > before, "pwdChangedTime moved: {before} → {after}");
    assert!((after - unix_now()).abs() < 120);
    assert_eq!(outcome.changed_at, Some(after));

    // Nothing logged for this connector holds a password: the user's, or the service
    // account's.
    let lines = logs().lines_with("t-ol-reset");
    assert!(!lines.is_empty(), "the connector's calls are logged");
    let (_, svc_password) = server.service_account(ServiceAccount::Writer);
    for line in lines {
        for secret in [new.as_str(), user.password.as_str(), svc_password] {
            assert!(!line.contains(secret), "a password in the log: {line}");
        }
    }
}

/// The service account has write, not manage, access to userPassword: ppolicy applies its
/// rules to the resets, and each refusal comes back as its own violation, with the user's
/// password unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ppolicy_refusal_of_a_reset_is_its_violation() {
    let server = slapd();
    let user = server.create_user("orefuse", UserSpec::default()).await;
    let connector = openldap_connector("t-ol-refuse", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;

    for (candidate, expected) in [
        ("Sh0rt!".to_string(), Violation::TooShort(8)),
        ("L0ng-".repeat(14), Violation::TooLong(64)),
        // The password it was created with: ppolicy's history (pwdInHistory 3) applies to the
        // service account's resets too.
        (user.password.clone(), Violation::InHistory),
    ] {
        let refused = violations(
            connector
                .set_password(&account, &secret(&candidate), reset(false, false))
                .await,
        );
        assert_eq!(refused, vec![expected]);
    }
    // ppolicy's quality check (pwdCheckQuality 2, no check module): a value that looks
    // already hashed cannot be checked, so it is refused (insufficientPasswordQuality).
    let refused = violations(
        connector
            .set_password(
                &account,
                &secret("{SSHA}Zq8vwxPlenty41"),
                reset(false, false),
            )
            .await,
    );
    assert!(
        matches!(&refused[..], [Violation::RejectedByDirectory(why)] if why.contains("quality")),
        "{refused:?}"
    );
    server
        .bind(&user.dn, &user.password)
        .await
        .expect("the refused resets changed nothing");

    // check-password knows the lengths before anything is written.
    let checked = connector
        .check_password(&account, &secret("Sh0rt!"))
        .await
        .unwrap();
    assert_eq!(checked, vec![Violation::TooShort(8)]);
    let fine = connector
        .check_password(&account, &secret(&random_password()))
        .await
        .unwrap();
    assert!(fine.is_empty(), "{fine:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_too_soon_under_the_strict_policy_is_too_young() {
    let server = slapd();
    let user = server
        .create_user(
            "ostrict",
            UserSpec {
                policy: Some(&server.strict_policy_dn),
            },
        )
        .await;
    let connector = openldap_connector("t-ol-strict", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;

    let policy = connector.get_policy(&account).await.unwrap();
    assert_eq!(policy.min_age_seconds, 3600);
    assert!(
        policy.source.contains(&server.strict_policy_dn),
        "the user's pwdPolicySubentry wins: {}",
        policy.source
    );

    // Created a moment ago, so 3600 s minus a moment are left.
    let refused = violations(
        connector
            .set_password(&account, &secret(&random_password()), reset(false, false))
            .await,
    );
    let [Violation::TooYoung(left)] = refused.as_slice() else {
        panic!("expected too-young, got {refused:?}")
    };
    assert!((3480..=3600).contains(left), "{left} s left");

    let checked = connector
        .check_password(&account, &secret(&random_password()))
        .await
        .unwrap();
    assert!(
        matches!(checked.as_slice(), [Violation::TooYoung(s)] if (3480..=3600).contains(s)),
        "{checked:?}"
    );
    // A user's change is held to the same minimum age.
    let refused = violations(
        connector
            .change_password(
                &account,
                &secret(&user.password),
                &secret(&random_password()),
            )
            .await,
    );
    assert!(
        matches!(refused.as_slice(), [Violation::TooYoung(_)]),
        "{refused:?}"
    );
    server
        .bind(&user.dn, &user.password)
        .await
        .expect("nothing was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_change_works_and_history_is_enforced_on_it() {
    let server = slapd();
    let user = server.create_user("ochange", UserSpec::default()).await;
    let connector = openldap_connector("t-ol-change", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;

    let wrong = connector
        .change_password(
            &account,
            &secret("Not-The-0ld-One"),
            &secret(&random_password()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            wrong,
            CallError::Connector(ConnectorError::WrongOldPassword(_))
        ),
        "{wrong:?}"
    );

    let new = random_password();
    let outcome = connector
        .change_password(&account, &secret(&user.password), &secret(&new))
        .await
        .unwrap();
    assert_eq!(outcome.status, SetStatus::Applied);
    server
        .bind(&user.dn, &new)
        .await
        .expect("the new one binds");
    assert!(server.bind(&user.dn, &user.password).await.is_err());

    // Back to the first one: in the history.
    let refused = violations(
        connector
            .change_password(&account, &secret(&new), &secret(&user.password))
            .await,
    );
    assert_eq!(refused, vec![Violation::InHistory]);
    let refused = violations(
        connector
            .change_password(&account, &secret(&new), &secret("Sh0rt!"))
            .await,
    );
    assert_eq!(refused, vec![Violation::TooShort(8)]);

    // The same with a Delete old / Add new modify.
    let delete_add = openldap_connector(
        "t-ol-change-da",
        ServiceAccount::Writer,
        json!({"user_change_method": "delete-add"}),
    )
    .await;
    let newer = random_password();
    delete_add
        .change_password(&account, &secret(&new), &secret(&newer))
        .await
        .unwrap();
    server
        .bind(&user.dn, &newer)
        .await
        .expect("delete-add changed it");
    let refused = violations(
        delete_add
            .change_password(&account, &secret(&newer), &secret(&new))
            .await,
    );
    assert_eq!(refused, vec![Violation::InHistory]);
    let wrong = delete_add
        .change_password(
            &account,
            &secret("Not-The-0ld-One"),
            &secret(&random_password()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            wrong,
            CallError::Connector(ConnectorError::WrongOldPassword(_))
        ),
        "{wrong:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_must_change_can_change_after_a_reset() {
    let server = slapd();
    // Under the strict policy: pwdReset lifts the minimum age for the user's own change.
    let user = server
        .create_user(
            "omust",
            UserSpec {
                policy: Some(&server.strict_policy_dn),
            },
        )
        .await;
    // The rootdn marks the password as one the user must change (as a reset would).
    let connector = openldap_connector("t-ol-must", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;
    server
        .admin_modify(
            &user.dn,
            vec![ldap3::Mod::Replace(
                b"pwdReset".to_vec(),
                [b"TRUE".to_vec()].into_iter().collect(),
            )],
        )
        .await;
    let new = random_password();
    connector
        .change_password(&account, &secret(&user.password), &secret(&new))
        .await
        .expect("pwdReset lets the user change despite pwdMinAge");
    assert_eq!(server.read(&user.dn, "pwdReset").await, None, "cleared");
    server.bind(&user.dn, &new).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_clears_a_lockout() {
    let server = slapd();
    let user = server.create_user("olocked", UserSpec::default()).await;
    // The default policy locks after 3 failures.
    for _ in 0..3 {
        let refused = server.bind(&user.dn, "Wrong-Passw0rd").await.unwrap_err();
        assert!(refused.contains("rc 49"), "{refused}");
    }
    assert!(
        server
            .read(&user.dn, "pwdAccountLockedTime")
            .await
            .is_some()
    );
    assert!(
        server.bind(&user.dn, &user.password).await.is_err(),
        "locked"
    );

    let connector = openldap_connector("t-ol-unlock", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;
    assert!(account.locked_out && account.enabled, "{account:?}");

    // A user's change cannot get past the lock.
    let refused = connector
        .change_password(
            &account,
            &secret(&user.password),
            &secret(&random_password()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CallError::Connector(ConnectorError::Denied(_))),
        "{refused:?}"
    );

    let new = random_password();
    let outcome = connector
        .set_password(&account, &secret(&new), reset(true, false))
        .await
        .unwrap();
    // ppolicy clears the lock with the password write itself; the step says so.
    let unlock = step(&outcome, &Step::Unlock);
    assert!(unlock.done, "{outcome:?}");
    assert!(
        unlock.detail.as_deref().unwrap_or("").contains("cleared"),
        "{outcome:?}"
    );
    assert_eq!(server.read(&user.dn, "pwdAccountLockedTime").await, None);
    assert!(server.read_all(&user.dn, "pwdFailureTime").await.is_empty());
    server.bind(&user.dn, &new).await.expect("unlocked");
    assert!(!find(&connector, &user).await.locked_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed() {
    let server = slapd();
    let connector = openldap_connector("t-ol-errors", ServiceAccount::Writer, json!({})).await;
    let user = server.create_user("oerrors", UserSpec::default()).await;
    let account = find(&connector, &user).await;

    for id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
        let ghost = Account {
            id: id.into(),
            ..account.clone()
        };
        let missing = connector
            .set_password(&ghost, &secret(&random_password()), reset(false, false))
            .await
            .unwrap_err();
        assert!(
            matches!(missing, CallError::Connector(ConnectorError::NotFound(_))),
            "{missing:?}"
        );
    }

    // A service account without write access: denied, naming the ACL, and nothing changes.
    let readonly = openldap_connector("t-ol-readonly", ServiceAccount::ReadOnly, json!({})).await;
    let denied = readonly
        .set_password(&account, &secret(&random_password()), reset(false, false))
        .await
        .unwrap_err();
    let CallError::Connector(ConnectorError::Denied(info)) = &denied else {
        panic!("expected denied, got {denied:?}")
    };
    assert!(info.message.contains("userPassword"), "{}", info.message);
    server.bind(&user.dn, &user.password).await.unwrap();

    // A wrong bind password for the service account is denied too.
    let wrong_bind = latchkey_tests::slapd::openldap_connector(
        "t-ol-badbind",
        ServiceAccount::ReadOnly,
        json!({"bind_dn": server.svc_dn}),
    )
    .await;
    let refused = wrong_bind
        .find_accounts(
            &AccountQuery {
                text: user.username.clone(),
                mode: MatchMode::Exact,
            },
            None,
            5,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CallError::Connector(ConnectorError::Denied(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_pages_through_every_match() {
    let server = slapd();
    let prefix = format!("op{:04x}", latchkey_tests::samba::rand_u32() & 0xffff);
    let mut created = vec![];
    for _ in 0..5 {
        created.push(server.create_user(&prefix, UserSpec::default()).await);
    }
    let connector = openldap_connector("t-ol-find", ServiceAccount::Writer, json!({})).await;
    let query = AccountQuery {
        text: prefix.clone(),
        mode: MatchMode::Prefix,
    };
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = connector
            .find_accounts(&query, cursor.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.accounts.len() <= 2);
        pages += 1;
        seen.extend(page.accounts.into_iter().map(|a| a.username));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = created.iter().map(|u| u.username.clone()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every match once, in order");

    // Exact by mail and by entryUUID; contains on the display name.
    let by_mail = find_account(&connector, &created[0].mail).await;
    assert_eq!(by_mail.id, created[0].id);
    let by_id = find_account(&connector, &created[1].id).await;
    assert_eq!(by_id.username, created[1].username);
    let contains = connector
        .find_accounts(
            &AccountQuery {
                text: format!("t {}", created[2].username),
                mode: MatchMode::Contains,
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(contains.accounts.len(), 1);
    // Filter metacharacters are literal.
    let injected = connector
        .find_accounts(
            &AccountQuery {
                text: "*)(uid=*".into(),
                mode: MatchMode::Contains,
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert!(injected.accounts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_and_the_connection_report() {
    let server = slapd();
    let user = server.create_user("opolicy", UserSpec::default()).await;
    let connector = openldap_connector("t-ol-policy", ServiceAccount::Writer, json!({})).await;
    let account = find(&connector, &user).await;
    let policy = connector.get_policy(&account).await.unwrap();
    assert_eq!(
        (
            policy.min_length,
            policy.max_length,
            policy.history_length,
            policy.min_age_seconds,
            policy.max_age_seconds,
            policy.lockout_threshold,
        ),
        (8, 64, 3, 0, Some(90 * 86_400), 3)
    );
    assert_eq!(policy.complexity, None);
    assert!(
        policy.source.contains(&server.policy_dn),
        "{}",
        policy.source
    );

    let report = connector.test_connection().await.unwrap();
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .collect();
    assert!(failed.is_empty(), "{report:#?}");
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name.contains("ppolicy") && c.status == CheckStatus::Ok),
        "{report:#?}"
    );

    // A policy_dn that does not exist fails its check, with advice.
    let wrong = openldap_connector(
        "t-ol-policy-wrong",
        ServiceAccount::Writer,
        json!({"policy_dn": format!("cn=missing,{}", server.base_dn)}),
    )
    .await;
    let report = wrong.test_connection().await.unwrap();
    let policy_check = report
        .checks
        .iter()
        .find(|c| c.name == "default password policy readable")
        .expect("a policy check");
    assert_eq!(policy_check.status, CheckStatus::Failed, "{report:#?}");
    assert!(policy_check.advice.is_some());
}
