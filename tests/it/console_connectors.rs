//! The console's Connectors pages against the real `latchkey serve` (SQLite), the real bundled
//! `ad-ldap` plugin and the real Samba AD DC, without a browser:
//!
//! - the area needs the admin role: a helpdesk (or auditor) admin gets the 403 page on every
//!   connectors URL, GET and POST, changes nothing, and has no Connectors link;
//! - an admin adds an AD connector through the form generated from the plugin's schema (an
//!   input per property, typed by the schema), tests its connection (every check ok against
//!   Samba), disables and enables it, edits it keeping the secret, and deletes it; the secret
//!   is in no page and not in the server's log;
//! - a refused form shows each error beside its field, keeps what was typed (never a secret)
//!   and creates nothing;
//! - the API checks `config` against the plugin's config schema and the secrets' names against
//!   its secrets schema (422 with one error per field).

use latchkey_tests::console::{ConsoleClient, Page};
use latchkey_tests::samba::{ServiceAccount, dc};
use latchkey_tests::server::{Db, Server};
use serde_json::{Value, json};

/// The ad-ldap plugin's config properties, in its schema's order.
const AD_PROPERTIES: [&str; 9] = [
    "url",
    "starttls",
    "base_dn",
    "bind_dn",
    "ca_file",
    "tls_verify",
    "group_dn",
    "timeout_ms",
    "pool_size",
];

/// `text` as the console's templates escape it (minijinja's HTML escaping).
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The start tag (`<input …>`, `<select …>`…) that contains `needle`; panics when none does.
fn tag_with<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in the page:\n{html}"));
    let start = html[..at].rfind('<').expect("a tag starts before");
    let end = at + html[at..].find('>').expect("the tag ends");
    &html[start..=end]
}

/// The text of the element with `id="ID"` (up to its first closing tag).
fn element_text<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no element {id} in the page:\n{html}"));
    let open_end = at + html[at..].find('>').unwrap() + 1;
    let close = open_end + html[open_end..].find("</").unwrap();
    &html[open_end..close]
}

async fn connectors_of(server: &Server, tenant: &str, token: &str) -> Vec<Value> {
    let list = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{tenant}/connectors"),
            token,
            None,
        )
        .await;
    list["connectors"].as_array().unwrap().clone()
}

/// An admin of `tenant` with `role`, made by its owner: its token.
async fn admin_with_role(server: &Server, tenant: &str, owner: &str, role: &str) -> String {
    let admin = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{tenant}/admins"),
            owner,
            Some(json!({"name": format!("a {role}"), "role": role})),
        )
        .await;
    admin["token"].as_str().unwrap().to_string()
}

/// A valid ad-ldap config that needs no directory to be stored.
fn offline_config() -> Value {
    json!({"url": "ldaps://dc.corp.invalid:636", "base_dn": "OU=Staff,DC=corp,DC=invalid",
           "bind_dn": "CN=svc,DC=corp,DC=invalid", "timeout_ms": 2000})
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_and_up_may_open_connectors() {
    let server = Server::start(Db::Sqlite).await;
    let (tenant, owner) = server.tenant_with_admin("conn-roles", "owner").await;
    let connector = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &owner,
            Some(
                json!({"plugin": "ad-ldap", "role": "primary", "config": offline_config(),
                        "secrets": {"bind_password": "not-a-real-one"}}),
            ),
        )
        .await;
    let id = connector["id"].as_str().unwrap();
    let base = format!("/console/t/{tenant}/connectors");

    for role in ["helpdesk", "auditor"] {
        let token = admin_with_role(&server, &tenant, &owner, role).await;
        let mut console = ConsoleClient::sign_in(&server.url, &token).await;
        let employees = console.get(&format!("/console/t/{tenant}/employees")).await;
        assert_eq!(employees.status, 200);
        assert!(
            !employees.body.contains(&base),
            "{role}: no Connectors link in the navigation"
        );
        for path in [
            base.clone(),
            format!("{base}/new?plugin=ad-ldap"),
            format!("{base}/{id}"),
        ] {
            let page = console.get(&path).await;
            assert_eq!(page.status, 403, "{role} GET {path}: {}", page.body);
            assert!(
                page.body.contains("needs the admin role"),
                "{role} GET {path} says which role it needs: {}",
                page.body
            );
        }
        let posts: [(String, Vec<(&str, &str)>); 5] = [
            (
                base.clone(),
                vec![
                    ("plugin", "ad-ldap"),
                    ("role", "secondary"),
                    ("config.url", "ldaps://x.invalid"),
                    ("config.base_dn", "DC=x"),
                    ("config.bind_dn", "CN=x"),
                    ("secret.bind_password", "x"),
                ],
            ),
            (
                format!("{base}/{id}"),
                vec![
                    ("role", "secondary"),
                    ("config.url", "ldaps://changed.invalid"),
                ],
            ),
            (format!("{base}/{id}/enabled"), vec![("enabled", "false")]),
            (format!("{base}/{id}/test"), vec![]),
            (format!("{base}/{id}/delete"), vec![]),
        ];
        for (path, fields) in &posts {
            let page = console.post_form(path, fields).await;
            assert_eq!(page.status, 403, "{role} POST {path}: {}", page.body);
            assert!(page.body.contains("needs the admin role"), "{}", page.body);
        }
    }
    // Nothing the refused requests asked for happened.
    let list = connectors_of(&server, &tenant, &owner).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["enabled"], true);
    assert_eq!(list[0]["role"], "primary");
    assert_eq!(list[0]["config"], offline_config());

    // The owner sees the page and the link.
    let mut console = ConsoleClient::sign_in(&server.url, &owner).await;
    let page = console.get(&base).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(&format!("href=\"{base}\"")),
        "the nav links it"
    );
}

/// Signs in an `admin` of a new tenant: (tenant, token, console).
async fn admin_console(server: &Server, name: &str) -> (String, String, ConsoleClient) {
    let (tenant, owner) = server.tenant_with_admin(name, "owner").await;
    let token = admin_with_role(server, &tenant, &owner, "admin").await;
    let console = ConsoleClient::sign_in(&server.url, &token).await;
    (tenant, token, console)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_adds_tests_edits_and_deletes_an_ad_connector() {
    let dc = dc();
    let (svc_dn, svc_password) = dc.service_account(ServiceAccount::Delegated);
    let server = Server::start(Db::Sqlite).await;
    let (tenant, token, mut console) = admin_console(&server, "conn-flow").await;
    let base = format!("/console/t/{tenant}/connectors");
    let mut pages: Vec<Page> = Vec::new();

    // The list offers the installed plugins.
    let list = console.get(&base).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("No connectors yet"), "{}", list.body);
    assert!(
        list.body
            .contains(&format!("href=\"{base}/new?plugin=ad-ldap\"")),
        "{}",
        list.body
    );
    assert!(list.body.contains("Add Active Directory (LDAP)"));
    pages.push(list);

    // The form is generated from the schema: an input per property, typed.
    let form = console.get(&format!("{base}/new?plugin=ad-ldap")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    for key in AD_PROPERTIES {
        let input = tag_with(&form.body, &format!("name=\"config.{key}\""));
        let label = format!("<label for=\"config-{key}\"");
        assert!(
            form.body.contains(&label)
                || form
                    .body
                    .contains(&format!("<label class=\"inline\" for=\"config-{key}\"")),
            "{key} has a label"
        );
        assert!(input.contains(&format!("id=\"config-{key}\"")), "{input}");
    }
    let url = tag_with(&form.body, "name=\"config.url\"");
    assert!(
        url.contains("type=\"text\"") && url.contains(" required"),
        "{url}"
    );
    assert!(
        form.body
            .contains("Domain controller URL <span class=\"muted\">(required)</span>")
    );
    let timeout = tag_with(&form.body, "name=\"config.timeout_ms\"");
    assert!(
        timeout.contains("type=\"number\"")
            && timeout.contains("min=\"1\"")
            && !timeout.contains(" required"),
        "{timeout}"
    );
    let starttls = tag_with(&form.body, "name=\"config.starttls\"");
    assert!(
        starttls.contains("type=\"checkbox\"") && !starttls.contains("checked"),
        "default false: {starttls}"
    );
    let verify = tag_with(&form.body, "name=\"config.tls_verify\"");
    assert!(
        verify.contains("type=\"checkbox\"") && verify.contains("checked"),
        "default true: {verify}"
    );
    let secret = tag_with(&form.body, "name=\"secret.bind_password\"");
    assert!(
        secret.contains("type=\"password\"")
            && secret.contains("autocomplete=\"new-password\"")
            && !secret.contains("value="),
        "{secret}"
    );
    assert!(form.body.contains("name=\"role\""));
    assert!(tag_with(&form.body, "name=\"enabled\"").contains("checked"));
    assert!(
        form.body.contains("The service account DN") || form.body.contains("Service account DN"),
        "titles are the labels"
    );
    pages.push(form);

    // Add it.
    let ca_file = dc.ca_file.display().to_string();
    let created = console
        .post_form(
            &base,
            &[
                ("plugin", "ad-ldap"),
                ("role", "primary"),
                ("enabled", "true"),
                ("config.url", &dc.ldaps_url),
                ("config.base_dn", &dc.staff_ou),
                ("config.bind_dn", svc_dn),
                ("config.ca_file", &ca_file),
                ("config.tls_verify", "true"),
                ("config.group_dn", ""),
                ("config.timeout_ms", " 5000 "),
                ("config.pool_size", ""),
                ("secret.bind_password", svc_password),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.location.as_deref(),
        Some(format!("{base}?done=created").as_str())
    );
    let connectors = connectors_of(&server, &tenant, &token).await;
    assert_eq!(connectors.len(), 1, "{connectors:#?}");
    let connector = &connectors[0];
    let id = connector["id"].as_str().unwrap().to_string();
    assert_eq!(connector["plugin"], "ad-ldap");
    assert_eq!(connector["role"], "primary");
    assert_eq!(connector["enabled"], true);
    assert_eq!(
        connector["config"],
        json!({"url": dc.ldaps_url, "base_dn": dc.staff_ou, "bind_dn": svc_dn, "ca_file": ca_file,
               "starttls": false, "tls_verify": true, "timeout_ms": 5000}),
        "typed by the schema; empty optional fields are left out"
    );
    assert_eq!(connector["secrets"], json!(["bind_password"]));

    let list = console.get(&format!("{base}?done=created")).await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("The connector was added"),
        "{}",
        list.body
    );
    assert!(list.body.contains("Active Directory (LDAP)"));
    assert!(
        list.body
            .contains("<code class=\"nowrap\">bind_password</code>"),
        "secret names only"
    );
    assert!(list.body.contains("badge-ok\">enabled"));
    assert!(list.body.contains(&format!("{base}/{id}/delete")));
    assert!(
        list.body
            .contains("data-confirm=\"Delete the primary connector")
    );
    pages.push(list);

    // Test connection: every check ok against Samba, as the API says.
    let api_test = server
        .expect(
            200,
            "POST",
            &format!("/api/v1/tenants/{tenant}/connectors/{id}/test"),
            &token,
            None,
        )
        .await;
    assert_eq!(api_test["ok"], true, "{api_test:#}");
    let tested = console.post_form(&format!("{base}/{id}/test"), &[]).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(
        tested.body.contains("Every check passed"),
        "{}",
        tested.body
    );
    // Samba passes every check; the policy-hints check warns (Samba does not offer it), and
    // a warning is not a failure.
    let checks = api_test["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    for check in checks {
        let name = check["name"].as_str().unwrap();
        assert!(
            tested.body.contains(&format!(">{}<", esc(name))),
            "check {name} shown: {}",
            tested.body
        );
        assert_ne!(check["status"], "failed", "{check:#}");
        if let Some(advice) = check["advice"].as_str().filter(|a| !a.is_empty()) {
            assert!(tested.body.contains(&esc(advice)), "advice of {name} shown");
        }
    }
    for status in ["ok", "warning"] {
        let expected = checks.iter().filter(|c| c["status"] == status).count();
        assert_eq!(
            tested
                .body
                .matches(&format!("badge badge-{status}\">{status}<"))
                .count(),
            expected,
            "a {status} badge per {status} check"
        );
    }
    assert!(checks.iter().any(|c| c["status"] == "ok"));
    assert!(!tested.body.contains("badge-failed"));
    pages.push(tested);

    // Disable, then enable.
    let disabled = console
        .post_form(&format!("{base}/{id}/enabled"), &[("enabled", "false")])
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    assert_eq!(
        connectors_of(&server, &tenant, &token).await[0]["enabled"],
        false
    );
    let list = console.get(&format!("{base}?done=disabled")).await;
    assert!(
        list.body.contains("badge-warning\">disabled"),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("name=\"enabled\" value=\"true\""),
        "an Enable button"
    );
    pages.push(list);
    let enabled = console
        .post_form(&format!("{base}/{id}/enabled"), &[("enabled", "true")])
        .await;
    assert_eq!(enabled.status, 303, "{}", enabled.body);
    assert_eq!(
        connectors_of(&server, &tenant, &token).await[0]["enabled"],
        true
    );

    // Edit: prefilled, the secret only "set"; saving with it empty keeps it.
    let edit = console.get(&format!("{base}/{id}")).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(
        tag_with(&edit.body, "name=\"config.url\"")
            .contains(&format!("value=\"{}\"", esc(&dc.ldaps_url)))
    );
    assert!(tag_with(&edit.body, "name=\"config.timeout_ms\"").contains("value=\"5000\""));
    let secret_state = element_text(&edit.body, "secret-bind_password-state");
    assert!(secret_state.contains("badge-ok\">set"), "{secret_state}");
    assert!(edit.body.contains("Leave empty to keep it"));
    assert!(!tag_with(&edit.body, "name=\"secret.bind_password\"").contains("value="));
    assert!(
        !edit.body.contains("remove_secret.bind_password"),
        "a required secret cannot be removed"
    );
    pages.push(edit);
    let saved = console
        .post_form(
            &format!("{base}/{id}"),
            &[
                ("role", "primary"),
                ("position", "0"),
                ("enabled", "true"),
                ("config.url", &dc.ldaps_url),
                ("config.base_dn", &dc.staff_ou),
                ("config.bind_dn", svc_dn),
                ("config.ca_file", &ca_file),
                ("config.tls_verify", "true"),
                ("config.timeout_ms", "7000"),
                ("config.pool_size", "2"),
                ("secret.bind_password", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let after = &connectors_of(&server, &tenant, &token).await[0];
    assert_eq!(after["config"]["timeout_ms"], 7000);
    assert_eq!(after["config"]["pool_size"], 2);
    assert_eq!(
        after["secrets"],
        json!(["bind_password"]),
        "the secret is kept"
    );
    // The kept secret still binds: the test from the connector's own page passes.
    let retested = console
        .post_form(&format!("{base}/{id}/test"), &[("back", "edit")])
        .await;
    assert_eq!(retested.status, 200, "{}", retested.body);
    assert!(
        retested.body.contains("Connection test"),
        "on the connector's page"
    );
    assert!(
        retested.body.contains("Every check passed"),
        "{}",
        retested.body
    );
    pages.push(retested);

    // Delete.
    let deleted = console.post_form(&format!("{base}/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert!(connectors_of(&server, &tenant, &token).await.is_empty());
    let list = console.get(&format!("{base}?done=deleted")).await;
    assert!(list.body.contains("The connector was deleted"));
    pages.push(list);

    for page in &pages {
        assert!(
            !page.body.contains(svc_password),
            "the secret is in no page"
        );
    }
    assert!(
        !server.log().contains(svc_password),
        "the secret is not in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_form_shows_each_error_beside_its_field_and_creates_nothing() {
    let server = Server::start(Db::Sqlite).await;
    let (tenant, token, mut console) = admin_console(&server, "conn-errors").await;
    let base = format!("/console/t/{tenant}/connectors");
    let secret = "typed-secret-never-shown-4711";

    // Text that is not a number, and a required key left empty: caught before the API.
    let refused = console
        .post_form(
            &base,
            &[
                ("plugin", "ad-ldap"),
                ("role", "primary"),
                ("config.url", "ldaps://dc.corp.invalid"),
                ("config.base_dn", ""),
                ("config.bind_dn", "CN=svc,DC=corp,DC=invalid"),
                ("config.timeout_ms", "soon"),
                ("secret.bind_password", secret),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        element_text(&refused.body, "config-timeout_ms-error"),
        "Timeout (milliseconds) must be a whole number."
    );
    assert_eq!(
        element_text(&refused.body, "config-base_dn-error"),
        "Users&#x27; base DN is required."
    );
    let timeout = tag_with(&refused.body, "name=\"config.timeout_ms\"");
    assert!(
        timeout.contains("aria-invalid=\"true\"") && timeout.contains("config-timeout_ms-error"),
        "{timeout}"
    );
    assert!(
        timeout.contains("value=\"soon\""),
        "what was typed is shown again: {timeout}"
    );
    assert!(
        tag_with(&refused.body, "name=\"config.url\"")
            .contains(&format!("value=\"{}\"", esc("ldaps://dc.corp.invalid")))
    );
    assert!(
        !refused.body.contains(secret),
        "a typed secret is never shown again"
    );
    assert!(
        refused.body.contains("2 fields need attention"),
        "{}",
        refused.body
    );
    assert!(connectors_of(&server, &tenant, &token).await.is_empty());

    // Values the API refuses by the schema: out of range, not the expected form.
    let refused = console
        .post_form(
            &base,
            &[
                ("plugin", "ad-ldap"),
                ("role", "primary"),
                ("config.url", "http://dc.corp.invalid"),
                ("config.base_dn", "OU=Staff,DC=corp,DC=invalid"),
                ("config.bind_dn", "CN=svc,DC=corp,DC=invalid"),
                ("config.timeout_ms", "0"),
                ("secret.bind_password", secret),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        element_text(&refused.body, "config-timeout_ms-error"),
        "Timeout (milliseconds) must be at least 1."
    );
    assert!(
        element_text(&refused.body, "config-url-error")
            .starts_with("Domain controller URL is not in the expected form"),
        "{}",
        refused.body
    );
    assert!(tag_with(&refused.body, "name=\"config.timeout_ms\"").contains("value=\"0\""));
    assert!(!refused.body.contains(secret));
    assert!(connectors_of(&server, &tenant, &token).await.is_empty());

    // A required secret left empty.
    let refused = console
        .post_form(
            &base,
            &[
                ("plugin", "ad-ldap"),
                ("role", "primary"),
                ("config.url", "ldaps://dc.corp.invalid"),
                ("config.base_dn", "OU=Staff,DC=corp,DC=invalid"),
                ("config.bind_dn", "CN=svc,DC=corp,DC=invalid"),
                ("secret.bind_password", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        element_text(&refused.body, "secret-bind_password-error"),
        "Service account password is required."
    );
    assert!(connectors_of(&server, &tenant, &token).await.is_empty());
    assert!(
        !server.log().contains(secret),
        "the typed secret is not in the log"
    );

    // An edit that breaks the schema is refused the same way and changes nothing.
    let connector = server
        .expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &token,
            Some(
                json!({"plugin": "ad-ldap", "role": "primary", "config": offline_config(),
                        "secrets": {"bind_password": secret}}),
            ),
        )
        .await;
    let id = connector["id"].as_str().unwrap();
    let refused = console
        .post_form(
            &format!("{base}/{id}"),
            &[
                ("role", "primary"),
                ("enabled", "true"),
                ("config.url", "ldaps://dc.corp.invalid:636"),
                ("config.base_dn", "OU=Staff,DC=corp,DC=invalid"),
                ("config.bind_dn", "CN=svc,DC=corp,DC=invalid"),
                ("config.timeout_ms", "-5"),
                ("secret.bind_password", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(
        element_text(&refused.body, "config-timeout_ms-error"),
        "Timeout (milliseconds) must be at least 1."
    );
    let list = connectors_of(&server, &tenant, &token).await;
    assert_eq!(list[0]["config"], offline_config(), "unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_checks_config_and_secrets_against_the_plugins_schemas() {
    let server = Server::start(Db::Sqlite).await;
    let (tenant, owner) = server.tenant_with_admin("conn-api", "owner").await;
    let path = format!("/api/v1/tenants/{tenant}/connectors");
    let (status, problem) = server
        .call(
            "POST",
            &path,
            &owner,
            Some(json!({
                "plugin": "ad-ldap", "role": "primary",
                "config": {"url": "ldaps://dc.corp.invalid", "base_dn": "OU=S,DC=x",
                           "timeout_ms": "5000", "pool_size": 0},
                "secrets": {"bind_password": "x", "bind_pasword": "y"},
            })),
        )
        .await;
    assert_eq!(status, 422, "{problem:#}");
    let errors = problem["errors"].as_array().expect("errors");
    let message = |field: &str| -> String {
        errors
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no error on {field}: {problem:#}"))["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(message("config.timeout_ms"), "must be a whole number");
    assert_eq!(message("config.pool_size"), "must be at least 1");
    assert_eq!(message("config.bind_dn"), "is required");
    assert!(message("secrets.bind_pasword").contains("is not a secret this plugin takes"));
    assert!(
        !problem.to_string().contains("\"y\""),
        "secret values are not echoed"
    );
    assert!(
        connectors_of(&server, &tenant, &owner).await.is_empty(),
        "nothing stored"
    );

    // A config that fits, then updates that do not.
    let connector = server
        .expect(
            201,
            "POST",
            &path,
            &owner,
            Some(
                json!({"plugin": "ad-ldap", "role": "primary", "config": offline_config(),
                        "secrets": {"bind_password": "x"}}),
            ),
        )
        .await;
    let id = connector["id"].as_str().unwrap();
    for (patch, field) in [
        (
            json!({"config": {"url": "ftp://dc", "base_dn": "x", "bind_dn": "y"}}),
            "config.url",
        ),
        (
            json!({"config": {"url": "ldaps://dc", "base_dn": "x", "bind_dn": "y", "starttls": "yes"}}),
            "config.starttls",
        ),
        (json!({"secrets": {"nope": "x"}}), "secrets.nope"),
        (
            json!({"secrets": {"bind_password": null}}),
            "secrets.bind_password",
        ),
        (
            json!({"secrets": {"bind_password": ""}}),
            "secrets.bind_password",
        ),
    ] {
        let (status, problem) = server
            .call(
                "PATCH",
                &format!("{path}/{id}"),
                &owner,
                Some(patch.clone()),
            )
            .await;
        assert_eq!(status, 422, "{patch}: {problem:#}");
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{patch}: {problem:#}"
        );
    }
    let list = connectors_of(&server, &tenant, &owner).await;
    assert_eq!(list[0]["config"], offline_config(), "unchanged");
    assert_eq!(list[0]["secrets"], json!(["bind_password"]));
    // A valid partial update still works (no config: nothing to check).
    let updated = server
        .expect(
            200,
            "PATCH",
            &format!("{path}/{id}"),
            &owner,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(updated["enabled"], false);
}
