//! The host's `ldap` capability (`capabilities::ldap::LdapPool`) against a real Samba AD DC:
//! TLS and trust, binds, searches with paging and caps, failures of every kind, the pool and
//! reconnects.
//!
//! Needs a running DC: `tests/services/samba-dc start DIR` (as root), then
//! `LATCHKEY_SAMBA_ENV=DIR/env cargo test -p latchkey --test ldap_capability`. Without it every
//! test fails, saying so. The tests never change a password: modifies here are refused by the
//! DC (rights) or never reach it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use latchkey::capabilities::ldap::{
    BinaryAttribute, ConnectorTags, LdapDirectory, LdapError, LdapPool, LdapSettings, Modification,
    Scope, SearchLimits, SearchRequest, Secrets,
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The settings of the running DC, from `$LATCHKEY_SAMBA_ENV`.
struct Dc(HashMap<String, String>);

impl Dc {
    fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("{key} is missing from $LATCHKEY_SAMBA_ENV"))
    }

    fn secret_file(&self, key: &str) -> SecretString {
        let path = self.get(key);
        let password = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {key}={path}: {e}"));
        SecretString::from(password)
    }
}

fn dc() -> &'static Dc {
    static DC: OnceLock<Dc> = OnceLock::new();
    DC.get_or_init(|| {
        let path = std::env::var("LATCHKEY_SAMBA_ENV").unwrap_or_else(|_| {
            panic!(
                "LATCHKEY_SAMBA_ENV is not set: these tests need a running Samba AD DC. Start one \
                 with `tests/services/samba-dc start DIR` (as root), then run them with \
                 LATCHKEY_SAMBA_ENV=DIR/env"
            )
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "LATCHKEY_SAMBA_ENV={path} cannot be read ({e}): start the DC with \
                 `tests/services/samba-dc start DIR` and point LATCHKEY_SAMBA_ENV at DIR/env"
            )
        });
        Dc(text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_string(),
                    v.trim().trim_matches('\'').to_string(),
                )
            })
            .collect())
    })
}

/// The service account on verified LDAPS, changed by `changes` (a null removes a key).
fn config(changes: Value) -> Map<String, Value> {
    let dc = dc();
    let mut config = json!({
        "url": dc.get("LDAPS_URL"),
        "ca_file": dc.get("CA_FILE"),
        "bind_dn": dc.get("SVC_DN"),
        "timeout_ms": 5000,
    })
    .as_object()
    .unwrap()
    .clone();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            config.remove(key);
        } else {
            config.insert(key.clone(), value.clone());
        }
    }
    config
}

/// The capability's log lines in each test's output (shown when it fails, or with --nocapture).
fn show_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("latchkey=debug")
        .with_test_writer()
        .try_init();
}

fn secrets() -> Secrets {
    [("bind_password", dc().secret_file("SVC_PASSWORD_FILE"))]
        .into_iter()
        .collect()
}

fn tags() -> ConnectorTags {
    ConnectorTags::new("test-tenant", "ldap-capability")
}

fn pool(changes: Value) -> LdapPool {
    show_logs();
    LdapPool::from_connector(&config(changes), &secrets(), tags()).expect("valid settings")
}

fn search(base: &str, filter: &str, attributes: &[&str]) -> SearchRequest {
    SearchRequest {
        base: base.to_string(),
        scope: Scope::Subtree,
        filter: filter.to_string(),
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        binary_attributes: Vec::new(),
        size_limit: 0,
        page_size: 0,
        cookie: None,
        controls: Vec::new(),
    }
}

fn text_values<'e>(entry: &'e latchkey::capabilities::ldap::Entry, name: &str) -> Vec<&'e str> {
    entry
        .attributes
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case(name))
        .flat_map(|a| a.values.iter().map(String::as_str))
        .collect()
}

async fn expect_open_error(directory: &dyn LdapDirectory) -> LdapError {
    match directory.open().await {
        Ok(_) => panic!("the session opened, but it should have failed"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn binds_and_reads_the_root_dse_over_ldaps_verified_against_the_ca() {
    let pool = pool(json!({}));
    let started = Instant::now();
    let mut session = pool.open().await.expect("connect and bind");
    let connect = started.elapsed();
    let root = session
        .root_dse(vec![
            "defaultNamingContext".into(),
            "supportedControl".into(),
        ])
        .await
        .expect("root DSE");
    assert!(
        text_values(&root, "defaultNamingContext")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(dc().get("BASE_DN"))),
        "{root:?}"
    );
    assert!(text_values(&root, "supportedControl").contains(&"1.2.840.113556.1.4.319"));
    drop(session);
    assert_eq!(
        pool.idle_connections(),
        1,
        "the connection went back to the pool"
    );

    let mut timings = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut session = pool.open().await.expect("a pooled session");
        let found = session
            .search(search(
                dc().get("ALICE_DN"),
                "(objectClass=user)",
                &["sAMAccountName"],
            ))
            .await
            .expect("search");
        timings.push(started.elapsed());
        assert_eq!(text_values(&found.entries[0], "sAMAccountName"), ["alice"]);
    }
    assert_eq!(
        pool.idle_connections(),
        1,
        "one connection served every session"
    );
    timings.sort();
    println!(
        "connect + TLS + bind: {connect:?}; pooled open + search: median {:?} (min {:?})",
        timings[2], timings[0]
    );
}

#[tokio::test]
async fn a_ca_file_that_did_not_issue_the_dc_certificate_is_a_tls_error() {
    let unrelated = "/etc/ssl/certs/ISRG_Root_X1.pem";
    assert!(
        std::path::Path::new(unrelated).exists(),
        "{unrelated} is missing: install ca-certificates"
    );
    let pool = pool(json!({"ca_file": unrelated}));
    let LdapError::Tls(message) = expect_open_error(&pool).await else {
        panic!("not a TLS error");
    };
    assert!(
        message.contains("is not signed by a CA in ca_file=/etc/ssl/certs/ISRG_Root_X1.pem")
            && message.contains("set ca_file to"),
        "{message}"
    );
}

#[tokio::test]
async fn tls_verify_false_connects_to_a_certificate_nobody_trusts() {
    let pool = pool(json!({"ca_file": null, "tls_verify": false}));
    assert!(!pool.settings().verifies_certificate());
    let mut session = pool.open().await.expect("connects without verification");
    let root = session
        .root_dse(vec!["defaultNamingContext".into()])
        .await
        .unwrap();
    assert!(!text_values(&root, "defaultNamingContext").is_empty());
}

#[tokio::test]
async fn a_wrong_bind_password_is_bind_failed_with_the_directory_code() {
    let wrong = "Wrong-Password-123";
    let bad_secrets: Secrets = [("bind_password", SecretString::from(wrong))]
        .into_iter()
        .collect();
    // The service accounts are under a policy without lockout, so a bad bind is harmless.
    let pool = LdapPool::from_connector(&config(json!({})), &bad_secrets, tags()).unwrap();
    let LdapError::BindFailed(message) = expect_open_error(&pool).await else {
        panic!("not a bind failure");
    };
    assert!(message.contains("data 52e"), "{message}");
    assert!(message.contains("service account"), "{message}");
    assert!(!message.contains(wrong), "{message}");

    let pool = pool_ok();
    let user = dc().get("NORESET_DN");
    let result = pool.open_as_user(user, &SecretString::from(wrong)).await;
    let Err(LdapError::BindFailed(message)) = result else {
        panic!("a user bind with a wrong password did not fail as bind-failed");
    };
    assert!(message.contains("data 52e"), "{message}");
    assert!(!message.contains(wrong), "{message}");

    let empty = pool.open_as_user(user, &SecretString::from("")).await;
    assert!(matches!(empty, Err(LdapError::BindFailed(m)) if m.contains("empty")));
}

fn pool_ok() -> LdapPool {
    pool(json!({}))
}

#[tokio::test]
async fn a_user_session_binds_as_the_user_and_is_never_pooled() {
    let pool = pool_ok();
    let mut session = pool
        .open_as_user(
            dc().get("NORESET_DN"),
            &dc().secret_file("NORESET_PASSWORD_FILE"),
        )
        .await
        .expect("bind as the user");
    session
        .root_dse(vec![])
        .await
        .expect("root DSE as the user");
    drop(session);
    assert_eq!(pool.idle_connections(), 0);
}

#[tokio::test]
async fn plain_ldap_is_refused_and_starttls_works_verified() {
    let plain =
        LdapSettings::from_connector(&config(json!({"url": "ldap://127.0.0.1:389"})), &secrets())
            .expect_err("plain LDAP must be refused");
    assert!(plain.message().contains("set `starttls: true`"), "{plain}");

    let pool = pool(json!({"url": "ldap://127.0.0.1:389", "starttls": true}));
    let mut session = pool.open().await.expect("StartTLS, verified, and bind");
    let root = session
        .root_dse(vec!["defaultNamingContext".into()])
        .await
        .unwrap();
    assert!(!text_values(&root, "defaultNamingContext").is_empty());

    let wrong_ca = pool_with_ca_for_starttls("/etc/ssl/certs/ISRG_Root_X1.pem");
    assert!(matches!(
        expect_open_error(&wrong_ca).await,
        LdapError::Tls(_)
    ));
}

fn pool_with_ca_for_starttls(ca: &str) -> LdapPool {
    pool(json!({"url": "ldap://127.0.0.1:389", "starttls": true, "ca_file": ca}))
}

#[tokio::test]
async fn a_paged_search_walks_the_pages_with_cookies() {
    let pool = pool_ok();
    let mut session = pool.open().await.unwrap();
    let base = dc().get("BASE_DN");
    let all = session
        .search(search(base, "(objectClass=user)", &["sAMAccountName"]))
        .await
        .unwrap();
    assert_eq!(all.outcome.code, 0);
    assert!(all.entries.len() >= 5, "{} users", all.entries.len());
    assert_eq!(all.next_cookie, None);

    let mut names = Vec::new();
    let mut cookie = None;
    let mut pages = 0;
    loop {
        let mut request = search(base, "(objectClass=user)", &["sAMAccountName"]);
        request.page_size = 2;
        request.cookie = cookie.take();
        let page = session.search(request).await.expect("a page");
        assert_eq!(page.outcome.code, 0, "{:?}", page.outcome);
        assert!(page.entries.len() <= 2);
        pages += 1;
        names.extend(page.entries.iter().map(|e| e.dn.clone()));
        match page.next_cookie {
            Some(next) => cookie = Some(next),
            None => break,
        }
        // Two entries a page: more pages than that means the cookies do not move on.
        assert!(
            pages <= all.entries.len().div_ceil(2) + 1,
            "paging does not end"
        );
    }
    assert!(pages >= 2, "{pages} pages");
    let mut expected: Vec<_> = all.entries.iter().map(|e| e.dn.clone()).collect();
    expected.sort();
    names.sort();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn result_codes_are_answers_and_binary_values_come_back_as_bytes() {
    let pool = pool_ok();
    let mut session = pool.open().await.unwrap();
    let base = dc().get("BASE_DN");

    let mut limited = search(base, "(objectClass=user)", &["cn"]);
    limited.size_limit = 1;
    let limited = session.search(limited).await.unwrap();
    assert_eq!(
        limited.outcome.code, 4,
        "sizeLimitExceeded: {:?}",
        limited.outcome
    );
    assert_eq!(limited.entries.len(), 1);

    let missing = session
        .search(search(
            &format!("OU=Nowhere,{base}"),
            "(objectClass=*)",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(
        missing.outcome.code, 32,
        "noSuchObject: {:?}",
        missing.outcome
    );
    assert!(missing.entries.is_empty());

    let mut alice = search(
        dc().get("ALICE_DN"),
        "(objectClass=user)",
        &["sAMAccountName"],
    );
    alice.scope = Scope::Base;
    alice.binary_attributes = vec!["objectSid".into(), "sAMAccountName;binary".into()];
    alice.attributes.push("displayName".into());
    let found = session.search(alice).await.unwrap();
    let entry = &found.entries[0];
    assert_eq!(text_values(entry, "displayName"), ["Alice Example"]);
    let binary: Vec<_> = entry
        .binary_attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert!(binary.contains(&"objectSid"), "{binary:?}");
    let sam = entry
        .binary_attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("sAMAccountName"))
        .expect("sAMAccountName as bytes, since it was asked for so");
    assert_eq!(sam.values, vec![b"alice".to_vec()]);
    let sid = &entry
        .binary_attributes
        .iter()
        .find(|a| a.name == "objectSid")
        .unwrap()
        .values[0];
    assert_eq!(sid[0], 1, "a binary SID starts with revision 1");
}

#[tokio::test]
async fn the_host_caps_stop_a_search_that_brings_back_too_much() {
    let settings = LdapSettings::from_connector(&config(json!({})), &secrets())
        .unwrap()
        .with_search_limits(SearchLimits {
            max_entries: 2,
            max_bytes: 1 << 20,
        });
    let pool = LdapPool::new(settings, tags());
    let mut session = pool.open().await.unwrap();
    let base = dc().get("BASE_DN");
    let LdapError::LimitExceeded(message) = session
        .search(search(base, "(objectClass=user)", &["cn"]))
        .await
        .expect_err("more than 2 users")
    else {
        panic!("not limit-exceeded");
    };
    assert!(message.contains("more than 2 entries"), "{message}");
    // The search was abandoned; the connection goes on.
    session
        .root_dse(vec![])
        .await
        .expect("the session still works");
    let mut few = search(base, "(objectClass=user)", &["cn"]);
    few.size_limit = 2;
    assert_eq!(session.search(few).await.unwrap().outcome.code, 4);

    let settings = LdapSettings::from_connector(&config(json!({})), &secrets())
        .unwrap()
        .with_search_limits(SearchLimits {
            max_entries: 1000,
            max_bytes: 2000,
        });
    let pool = LdapPool::new(settings, tags());
    let mut session = pool.open().await.unwrap();
    let LdapError::LimitExceeded(message) = session
        .search(search(base, "(objectClass=*)", &[]))
        .await
        .expect_err("more than 2000 bytes")
    else {
        panic!("not limit-exceeded");
    };
    assert!(message.contains("2000 bytes"), "{message}");
}

#[tokio::test]
async fn malformed_requests_are_refused_before_they_are_sent() {
    let pool = pool_ok();
    let mut session = pool.open().await.unwrap();
    let base = dc().get("BASE_DN");
    for filter in [
        "(objectClass=user",
        "objectClass=user)(",
        "(&(cn=a)(sn=b)))",
        "(cn=a(b)",
    ] {
        let result = session.search(search(base, filter, &[])).await;
        let Err(LdapError::InvalidRequest(message)) = result else {
            panic!("the filter {filter:?} was not refused: {result:?}");
        };
        assert!(message.contains("RFC 4515"), "{message}");
    }
    let change = || {
        vec![Modification::Replace(BinaryAttribute {
            name: "description".into(),
            values: vec![b"x".to_vec()],
        })]
    };
    let result = session.modify("alice".into(), change(), vec![]).await;
    assert!(
        matches!(result, Err(LdapError::InvalidRequest(_))),
        "{result:?}"
    );
    let result = session
        .extended("passwordModify".into(), None, vec![])
        .await;
    assert!(
        matches!(result, Err(LdapError::InvalidRequest(_))),
        "{result:?}"
    );

    // A well-formed modify the service account has no right to: an answer, not an error.
    let answer = session
        .modify(dc().get("ALICE_DN").into(), change(), vec![])
        .await
        .expect("an answer");
    assert_eq!(answer.code, 50, "insufficientAccessRights: {answer:?}");
    // An extended operation the DC does not know: an answer too.
    let answer = session
        .extended("1.3.6.1.4.1.4203.1.11.3".into(), None, vec![])
        .await
        .expect("an answer");
    assert_ne!(answer.outcome.code, 0, "{answer:?}");
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_unavailable_at_once() {
    let pool = pool(json!({"url": "ldaps://127.0.0.1:1"}));
    let started = Instant::now();
    let LdapError::Unavailable(message) = expect_open_error(&pool).await else {
        panic!("not unavailable");
    };
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains("127.0.0.1:1") && message.contains("connection refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_that_accepts_but_never_answers_times_out() {
    // The kernel completes the TCP handshake for a listener that never accepts: the TLS
    // handshake then waits for an answer that never comes, as with a stopped DC.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldaps://{}", silent.local_addr().unwrap());
    let pool = pool(json!({"url": url, "timeout_ms": 300}));
    let started = Instant::now();
    let LdapError::Timeout(message) = expect_open_error(&pool).await else {
        panic!("not a timeout");
    };
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1000),
        "{elapsed:?}"
    );
    assert!(message.contains("within 300 ms"), "{message}");
}

#[tokio::test]
async fn a_full_pool_makes_the_next_open_wait_then_time_out() {
    let pool = pool(json!({"pool_size": 1, "timeout_ms": 400}));
    let first = pool.open().await.unwrap();
    let started = Instant::now();
    let LdapError::Timeout(message) = expect_open_error(&pool).await else {
        panic!("not a timeout");
    };
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(message.contains("pool_size"), "{message}");
    drop(first);
    let mut second = pool.open().await.expect("the place came free");
    second.root_dse(vec![]).await.unwrap();
}

/// A TCP proxy in front of the DC whose connections the test can cut.
struct Proxy {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepted: Arc<Mutex<usize>>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted: Arc<Mutex<usize>> = Arc::default();
        let (l, a) = (links.clone(), accepted.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                *a.lock().unwrap() += 1;
                l.lock().unwrap().push(tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }));
            }
        });
        Proxy {
            addr,
            links,
            accepted,
            _accept: accept,
        }
    }

    /// Cuts every connection through the proxy (both sides are closed).
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

// Current-thread runtime (the default): after `cut()`, the client's connection task learns of
// the cut only when the test awaits, so the operation after it meets the broken connection.
#[tokio::test]
async fn a_connection_that_died_is_replaced_and_only_reads_are_repeated() {
    let proxy = Proxy::start("127.0.0.1:636".parse().unwrap()).await;
    let pool = pool(json!({"url": format!("ldaps://{}", proxy.addr)}));
    let root = || vec!["defaultNamingContext".to_string()];

    pool.open().await.unwrap().root_dse(root()).await.unwrap();
    assert_eq!((pool.idle_connections(), proxy.accepted()), (1, 1));

    // Killed while idle: the next open notices and connects anew.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut session = pool.open().await.expect("a new connection");
    session
        .root_dse(root())
        .await
        .expect("works after reconnect");
    assert_eq!(proxy.accepted(), 2);
    drop(session);

    // Killed under a session that took it from the pool: the read is repeated once.
    let mut session = pool.open().await.unwrap();
    proxy.cut();
    let found = session
        .search(search(
            dc().get("ALICE_DN"),
            "(objectClass=user)",
            &["sAMAccountName"],
        ))
        .await
        .expect("the search is repeated on a new connection");
    assert_eq!(found.entries.len(), 1);
    assert_eq!(proxy.accepted(), 3);

    // Killed before a modify: not repeated, since it may have landed; the next call
    // reconnects.
    proxy.cut();
    let change = vec![Modification::Replace(BinaryAttribute {
        name: "description".into(),
        values: vec![b"x".to_vec()],
    })];
    let result = session
        .modify(dc().get("ALICE_DN").into(), change, vec![])
        .await;
    let Err(LdapError::Unavailable(message)) = result else {
        panic!("a modify on a dead connection: {result:?}");
    };
    assert!(
        message.contains("may or may not have been applied"),
        "{message}"
    );
    assert_eq!(proxy.accepted(), 3, "the modify was not repeated");
    session
        .root_dse(root())
        .await
        .expect("the next call reconnects");
    assert_eq!(proxy.accepted(), 4);
    drop(session);
    assert_eq!(pool.idle_connections(), 1);
}
