//! Capabilities: a plugin reaches only what its manifest requests and its tenant grants, and
//! an import outside that is refused with an error naming the capability.

use latchkey::capabilities::Capability;
use latchkey::runtime::wit::types::{CheckStatus, ConnectorError};
use latchkey::runtime::{CallError, CapabilityDenied, PluginError};
use latchkey_tests::{instance_with, logs, settings};
use secrecy::SecretString;
use serde_json::json;

use crate::account;

fn denied(error: &CallError) -> &CapabilityDenied {
    match error {
        CallError::Plugin(PluginError::CapabilityDenied(denied)) => denied,
        other => panic!("expected a capability denial, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_but_not_granted_is_refused_naming_the_capability() {
    // test-ungranted's manifest requests log and ldap; this tenant grants only log.
    let guest = instance_with(
        "test-ungranted",
        settings("t-ungranted", &[Capability::Log]),
    )
    .await;
    let error = guest
        .test_connection()
        .await
        .expect_err("ldap is not granted");
    let denial = denied(&error);
    assert_eq!(denial.capability, Capability::Ldap);
    assert_eq!(denial.function, "ldap.open");
    assert!((denial.requested, denial.granted) == (true, false));
    assert_eq!(
        error.to_string(),
        "the plugin called `ldap.open`, but the `ldap` capability is not granted to this \
         connector by the tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_but_not_requested_is_refused_too() {
    // The tenant grants everything; the manifest does not request graph or config.
    let guest = instance_with("test-ungranted", settings("t-overgrant", &Capability::ALL)).await;
    let error = guest
        .get_policy(&account("frank"))
        .await
        .expect_err("graph not requested");
    let denial = denied(&error);
    assert_eq!(
        (denial.capability, denial.function),
        (Capability::Graph, "graph.send")
    );
    assert!(
        error
            .to_string()
            .contains("`graph` capability is not requested in its manifest")
    );

    let error = guest
        .check_password(&account("frank"), &SecretString::from("x"))
        .await
        .expect_err("config not requested");
    let PluginError::CapabilityDenied(denial) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (denial.capability, denial.function),
        (Capability::Config, "config.get")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_capability_reaches_the_host() {
    // With ldap granted, the call reaches the host's LDAP side, which answers that this
    // connector has no server configured: the guest sees a typed ldap error, not a denial.
    let guest = instance_with("test-ungranted", settings("t-granted", &Capability::ALL)).await;
    let error = guest
        .test_connection()
        .await
        .expect_err("no LDAP server configured");
    let CallError::Connector(ConnectorError::Internal(info)) = &error else {
        panic!("{error:?}")
    };
    assert!(info.message.contains("NotConfigured"), "{}", info.message);
    assert!(info.message.contains("bind_password"), "{}", info.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_log_work_when_granted_and_are_tagged() {
    logs();
    let mut echo_settings = settings("t-config", &[Capability::Log, Capability::Config]);
    echo_settings.config = json!({"greeting": "hello", "port": 636})
        .as_object()
        .unwrap()
        .clone();
    let echo = instance_with("test-echo", echo_settings).await;
    assert_eq!(echo.effective_capabilities().to_string(), "log, config");
    let report = echo.test_connection().await.unwrap();
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].status, CheckStatus::Ok);
    assert!(
        report.checks[0]
            .detail
            .starts_with("greeting = hello; all = ")
    );
    assert!(report.checks[0].detail.contains(r#""port":636"#));
    let lines = logs().lines_with("tenant=t-config");
    assert!(
        lines.iter().any(|l| l.contains("test-connection called")
            && l.contains("plugin=test-echo")
            && l.contains("version=0.1.0")
            && l.contains("connector=t-config-connector")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_without_the_grant_is_refused() {
    let echo = instance_with("test-echo", settings("t-nolog", &[Capability::Config])).await;
    let error = echo.test_connection().await.expect_err("log not granted");
    assert_eq!(denied(&error).capability, Capability::Log);
}
