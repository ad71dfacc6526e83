//! The admin console over plain HTTP, against the real binary: signing in and out, what the
//! session cookie is, the security headers, CSRF on the sign-in form, tenants and admins, and
//! that revoking an admin ends their session. (The browser tests are in `console.rs`.)

use latchkey_tests::console::{ConsoleClient, csrf_of};
use latchkey_tests::server::{Db, Server};
use serde_json::json;

fn header_values(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_gives_a_strict_session_cookie_and_sign_out_ends_it() {
    let server = Server::start(Db::Sqlite).await;
    let (tenant, token) = server.tenant_with_admin("signin", "admin").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Not signed in: every page sends the browser to sign in, and back afterwards.
    let page = http
        .get(format!("{}/console/t/{tenant}/employees?q=x", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()["location"],
        "/console/sign-in?next=%2Fconsole%2Ft%2F".to_string() + &tenant + "%2Femployees%3Fq%3Dx"
    );

    // The sign-in page: a double-submit CSRF cookie, and every security header.
    let form = http
        .get(format!("{}/console/sign-in", server.url))
        .send()
        .await
        .unwrap();
    let cookies = header_values(&form, "set-cookie");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookies[0].contains(attribute), "{attribute}: {cookies:?}");
    }
    let csp = form.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(form.headers()["x-frame-options"], "DENY");
    assert_eq!(form.headers()["x-content-type-options"], "nosniff");
    assert_eq!(form.headers()["cache-control"], "no-store");

    // A wrong token: refused on the page, no session.
    let mut client = ConsoleClient {
        base: server.url.clone(),
        http: http.clone(),
        cookies: Vec::new(),
        csrf: String::new(),
    };
    let html = client.get("/console/sign-in").await.body;
    let csrf = csrf_of(&html).unwrap();
    let wrong = client
        .post_form_raw(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", &format!("{token}x"))],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("That token is not valid"),
        "{}",
        wrong.body
    );
    assert!(
        !client
            .cookies
            .iter()
            .any(|(n, _)| n == "__Host-latchkey-session")
    );

    // The right token without the form's CSRF value (a login CSRF attempt): refused.
    let forged = client
        .post_form_raw("/console/sign-in", &[("csrf", "forged"), ("token", &token)])
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        !client
            .cookies
            .iter()
            .any(|(n, _)| n == "__Host-latchkey-session")
    );

    // Signed in: the session cookie is HttpOnly, Secure, SameSite=Strict, and holds no token.
    let mut client = ConsoleClient::sign_in(&server.url, &token).await;
    let (_, session) = client
        .cookies
        .iter()
        .find(|(n, _)| n == "__Host-latchkey-session")
        .unwrap()
        .clone();
    assert!(!token.contains(&session) && !session.contains(&token));
    let page = client.get(&format!("/console/t/{tenant}/employees")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("signin admin"),
        "the page says who is signed in"
    );
    assert!(!page.body.contains(&token), "no page shows the token");
    let missing = client.get("/console/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("This page does not exist"),
        "an unknown console address is a page, not JSON: {}",
        missing.body
    );

    // Signing out needs the CSRF token too, then ends the session on the server.
    let refused = client.post_form_raw("/console/sign-out", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        client
            .get(&format!("/console/t/{tenant}/employees"))
            .await
            .status,
        200
    );
    let out = client.post_form("/console/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    // Even a browser that kept the old cookie is signed out.
    client
        .cookies
        .push(("__Host-latchkey-session".into(), session.clone()));
    let after = client.get(&format!("/console/t/{tenant}/employees")).await;
    assert_eq!(after.status, 303, "{}", after.body);

    assert!(!server.log().contains(&token), "the token is in the log");
    assert!(
        !server.log().contains(&session),
        "the session is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_creates_a_tenant_and_its_owner_adds_and_revokes_admins() {
    let server = Server::start(Db::Sqlite).await;
    let mut operator = ConsoleClient::sign_in(&server.url, &server.operator_token).await;

    // The operator's start page is the tenant list; a tenant is created from it.
    let created = operator
        .post_form("/console/tenants", &[("name", "Globex")])
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let to = created.location.unwrap();
    let tenant = to
        .strip_prefix("/console/t/")
        .and_then(|rest| rest.strip_suffix("/employees"))
        .expect("the new tenant's employees")
        .to_string();
    let list = operator.get("/console/tenants").await;
    assert!(list.body.contains("Globex") && list.body.contains(&tenant));
    let empty = operator
        .post_form("/console/tenants", &[("name", " ")])
        .await;
    assert_eq!(empty.status, 422, "{}", empty.body);

    // The operator adds the owner: the token is on that page once.
    let owner_page = operator
        .post_form(
            &format!("/console/t/{tenant}/admins"),
            &[("name", "Olga"), ("role", "owner")],
        )
        .await;
    assert_eq!(owner_page.status, 201, "{}", owner_page.body);
    let owner_token = token_on(&owner_page.body);
    let again = operator.get(&format!("/console/t/{tenant}/admins")).await;
    assert!(again.body.contains("Olga") && !again.body.contains(&owner_token));

    // The owner adds a helpdesk admin, who signs in.
    let mut owner = ConsoleClient::sign_in(&server.url, &owner_token).await;
    let bad = owner
        .post_form(
            &format!("/console/t/{tenant}/admins"),
            &[("name", "Hal"), ("role", "superuser")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.body
            .contains("must be one of owner, admin, helpdesk, auditor")
    );
    let helpdesk_page = owner
        .post_form(
            &format!("/console/t/{tenant}/admins"),
            &[("name", "Hal"), ("role", "helpdesk")],
        )
        .await;
    assert_eq!(helpdesk_page.status, 201);
    let helpdesk_token = token_on(&helpdesk_page.body);
    let mut helpdesk = ConsoleClient::sign_in(&server.url, &helpdesk_token).await;

    // A helpdesk admin has no Admins page and cannot add one.
    let page = helpdesk
        .get(&format!("/console/t/{tenant}/employees"))
        .await;
    assert!(!page.body.contains(&format!("/console/t/{tenant}/admins")));
    assert_eq!(
        helpdesk
            .get(&format!("/console/t/{tenant}/admins"))
            .await
            .status,
        403
    );
    let refused = helpdesk
        .post_form(
            &format!("/console/t/{tenant}/admins"),
            &[("name", "Mallory"), ("role", "owner")],
        )
        .await;
    assert_eq!(refused.status, 403);

    // Another tenant is invisible to them (404, as if it did not exist).
    let other = server
        .expect(
            201,
            "POST",
            "/api/v1/tenants",
            &server.operator_token,
            Some(json!({"name": "Initech"})),
        )
        .await;
    let other = other["id"].as_str().unwrap();
    assert_eq!(
        helpdesk
            .get(&format!("/console/t/{other}/employees"))
            .await
            .status,
        404
    );

    // The owner revokes the helpdesk admin: their session ends at once.
    let admins = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{tenant}/admins"),
            &owner_token,
            None,
        )
        .await;
    let hal = admins["admins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Hal")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = owner
        .post_form(&format!("/console/t/{tenant}/admins/{hal}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303);
    let after = helpdesk
        .get(&format!("/console/t/{tenant}/employees"))
        .await;
    assert_eq!(after.status, 303, "a revoked admin is signed out");
    assert!(!server.log().contains(&helpdesk_token));
}

/// The token on the page that answered "add an admin".
fn token_on(html: &str) -> String {
    let marker = "id=\"new-token\" readonly value=\"";
    let start = html.find(marker).expect("the new token is shown") + marker.len();
    let rest = &html[start..];
    rest[..rest.find('"').unwrap()].to_string()
}
