//! Security of the listener, against the real binary: brute-force protection on everything
//! that takes a token — wrong tokens from one address lock it out (429 with Retry-After,
//! before any verify), for the API, the workstation API and the console's sign-in alike, and
//! the lockout is logged — and HTTPS with a provided certificate.

use latchkey_tests::console::{ConsoleClient, csrf_of};
use latchkey_tests::server::{Db, Options, Server, Tls, binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_lock_the_address_out_of_the_api_and_the_console() {
    let server = Server::start_with(
        Db::Sqlite,
        Options {
            env: vec![
                ("LATCHKEY_AUTH_MAX_FAILURES", "3".into()),
                ("LATCHKEY_AUTH_LOCKOUT_SECONDS", "600".into()),
            ],
            ..Options::default()
        },
    )
    .await;
    let (tenant, token) = server.tenant_with_admin("brute", "admin").await;
    let path = format!("/api/v1/tenants/{tenant}/employees");

    // No token is not a guess: it is not counted.
    for _ in 0..5 {
        let answer = server
            .http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    // Wrong tokens are, whichever API they are sent to.
    let (status, _) = server.call("GET", &path, "lk_wrong", None).await;
    assert_eq!(status, 401);
    let (status, _) = server
        .call("GET", "/api/v1/client/me", &format!("{token}x"), None)
        .await;
    assert_eq!(status, 403, "a workstation's wrong token");
    let (status, _) = server.call("GET", &path, &format!("{token}y"), None).await;
    assert_eq!(status, 401);

    // The address is now refused, even with the right token, and told when to come back.
    let answer = server
        .http
        .get(format!("{}{path}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    let retry: u64 = answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["retry_after"], retry);
    assert!(problem["detail"].as_str().unwrap().contains("try again"));

    // The console's sign-in is locked too.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/console/sign-in", server.url))
        .send()
        .await
        .unwrap();
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = csrf_of(&form.text().await.unwrap()).unwrap();
    let signed = http
        .post(format!("{}/console/sign-in", server.url))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 429);
    assert!(
        signed
            .headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("latchkey-session"))
    );
    assert!(
        signed
            .text()
            .await
            .unwrap()
            .contains("Too many sign-ins from your address failed")
    );

    // Logged once, with the address, and never with a token.
    let log = server.log();
    assert_eq!(
        log.matches("locked out an address after repeated failed authentications")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("127.0.0.1"));
    assert!(!log.contains(&token));
}

/// A CA and a certificate it issued for 127.0.0.1 and localhost, written into `dir`.
fn certificates(dir: &std::path::Path) -> Tls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Latchkey test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let cert_file = dir.join("server.pem");
    let key_file = dir.join("server.key");
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    Tls {
        cert_file,
        key_file,
        ca_pem: ca_cert.pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_https_with_the_provided_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = certificates(dir.path());
    let server = Server::start_with(
        Db::Sqlite,
        Options {
            tls: Some(tls.clone()),
            ..Options::default()
        },
    )
    .await;
    assert!(server.url.starts_with("https://127.0.0.1:"));

    // The API and the console answer over TLS, verified against the CA.
    let (tenant, token) = server.tenant_with_admin("tls", "admin").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut console = ConsoleClient::sign_in_with(http, &server.url, &token).await;
    let page = console.get(&format!("/console/t/{tenant}/employees")).await;
    assert_eq!(page.status, 200);
    assert!(
        server.log().contains("tls=true"),
        "the start-up log says HTTPS"
    );

    // Plain HTTP on the same port gets no answer; a client that does not trust the CA is
    // refused by its own verification.
    let plain = server.url.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(answer.is_err() || !answer.unwrap().status().is_success());
    let untrusting = reqwest::Client::new()
        .get(format!("{}/healthz", server.url))
        .send()
        .await;
    assert!(
        untrusting.is_err(),
        "a client without the CA must not connect"
    );
}

#[test]
fn a_certificate_that_cannot_be_used_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let tls = certificates(dir.path());
    let run = |cert: &std::path::Path, key: &std::path::Path| {
        let output = std::process::Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}/db", dir.path().display()))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env_remove("LATCHKEY_MASTER_KEY")
            .env_remove("LATCHKEY_BOOTSTRAP_TOKEN")
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = run(&dir.path().join("nope.pem"), &tls.key_file);
    assert!(missing.contains("nope.pem"), "{missing}");
    let swapped = run(&tls.key_file, &tls.cert_file);
    assert!(swapped.contains("holds no certificate"), "{swapped}");
    let only_cert = std::process::Command::new(binary())
        .args(["serve", "--tls-cert"])
        .arg(&tls.cert_file)
        .output()
        .unwrap();
    assert!(!only_cert.status.success());
    assert!(
        String::from_utf8_lossy(&only_cert.stderr).contains("--tls-key"),
        "clap names the missing half"
    );
}
