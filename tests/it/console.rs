//! The admin console in a real browser: Debian's headless Chromium driven through chromedriver,
//! against the real `latchkey serve` and the real Samba AD DC.
//!
//! - the seed's use case from the browser: sign in, find a locked-out employee, Edit password
//!   (generated, unlock), the change's page, and the delivery turning "delivered" live (server-
//!   sent events, no reload) when `latchkey agent run --once` relays it — then the directory
//!   really has the password the key holds, and the account is unlocked;
//! - live policy feedback as the admin types, the mismatched confirmation beside its field, and
//!   the server's own 422 for it;
//! - CSRF: the browser's session cookie without the form's token is refused, nothing changes;
//! - a helpdesk admin sees no Connectors link, and the page is a 403 naming the role;
//! - screenshots of the main pages (desktop and phone width) for docs/screenshots/.

use latchkey_tests::browser::{Browser, DESKTOP, PHONE};
use latchkey_tests::console::{ConsoleClient, csrf_of};
use latchkey_tests::samba::{TestUser, UserSpec, dc, random_password};
use latchkey_tests::server::{Db, Server, agent, stdout_of};
use serde_json::{Value, json};

use crate::server_core::{
    Tenant, add_employee, agent_run_once_with_approval, approved_workstation, register_key,
    tenant_with_ad,
};

const SESSION_COOKIE: &str = "__Host-latchkey-session";

/// A server, a tenant with the AD connector, an employee of it with an active software key.
struct Setup {
    server: Server,
    t: Tenant,
    user: TestUser,
    employee: String,
    key_file: std::path::PathBuf,
    _keys: tempfile::TempDir,
}

impl Setup {
    /// `role` is the role of the admin who signs in (`t.token`).
    async fn new(name: &str, prefix: &str, role: &str) -> Setup {
        let user = dc().create_user(prefix, UserSpec::default()).await;
        let server = Server::start(Db::Sqlite).await;
        let t = tenant_with_ad(&server, name, role).await;
        let employee = add_employee(&server, &t, &user).await;
        let keys = tempfile::tempdir().unwrap();
        let (_, key_file) = register_key(&server, &t, keys.path(), &employee, "active").await;
        Setup {
            server,
            t,
            user,
            employee,
            key_file,
            _keys: keys,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    fn employee_path(&self) -> String {
        format!("/console/t/{}/employees/{}", self.t.id, self.employee)
    }

    /// The password changes of the employee, as the API lists them.
    async fn changes(&self) -> Vec<Value> {
        let list = self
            .server
            .expect(
                200,
                "GET",
                &format!(
                    "/api/v1/tenants/{}/password-changes?employee={}",
                    self.t.id, self.employee
                ),
                &self.t.owner,
                None,
            )
            .await;
        list["changes"].as_array().cloned().unwrap_or_default()
    }
}

/// Signs in through the sign-in page with `token`; the browser lands on the console.
async fn sign_in(browser: &Browser, server: &Server, token: &str, screenshot: Option<&str>) {
    browser
        .goto(&format!("{}/console/sign-in", server.url))
        .await;
    browser.wait_for("input#token").await;
    if let Some(name) = screenshot {
        browser.screenshot(name).await;
    }
    browser.type_into("input#token", token).await;
    browser.click("main form button[type=submit]").await;
    browser.wait_for_url("/console/t/").await;
    let cookies = browser.cookies().await;
    assert!(
        cookies.iter().any(|(name, _)| name == SESSION_COOKIE),
        "the browser kept the Secure session cookie over http://127.0.0.1 (cookies: {:?}); {}",
        cookies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        browser.describe().await
    );
}

/// A plain HTTP console session with the browser's cookies and the page's CSRF token.
async fn http_session(browser: &Browser, server: &Server) -> ConsoleClient {
    let cookies = browser.cookies().await;
    assert!(
        cookies.iter().any(|(name, _)| name == SESSION_COOKIE),
        "the browser has the session cookie: {:?}",
        cookies.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let csrf = browser
        .find("meta[name=csrf-token]")
        .await
        .attr("content")
        .await
        .expect("the CSRF meta tag")
        .expect("the CSRF meta tag has content");
    assert!(!csrf.is_empty());
    ConsoleClient {
        base: server.url.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client"),
        cookies,
        csrf,
    }
}

/// Opens the employee's Edit password dialog.
async fn open_dialog(browser: &Browser, s: &Setup) {
    browser.goto(&s.url(&s.employee_path())).await;
    browser.click("button#edit-password-button").await;
    browser
        .wait_until(
            "the Edit password dialog to open",
            "document.getElementById('edit-password').open",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_use_case_from_the_browser() {
    let dc = dc();
    let s = Setup::new("acme-console", "e2ebrowser", "owner").await;
    // Locked out by bad binds (the domain locks after 3).
    for _ in 0..3 {
        let refused = dc.bind(&s.user.dn, "Wrong-Passw0rd").await.unwrap_err();
        assert!(refused.contains("data 52e"), "{refused}");
    }
    let locked = dc.bind(&s.user.dn, &s.user.password).await.unwrap_err();
    assert!(locked.contains("data 775"), "locked out: {locked}");

    let browser = Browser::start().await;
    sign_in(&browser, &s.server, &s.t.token, Some("sign-in")).await;
    browser.wait_for_url("/employees").await;
    browser.wait_for_text("h1", "Employees").await;

    // Search by name; the user is listed; through to the employee.
    browser.type_into("input#q", &s.user.display_name).await;
    browser.click("form.search button[type=submit]").await;
    browser.wait_for_url("q=").await;
    browser
        .wait_for_text("table.employees", &s.user.username)
        .await;
    browser.screenshot("employees").await;
    browser
        .click(&format!(
            "table.employees a[href$='/employees/{}']",
            s.employee
        ))
        .await;
    browser.wait_for_url(&s.employee_path()).await;
    browser.wait_for_text("h1", &s.user.display_name).await;

    // Edit password: generated, unlock, Save.
    browser.click("button#edit-password-button").await;
    browser
        .wait_until(
            "the Edit password dialog to open",
            "document.getElementById('edit-password').open",
        )
        .await;
    browser.click("input[name=mode][value=generate]").await;
    assert!(browser.is_checked("input[name=mode][value=generate]").await);
    if !browser.is_checked("input[name=unlock]").await {
        browser.click("input[name=unlock]").await;
    }
    assert!(
        browser.is_checked("input[name=unlock]").await,
        "Unlock is checked"
    );
    browser.screenshot("employee-dialog").await;
    browser.click("button#save-password").await;

    // The change's page: applied in the directory, the delivery waiting for the key.
    let change_url = browser
        .wait_for_url(&format!("/console/t/{}/changes/", s.t.id))
        .await;
    browser.wait_for_text("#change-state", "applied").await;
    browser.wait_for_text("#delivery-state", "pending").await;
    let changes = s.changes().await;
    assert_eq!(changes.len(), 1, "one change: {changes:?}");
    let change_id = changes[0]["id"].as_str().unwrap().to_string();
    assert!(
        change_url.contains(&change_id),
        "{change_url} is {change_id}'s page"
    );
    // A mark in this document: it is gone if the page reloads.
    browser
        .execute(
            "window.latchkeyNoReload = 'same document'; return 1;",
            vec![],
        )
        .await
        .expect("marking the page");

    // The workstation relays the envelope while the page waits: it turns "delivered" live.
    let (_agent_log, _) = tokio::join!(
        agent_run_once_with_approval(&s.server, &s.t, &s.key_file),
        browser.wait_for_text_within(
            "#delivery-state",
            "delivered",
            std::time::Duration::from_secs(120)
        ),
    );
    let mark = browser
        .execute("return window.latchkeyNoReload || null;", vec![])
        .await
        .expect("reading the mark");
    assert_eq!(mark, json!("same document"), "the page was not reloaded");
    assert!(
        !browser.text("#delivery-state").await.contains("pending"),
        "the delivery is no longer pending"
    );
    browser.screenshot("change-delivered").await;

    // The directory really changed: the key's password binds, and the account is unlocked.
    let typed = stdout_of(
        &agent(&[
            "type",
            "--key-file",
            s.key_file.to_str().unwrap(),
            "--account",
            &s.user.username,
        ]),
        "agent type",
    );
    let password = typed.trim_end().to_string();
    assert!(
        password.len() >= 20,
        "a generated password of the default length"
    );
    dc.bind(&s.user.dn, &password)
        .await
        .expect("the delivered password binds");
    assert_eq!(
        dc.read(&s.user.dn, "lockoutTime").await.as_deref(),
        Some("0"),
        "unlocked"
    );

    // No page the browser has shown holds it.
    let change_page = browser.source().await;
    assert!(
        !change_page.contains(&password),
        "the change page holds the password"
    );
    browser.goto(&s.url(&s.employee_path())).await;
    browser.wait_for("button#edit-password-button").await;
    assert!(
        !browser.source().await.contains(&password),
        "the employee page holds the password"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_gives_live_policy_feedback_and_a_mismatch_is_shown_beside_the_field() {
    let s = Setup::new("acme-console-policy", "e2epolicy", "helpdesk").await;
    let browser = Browser::start().await;
    sign_in(&browser, &s.server, &s.t.token, None).await;
    open_dialog(&browser, &s).await;
    browser.click("input[name=mode][value=manual]").await;
    browser
        .wait_until(
            "the typed-password fields to show",
            "document.getElementById('password').offsetParent !== null",
        )
        .await;

    // Too short and not complex: one item per unmet rule, each naming the connector.
    browser.type_into("#password", "abc").await;
    browser
        .wait_until(
            "at least two unmet rules listed",
            "document.querySelectorAll('#policy-violations li').length >= 2",
        )
        .await;
    let items = browser
        .execute(
            "return Array.from(document.querySelectorAll('#policy-violations li'))\
             .map(li => [li.dataset.rule || '', li.textContent]);",
            vec![],
        )
        .await
        .expect("the listed rules");
    let items: Vec<(String, String)> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i[0].as_str().unwrap().into(), i[1].as_str().unwrap().into()))
        .collect();
    let rules: Vec<&str> = items.iter().map(|(rule, _)| rule.as_str()).collect();
    assert!(rules.contains(&"too-short"), "{items:?}");
    assert!(rules.contains(&"not-complex"), "{items:?}");
    // Named as people know the connector (the plugin's name and its role), never its id.
    let label = "Active Directory (LDAP), primary: ";
    for (rule, text) in &items {
        assert!(
            text.starts_with(label),
            "{rule} names the connector: {text:?}"
        );
        assert!(!text.contains(&s.t.connector), "{text:?}");
        assert!(text.len() > label.len() + 5, "{rule} says why: {text:?}");
    }
    let summary = browser.text("#policy-summary").await;
    assert!(summary.contains("rules are not met"), "{summary:?}");
    browser.screenshot("employee-dialog-policy").await;

    // A strong one meets every policy; the list empties.
    let strong = random_password();
    browser.clear("#password").await;
    browser.type_into("#password", &strong).await;
    browser
        .wait_for_text("#policy-summary", "Meets every directory's policy")
        .await;
    assert!(
        browser.find_all("#policy-violations li").await.is_empty(),
        "no unmet rule is listed"
    );

    // A different confirmation: the error shows beside the field, and Save stays here.
    let other = format!("{strong}-x");
    browser.type_into("#confirm", &other).await;
    browser
        .wait_until(
            "the confirmation error to show",
            "!document.getElementById('confirm-error').hidden",
        )
        .await;
    assert!(browser.is_displayed("#confirm-error").await);
    let error = browser.text("#confirm-error").await;
    assert!(error.contains("not the same"), "{error:?}");
    assert_eq!(
        browser
            .find("#confirm")
            .await
            .attr("aria-invalid")
            .await
            .unwrap(),
        Some("true".into())
    );
    assert_eq!(
        browser
            .find("#confirm")
            .await
            .attr("aria-describedby")
            .await
            .unwrap(),
        Some("confirm-error".into())
    );
    let before = browser.url().await;
    browser
        .execute(
            "window.latchkeyNoReload = 'same document'; return 1;",
            vec![],
        )
        .await
        .expect("marking the page");
    browser.click("button#save-password").await;
    // The submit handler refused it synchronously: focus went to the confirmation, Save was
    // not disabled (as it is when the form is sent), and the document is the same one.
    let state = browser
        .execute(
            "return [document.activeElement && document.activeElement.id, \
             document.getElementById('save-password').disabled, \
             window.latchkeyNoReload || null, \
             document.getElementById('edit-password').open];",
            vec![],
        )
        .await
        .expect("the page's state");
    assert_eq!(
        state,
        json!(["confirm", false, "same document", true]),
        "Save did not leave the page"
    );
    assert_eq!(browser.url().await, before);
    assert!(s.changes().await.is_empty(), "nothing was changed");
    let source = browser.source().await;
    assert!(!source.contains(&strong) && !source.contains(&other));

    // The server checks it too: the same form posted with the browser's session.
    let mut http = http_session(&browser, &s.server).await;
    let csrf = http.csrf.clone();
    let refused = http
        .post_form_raw(
            &format!("{}/password", s.employee_path()),
            &[
                ("csrf", &csrf),
                ("mode", "manual"),
                ("password", &strong),
                ("confirm", &other),
                ("unlock", "on"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let body = &refused.body;
    let error_at = body
        .find("id=\"confirm-error\"")
        .unwrap_or_else(|| panic!("the error beside #confirm: {body}"));
    let tag_end = error_at + body[error_at..].find('>').unwrap();
    assert!(
        !body[error_at..tag_end].contains("hidden"),
        "the error is shown: {}",
        &body[error_at..tag_end]
    );
    assert!(body[tag_end..].starts_with(">The two passwords are not the same"));
    assert!(
        body.contains("aria-invalid=\"true\""),
        "#confirm is marked invalid"
    );
    assert!(body.contains("data-open-now"), "the dialog opens again");
    assert!(!body.contains(&strong), "the password is not sent back");
    assert!(!body.contains(&other), "the confirmation is not sent back");
    assert!(s.changes().await.is_empty(), "nothing was changed");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_without_the_csrf_token_changes_nothing() {
    let s = Setup::new("acme-console-csrf", "e2ecsrf", "owner").await;
    let browser = Browser::start().await;
    sign_in(&browser, &s.server, &s.t.token, None).await;
    let mut http = http_session(&browser, &s.server).await;
    // The cookie alone is a session: the employee's page opens.
    let page = http.get(&s.employee_path()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(csrf_of(&page.body).as_deref(), Some(http.csrf.as_str()));
    assert!(s.changes().await.is_empty());

    let path = format!("{}/password", s.employee_path());
    let form = [("mode", "generate"), ("unlock", "on")];
    let without = http.post_form_raw(&path, &form).await;
    assert_eq!(without.status, 403, "without a token: {}", without.body);
    let wrong = http
        .post_form_raw(
            &path,
            &[
                ("csrf", "not-the-session-token"),
                ("mode", "generate"),
                ("unlock", "on"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403, "with a wrong token: {}", wrong.body);
    assert!(
        s.changes().await.is_empty(),
        "no password change was created"
    );
    assert_eq!(
        dc().bind(&s.user.dn, &s.user.password).await,
        Ok(()),
        "the directory still has the old password"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helpdesk_admin_has_no_connectors_page() {
    let s = Setup::new("acme-console-helpdesk", "e2ehelpdsk", "helpdesk").await;
    let browser = Browser::start().await;
    sign_in(&browser, &s.server, &s.t.token, None).await;
    browser.wait_for("header nav a[href$='/employees']").await;
    assert!(
        browser
            .find_all("header nav a[href$='/connectors']")
            .await
            .is_empty(),
        "no Connectors link; {}",
        browser.describe().await
    );
    let mut http = http_session(&browser, &s.server).await;
    let path = format!("/console/t/{}/connectors", s.t.id);
    browser.goto(&s.url(&path)).await;
    let text = browser.wait_for_text("main", "role").await;
    assert!(text.contains("you are helpdesk"), "{text}");

    let page = http.get(&path).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("role"), "{}", page.body);
    browser.close().await;
}

/// Opens `path`, checks it is a page of the console (200, the frame, no sideways overflow),
/// and saves a screenshot named `name`.
async fn shoot(browser: &Browser, http: &mut ConsoleClient, s: &Setup, path: &str, name: &str) {
    let page = http.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    browser.goto(&s.url(path)).await;
    browser.wait_for("main h1").await;
    let (layout, viewport) = browser.widths().await;
    assert!(
        layout <= viewport,
        "{path} overflows sideways ({layout} px in a {viewport} px window)"
    );
    browser.screenshot(name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_main_pages() {
    let s = Setup::new("Acme Corporation", "e2eshots", "owner").await;
    approved_workstation(&s.server, &s.t, "FRONT-DESK-07").await;
    // A change, so that the lists and the audit log have something to show.
    let (status, answer) = s
        .server
        .call(
            "POST",
            &format!(
                "/api/v1/tenants/{}/employees/{}/password",
                s.t.id, s.employee
            ),
            &s.t.owner,
            Some(json!({"mode": "generate", "unlock": true})),
        )
        .await;
    assert_eq!(status, 202, "{answer:#}");

    let browser = Browser::start().await;
    sign_in(&browser, &s.server, &s.t.token, None).await;
    let mut http = http_session(&browser, &s.server).await;
    let t = &s.t.id;
    shoot(
        &browser,
        &mut http,
        &s,
        &format!("/console/t/{t}/connectors"),
        "connectors",
    )
    .await;
    shoot(
        &browser,
        &mut http,
        &s,
        &format!("/console/t/{t}/connectors/{}", s.t.connector),
        "connector-form",
    )
    .await;
    shoot(
        &browser,
        &mut http,
        &s,
        &format!("/console/t/{t}/keys"),
        "keys",
    )
    .await;
    shoot(
        &browser,
        &mut http,
        &s,
        &format!("/console/t/{t}/workstations"),
        "workstations",
    )
    .await;
    shoot(
        &browser,
        &mut http,
        &s,
        &format!("/console/t/{t}/audit"),
        "audit",
    )
    .await;

    // The employees page at a phone's width: the table turns into labelled rows, nothing
    // overflows sideways.
    browser.set_size(PHONE).await;
    shoot(
        &browser,
        &mut http,
        &s,
        &format!("/console/t/{t}/employees"),
        "employees-phone",
    )
    .await;
    browser.set_size(DESKTOP).await;
    browser.close().await;
}
