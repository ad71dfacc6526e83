//! The Active Directory connector (`plugins/ad-ldap`) against a real Samba AD DC: every
//! behaviour an admin relies on, proven by what the DC itself does afterwards (a user's bind,
//! an attribute read as Administrator, a modify the DC refuses).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use latchkey::runtime::CallError;
use latchkey::runtime::ConnectorInstance;
use latchkey::runtime::wit::types::{
    Account, AccountQuery, Check, CheckStatus, ConnectorError, MatchMode, Report, SetOptions,
    SetStatus, Step, Violation,
};
use latchkey_tests::samba::{ServiceAccount, TestUser, UserSpec, dc, rand_u32, random_password};
use latchkey_tests::{ad_connector, ad_connector_as, find_account, logs};
use ldap3::Mod;
use secrecy::SecretString;
use serde_json::json;

fn reset(unlock: bool, must_change: bool) -> SetOptions {
    SetOptions {
        must_change_at_next_logon: must_change,
        unlock,
        enforce_history: false,
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

/// The connector's view of `user`, found by its sAMAccountName as the Employees page would.
async fn find(connector: &ConnectorInstance, user: &TestUser) -> Account {
    find_account(connector, &user.username).await
}

fn query(text: &str, mode: MatchMode) -> AccountQuery {
    AccountQuery {
        text: text.to_string(),
        mode,
    }
}

fn failed_checks(report: &Report) -> Vec<&Check> {
    report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .collect()
}

fn step<'a>(
    outcome: &'a latchkey::runtime::wit::types::SetOutcome,
    which: &Step,
) -> &'a latchkey::runtime::wit::types::StepOutcome {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_makes_the_new_password_the_one_that_binds() {
    logs();
    let dc = dc();
    let user = dc.create_user("treset", UserSpec::default()).await;
    let ad = ad_connector("t-ad-reset", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    assert_eq!(account.id, user.guid);
    assert_eq!(account.location.as_deref(), Some(user.dn.as_str()));
    assert_eq!(account.principal_name.as_deref(), Some(user.upn.as_str()));
    assert_eq!(
        account.display_name.as_deref(),
        Some(user.display_name.as_str())
    );
    assert!(account.enabled && !account.locked_out);

    let before = ad.password_changed_at(&account).await.unwrap().unwrap();
    let new = random_password();
    let outcome = ad
        .set_password(&account, &secret(&new), reset(false, false))
        .await
        .unwrap();
    assert_eq!(outcome.status, SetStatus::Applied);
    assert!(step(&outcome, &Step::SetPassword).done);

    dc.bind(&user.dn, &new)
        .await
        .expect("the new password binds");
    let old = dc.bind(&user.dn, &user.password).await.unwrap_err();
    assert!(
        old.contains("data 52e"),
        "the old password must fail: {old}"
    );

    // pwdLastSet moved, and the connector reports it as the change's time.
    let after = ad.password_changed_at(&account).await.unwrap().unwrap();
    assert!(
        after >= before && (after - unix_now()).abs() < 120,
        "{before} → {after}"
    );
    assert_eq!(outcome.changed_at, Some(after));

    // What was logged of this connector holds none of the passwords: the user's old and new
    // ones, nor the service account's.
    let lines = logs().lines_with("t-ad-reset");
    assert!(!lines.is_empty(), "the connector's calls are logged");
    let (_, svc_password) = dc.service_account(ServiceAccount::Delegated);
    for line in lines {
        for secret in [new.as_str(), user.password.as_str(), svc_password] {
            assert!(!line.contains(secret), "a password in the log: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_lets_a_locked_out_user_bind_after_the_reset() {
    let dc = dc();
    let user = dc.create_user("tlocked", UserSpec::default()).await;
    // The domain locks an account after 3 bad passwords.
    for _ in 0..3 {
        let refused = dc.bind(&user.dn, "Wrong-Passw0rd").await.unwrap_err();
        assert!(refused.contains("data 52e"), "{refused}");
    }
    let locked = dc.bind(&user.dn, &user.password).await.unwrap_err();
    assert!(
        locked.contains("data 775"),
        "the account must be locked out: {locked}"
    );

    let ad = ad_connector("t-ad-unlock", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    assert!(
        account.locked_out,
        "find-accounts shows the lockout: {account:?}"
    );

    let new = random_password();
    let outcome = ad
        .set_password(&account, &secret(&new), reset(true, false))
        .await
        .unwrap();
    assert!(step(&outcome, &Step::SetPassword).done);
    assert!(step(&outcome, &Step::Unlock).done, "{outcome:?}");
    dc.bind(&user.dn, &new)
        .await
        .expect("unlocked, the new password binds");
    assert_eq!(dc.read(&user.dn, "lockoutTime").await.as_deref(), Some("0"));
    assert!(!find(&ad, &user).await.locked_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_without_unlock_leaves_the_lockout_in_place() {
    let dc = dc();
    let user = dc.create_user("tstays", UserSpec::default()).await;
    for _ in 0..3 {
        let _ = dc.bind(&user.dn, "Wrong-Passw0rd").await;
    }
    let ad = ad_connector("t-ad-nounlock", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    let new = random_password();
    let outcome = ad
        .set_password(&account, &secret(&new), reset(false, false))
        .await
        .unwrap();
    assert!(!outcome.steps.iter().any(|s| s.step == Step::Unlock));
    let refused = dc.bind(&user.dn, &new).await.unwrap_err();
    assert!(refused.contains("data 775"), "still locked out: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_change_sets_pwd_last_set_to_zero() {
    let dc = dc();
    let user = dc.create_user("tmustchg", UserSpec::default()).await;
    let ad = ad_connector("t-ad-mustchange", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    let new = random_password();
    let outcome = ad
        .set_password(&account, &secret(&new), reset(false, true))
        .await
        .unwrap();
    assert!(step(&outcome, &Step::MustChange).done, "{outcome:?}");
    assert_eq!(dc.read(&user.dn, "pwdLastSet").await.as_deref(), Some("0"));
    // AD's answer to a bind with the right password of a user who must change it.
    let refused = dc.bind(&user.dn, &new).await.unwrap_err();
    assert!(refused.contains("data 773"), "{refused}");
    assert_eq!(ad.password_changed_at(&account).await.unwrap(), None);
}

/// Each candidate the connector's check refuses is one the DC refuses too: sent straight to
/// the DC with a bare LDAP modify, it comes back as `0000052D`, and the user's password is
/// unchanged. A candidate the check accepts, the DC accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_password_refuses_exactly_what_the_dc_refuses() {
    let dc = dc();
    let user = dc
        .create_user(
            "tcheck",
            UserSpec {
                display_name: Some("Quentin Marchbanks-Oyelaran"),
                ..Default::default()
            },
        )
        .await;
    let ad = ad_connector("t-ad-check", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    let (svc_dn, svc_password) = dc.service_account(ServiceAccount::Delegated);
    let mut svc = dc.connect_as(svc_dn, svc_password).await.unwrap();

    let cases: Vec<(String, Violation)> = vec![
        ("Ab1-x".into(), Violation::TooShort(7)),
        ("alllowercaseletters".into(), Violation::NotComplex(3)),
        (
            format!("Z9-{}-x", user.username.to_uppercase()),
            Violation::ContainsAccountName,
        ),
        ("Marchbanks-2024!".into(), Violation::ContainsDisplayName),
    ];
    for (candidate, expected) in &cases {
        let violations = ad
            .check_password(&account, &secret(candidate))
            .await
            .unwrap();
        assert_eq!(
            violations,
            vec![expected.clone()],
            "check of a {expected:?} candidate"
        );

        let refused = svc
            .modify(
                &user.dn,
                vec![Mod::Replace(
                    b"unicodePwd".to_vec(),
                    HashSet::from([latchkey_plugin_sdk::unicode_pwd::encode(candidate)]),
                )],
            )
            .await
            .unwrap();
        assert_eq!(
            refused.rc, 19,
            "the DC must refuse a {expected:?} candidate too"
        );
        assert!(refused.text.starts_with("0000052D"), "{}", refused.text);

        // Through the connector, the same refusal is a policy error.
        let error = ad
            .set_password(&account, &secret(candidate), reset(false, false))
            .await
            .unwrap_err();
        let CallError::Connector(ConnectorError::Policy(reasons)) = &error else {
            panic!("{expected:?}: expected a policy error, got {error:?}")
        };
        assert!(!reasons.is_empty());
    }
    dc.bind(&user.dn, &user.password)
        .await
        .expect("every refused candidate left the password as it was");

    let good = random_password();
    assert_eq!(
        ad.check_password(&account, &secret(&good)).await.unwrap(),
        vec![]
    );
    ad.set_password(&account, &secret(&good), reset(false, false))
        .await
        .expect("a candidate the check accepts, the DC accepts");
    dc.bind(&user.dn, &good).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pso_applies_to_its_members_and_the_domain_policy_to_others() {
    let dc = dc();
    let member = dc
        .create_user("tpsomem", UserSpec::in_groups(&[&dc.pso_group_dn]))
        .await;
    let other = dc.create_user("tdomain", UserSpec::default()).await;
    let ad = ad_connector("t-ad-pso", ServiceAccount::Delegated, json!({})).await;

    let pso = ad.get_policy(&find(&ad, &member).await).await.unwrap();
    assert_eq!(
        (pso.min_length, pso.history_length, pso.min_age_seconds),
        (12, 5, 0)
    );
    assert!(pso.source.contains("latchkey-pso"), "{}", pso.source);

    let domain = ad.get_policy(&find(&ad, &other).await).await.unwrap();
    assert_eq!(
        (
            domain.min_length,
            domain.history_length,
            domain.min_age_seconds,
            domain.max_age_seconds,
            domain.lockout_threshold
        ),
        (7, 24, 86_400, Some(42 * 86_400), 3)
    );
    assert_eq!(domain.max_length, 256);
    assert_eq!(domain.complexity.as_ref().map(|c| c.required), Some(3));

    // The PSO's 12 characters: 9 is fine for the domain, too short for the member.
    let nine = "Kp4-Xw9-J";
    let member_account = find(&ad, &member).await;
    assert_eq!(
        ad.check_password(&member_account, &secret(nine))
            .await
            .unwrap(),
        vec![Violation::TooShort(12)]
    );
    assert_eq!(
        ad.check_password(&find(&ad, &other).await, &secret(nine))
            .await
            .unwrap(),
        vec![]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_their_own_password_with_the_right_old_one() {
    let dc = dc();
    // Under the PSO: minimum age 0, so a change can follow the account's creation.
    let user = dc
        .create_user("tchange", UserSpec::in_groups(&[&dc.pso_group_dn]))
        .await;
    let ad = ad_connector("t-ad-change", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;

    let wrong = ad
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
    let outcome = ad
        .change_password(&account, &secret(&user.password), &secret(&new))
        .await
        .unwrap();
    assert_eq!(outcome.status, SetStatus::Applied);
    dc.bind(&user.dn, &new)
        .await
        .expect("the changed password binds");
    assert!(dc.bind(&user.dn, &user.password).await.is_err());

    // History (5 under the PSO) holds for a user's change: back to the first password is refused.
    let error = ad
        .change_password(&account, &secret(&new), &secret(&user.password))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CallError::Connector(ConnectorError::Policy(_))),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_too_soon_under_the_domain_policy_says_how_long_to_wait() {
    let dc = dc();
    // The domain's minimum age is one day, and the account's password was set just now.
    let user = dc.create_user("tyoung", UserSpec::default()).await;
    let ad = ad_connector("t-ad-young", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    let error = ad
        .change_password(
            &account,
            &secret(&user.password),
            &secret(&random_password()),
        )
        .await
        .unwrap_err();
    let CallError::Connector(ConnectorError::Policy(violations)) = &error else {
        panic!("{error:?}")
    };
    let [Violation::TooYoung(left)] = violations.as_slice() else {
        panic!("{violations:?}")
    };
    assert!(
        (86_400 - 600..=86_400).contains(left),
        "about a day left, got {left} s"
    );
    dc.bind(&user.dn, &user.password).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_without_reset_rights_is_told_so_before_and_during_a_reset() {
    let dc = dc();
    let user = dc.create_user("tdenied", UserSpec::default()).await;
    let ad = ad_connector("t-ad-norights", ServiceAccount::WithoutRights, json!({})).await;

    // test-connection reports the missing rights before any reset is tried.
    let report = ad.test_connection().await.unwrap();
    let failed = failed_checks(&report);
    assert!(
        failed
            .iter()
            .any(|c| c.detail.contains("Reset Password") && c.advice.is_some()),
        "{report:#?}"
    );
    for attribute in ["lockoutTime", "pwdLastSet"] {
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.status != CheckStatus::Ok && c.detail.contains(attribute)),
            "{attribute}: {report:#?}"
        );
    }
    let before = dc.read(&user.dn, "pwdLastSet").await;

    let account = find(&ad, &user).await;
    let error = ad
        .set_password(&account, &secret(&random_password()), reset(false, false))
        .await
        .unwrap_err();
    let CallError::Connector(ConnectorError::Denied(info)) = &error else {
        panic!("{error:?}")
    };
    assert!(info.message.contains("Reset Password"), "{}", info.message);
    let raw = info.directory_text.as_deref().unwrap_or_default();
    assert!(raw.contains("insufficient access"), "raw text kept: {raw}");
    assert!(
        !info.message.contains(raw),
        "the raw text is not the message"
    );

    assert_eq!(dc.read(&user.dn, "pwdLastSet").await, before);
    dc.bind(&user.dn, &user.password).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_passes_for_a_delegated_service_account() {
    let ad = ad_connector("t-ad-diag", ServiceAccount::Delegated, json!({})).await;
    let report = ad.test_connection().await.unwrap();
    let failed = failed_checks(&report);
    assert!(failed.is_empty(), "{report:#?}");
    assert!(report.checks.len() >= 4, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_names_a_wrong_bind_password() {
    let dc = dc();
    let (svc_dn, _) = dc.service_account(ServiceAccount::Delegated);
    let ad = ad_connector_as("t-ad-badbind", svc_dn, "Not-the-passw0rd", json!({})).await;
    let report = ad.test_connection().await.unwrap();
    let bind = report
        .checks
        .iter()
        .find(|c| c.status == CheckStatus::Failed)
        .unwrap_or_else(|| panic!("{report:#?}"));
    let text = format!(
        "{} {}",
        bind.detail,
        bind.advice.clone().unwrap_or_default()
    );
    assert!(text.to_lowercase().contains("password"), "{bind:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_history_is_reported_as_unsupported_by_this_dc() {
    // Samba 4.17 does not list LDAP_SERVER_POLICY_HINTS; the reset still lands and the step
    // says history is Latchkey's own.
    let dc = dc();
    let user = dc.create_user("thint", UserSpec::default()).await;
    let ad = ad_connector("t-ad-hint", ServiceAccount::Delegated, json!({})).await;
    let account = find(&ad, &user).await;
    let new = random_password();
    let outcome = ad
        .set_password(
            &account,
            &secret(&new),
            SetOptions {
                enforce_history: true,
                ..reset(false, false)
            },
        )
        .await
        .unwrap();
    let hint = step(&outcome, &Step::HistoryHint);
    assert!(!hint.done && hint.detail.is_some(), "{hint:?}");
    dc.bind(&user.dn, &new).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_accounts_by_every_identifier_and_page_by_page() {
    let dc = dc();
    let prefix = format!("tf{:05x}", rand_u32() & 0xf_ffff);
    let mut users = vec![];
    for _ in 0..5 {
        users.push(dc.create_user(&prefix, UserSpec::default()).await);
    }
    let ad = ad_connector("t-ad-find", ServiceAccount::Delegated, json!({})).await;
    let first = &users[0];
    for text in [
        first.username.clone(),
        first.upn.clone(),
        first.guid.clone(),
        first.username.to_uppercase(),
    ] {
        let page = ad
            .find_accounts(&query(&text, MatchMode::Exact), None, 10)
            .await
            .unwrap();
        assert_eq!(
            page.accounts.iter().map(|a| &a.id).collect::<Vec<_>>(),
            vec![&first.guid],
            "exact {text}"
        );
    }
    let by_name = ad
        .find_accounts(&query(&first.display_name, MatchMode::Contains), None, 10)
        .await
        .unwrap();
    assert_eq!(by_name.accounts.len(), 1, "{by_name:?}");

    // A query with LDAP filter characters is taken literally.
    let odd = ad
        .find_accounts(&query("*)(objectClass=*", MatchMode::Contains), None, 10)
        .await
        .unwrap();
    assert!(odd.accounts.is_empty(), "{odd:?}");

    // Two at a time: every user exactly once, in order, across pages.
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let page = ad
            .find_accounts(&query(&prefix, MatchMode::Prefix), cursor.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.accounts.len() <= 2);
        seen.extend(page.accounts.into_iter().map(|a| a.username));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(seen.len() <= users.len(), "paging does not end: {seen:?}");
    }
    let mut expected: Vec<_> = users.iter().map(|u| u.username.clone()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_scope_finds_members_including_nested_ones_only() {
    let dc = dc();
    let scope = dc.create_group("tscope").await;
    let inner = dc.create_group("tinner").await;
    dc.add_to_group(&scope, &inner).await;
    let direct = dc
        .create_user("tgrpdir", UserSpec::in_groups(&[&scope]))
        .await;
    let nested = dc
        .create_user("tgrpnest", UserSpec::in_groups(&[&inner]))
        .await;
    let outside = dc.create_user("tgrpout", UserSpec::default()).await;
    let ad = ad_connector(
        "t-ad-group",
        ServiceAccount::Delegated,
        json!({"group_dn": scope}),
    )
    .await;
    for (user, in_scope) in [(&direct, true), (&nested, true), (&outside, false)] {
        let page = ad
            .find_accounts(&query(&user.username, MatchMode::Exact), None, 5)
            .await
            .unwrap();
        assert_eq!(
            page.accounts.len(),
            usize::from(in_scope),
            "{}",
            user.username
        );
    }
}
