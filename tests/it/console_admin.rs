//! The console's Keys, Workstations and Audit pages against a real `latchkey serve`, through the
//! no-browser console client: registering and assigning keys with the forms, the API's refusals
//! on the page, read-only roles, enrolling a workstation with a code from the page (shown once,
//! never logged), approving and revoking it, CSRF refusals, and the audit log's filter, paging
//! and chain verification (whole, then tampered with).

use std::time::Duration;

use latchkey::capabilities::secrets::Secrets;
use latchkey::store::{ConnectorRole, MasterKey, NewAuditRecord, NewConnector, NewEmployee, Store};
use latchkey_tests::console::ConsoleClient;
use latchkey_tests::server::{Db, Server, agent, stdout_of};
use serde_json::{Value, json};

/// The server's own database, opened beside it (SQLite, WAL: both may write).
async fn open_store(server: &Server) -> Store {
    let key = std::fs::read_to_string(server.data_dir.path().join("master.key")).unwrap();
    Store::open(
        &format!(
            "sqlite://{}",
            server.sqlite_file.as_ref().unwrap().display()
        ),
        MasterKey::from_base64(&key).unwrap(),
    )
    .await
    .unwrap()
}

/// A tenant with its owner's token, an `admin` and an `auditor`.
struct Tenant {
    id: String,
    owner: String,
    admin: String,
    auditor: String,
}

async fn tenant(server: &Server, name: &str) -> Tenant {
    let (id, owner) = server.tenant_with_admin(name, "owner").await;
    let mut tokens = Vec::new();
    for role in ["admin", "auditor"] {
        let created = server
            .expect(
                201,
                "POST",
                &format!("/api/v1/tenants/{id}/admins"),
                &owner,
                Some(json!({"name": format!("{name} {role}"), "role": role})),
            )
            .await;
        tokens.push(created["token"].as_str().unwrap().to_string());
    }
    let auditor = tokens.pop().unwrap();
    let admin = tokens.pop().unwrap();
    Tenant {
        id,
        owner,
        admin,
        auditor,
    }
}

/// An employee of `t` (its connector and row written straight to the database: these pages
/// only read employees, and no directory is needed to show one).
async fn employee(server: &Server, t: &Tenant, username: &str, display_name: &str) -> String {
    let store = open_store(server).await;
    let connector = match store.connectors(&t.id).await.unwrap().into_iter().next() {
        Some(connector) => connector,
        None => store
            .create_connector(
                &t.id,
                NewConnector {
                    plugin: "ad-ldap".into(),
                    role: ConnectorRole::Primary,
                    config: Default::default(),
                    enabled: true,
                    granted: vec![],
                },
                &Secrets::new(),
            )
            .await
            .unwrap(),
    };
    let employee = store
        .create_employee(
            &t.id,
            NewEmployee {
                connector_id: connector.id,
                account_id: format!("id-{username}"),
                username: username.into(),
                display_name: Some(display_name.into()),
                account: Value::Null,
            },
        )
        .await
        .unwrap();
    store.close().await;
    employee.id
}

/// `latchkey agent init`: the key file and what it printed (serial and public keys).
fn software_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, Value) {
    let file = dir.join(format!("{name}.json"));
    let printed = stdout_of(
        &agent(&["init", "--key-file", file.to_str().unwrap()]),
        "agent init",
    );
    (file, serde_json::from_str(printed.trim()).unwrap())
}

async fn keys(server: &Server, t: &Tenant) -> Vec<Value> {
    let list = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/keys", t.id),
            &t.owner,
            None,
        )
        .await;
    list["keys"].as_array().unwrap().clone()
}

async fn workstations(server: &Server, t: &Tenant) -> Vec<Value> {
    let list = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/workstations", t.id),
            &t.owner,
            None,
        )
        .await;
    list["workstations"].as_array().unwrap().clone()
}

async fn audit_records(server: &Server, t: &Tenant) -> Vec<Value> {
    let list = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/audit?limit=1000", t.id),
            &t.owner,
            None,
        )
        .await;
    list["records"].as_array().unwrap().clone()
}

/// The sequence numbers of the audit table's rows, in page order.
fn seqs_on(page: &str) -> Vec<i64> {
    page.split("<td data-label=\"#\">")
        .skip(1)
        .map(|rest| rest[..rest.find('<').unwrap()].trim().parse().unwrap())
        .collect()
}

/// `text` with the entities the console's templates escape put back.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text of the element with `id` (up to the next tag), unescaped.
fn text_of(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    let rest = &page[start..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    unescape(&rest[..rest.find('<').unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_register_and_assign_keys_and_auditors_only_look() {
    let server = Server::start(Db::Sqlite).await;
    let t = tenant(&server, "console-keys").await;
    let ada = employee(&server, &t, "ada", "Ada Lovelace").await;
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = software_key(dir.path(), "key");
    let serial = public["serial"].as_str().unwrap();
    let kem = public["kem_public_key"].as_str().unwrap();
    let sig = public["sig_public_key"].as_str().unwrap();
    let keys_path = format!("/console/t/{}/keys", t.id);

    let mut admin = ConsoleClient::sign_in(&server.url, &t.admin).await;
    let empty = admin.get(&keys_path).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("Register a key"), "{}", empty.body);
    assert!(
        empty.body.contains("latchkey agent init"),
        "the form says where keys come from"
    );

    // Registering: the form's answer is a redirect, the key is the API's.
    let registered = admin
        .post_form(
            &keys_path,
            &[
                ("serial", serial),
                ("kem_public_key", kem),
                ("sig_public_key", sig),
            ],
        )
        .await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    assert_eq!(registered.location.as_deref(), Some(keys_path.as_str()));
    let listed = keys(&server, &t).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["serial"], serial);
    assert_eq!(listed[0]["status"], "ready");
    assert_eq!(listed[0]["employee"], Value::Null);
    let key = listed[0]["id"].as_str().unwrap().to_string();
    let page = admin.get(&keys_path).await;
    assert!(page.body.contains(serial));
    assert!(page.body.contains("Unassigned"));
    assert!(page.body.contains(&format!("action=\"{keys_path}/{key}\"")));

    // Refusals come back on the page with the API's words; nothing more is registered.
    let bad = admin
        .post_form(
            &keys_path,
            &[
                ("serial", "other"),
                ("kem_public_key", "not base64!"),
                ("sig_public_key", sig),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("must be base64url"), "{}", bad.body);
    assert!(
        bad.body.contains("id=\"register-kem_public_key-error\""),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("value=\"other\""), "the serial is kept");
    let again = admin
        .post_form(
            &keys_path,
            &[
                ("serial", serial),
                ("kem_public_key", kem),
                ("sig_public_key", sig),
            ],
        )
        .await;
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(
        again.body.contains("a key with this serial exists"),
        "{}",
        again.body
    );
    assert_eq!(keys(&server, &t).await.len(), 1);

    // Assigning and activating in one form.
    let key_path = format!("{keys_path}/{key}");
    let saved = admin
        .post_form(&key_path, &[("status", "active"), ("employee", &ada)])
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let listed = keys(&server, &t).await;
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["employee"], ada.as_str());
    let page = admin.get(&keys_path).await;
    assert!(
        page.body.contains(&format!(
            "<a href=\"/console/t/{}/employees/{ada}\">Ada Lovelace</a>",
            t.id
        )),
        "{}",
        page.body
    );

    // A compromised key never changes status again: the page says so, and the assignment the
    // same form asked to drop stays as it was.
    let compromised = admin
        .post_form(&key_path, &[("status", "compromised"), ("employee", &ada)])
        .await;
    assert_eq!(compromised.status, 303, "{}", compromised.body);
    let refused = admin
        .post_form(&key_path, &[("status", "active"), ("employee", "")])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("a compromised key cannot change status"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("role=\"alert\""));
    let listed = keys(&server, &t).await;
    assert_eq!(listed[0]["status"], "compromised");
    assert_eq!(listed[0]["employee"], ada.as_str());
    // Unassigning alone is allowed.
    let unassigned = admin
        .post_form(&key_path, &[("status", "compromised"), ("employee", "")])
        .await;
    assert_eq!(unassigned.status, 303, "{}", unassigned.body);
    assert_eq!(keys(&server, &t).await[0]["employee"], Value::Null);

    // An auditor sees the keys and workstations, with no form, and its posts are refused.
    let mut auditor = ConsoleClient::sign_in(&server.url, &t.auditor).await;
    let page = auditor.get(&keys_path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(serial));
    assert!(!page.body.contains("Register a key"), "{}", page.body);
    assert!(!page.body.contains(&format!("action=\"{key_path}\"")));
    assert!(
        !page.body.contains("method=\"post\" action=\"/console/t/"),
        "{}",
        page.body
    );
    let page = auditor
        .get(&format!("/console/t/{}/workstations", t.id))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("enrollment-codes"), "{}", page.body);
    let refused = auditor
        .post_form(&key_path, &[("status", "compromised"), ("employee", &ada)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(keys(&server, &t).await[0]["employee"], Value::Null);
    let refused = auditor
        .post_form(
            &keys_path,
            &[
                ("serial", "auditor-key"),
                ("kem_public_key", kem),
                ("sig_public_key", sig),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = auditor
        .post_form(
            &format!("/console/t/{}/enrollment-codes", t.id),
            &[("hours", "24")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(keys(&server, &t).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workstation_enrolls_with_a_code_from_the_console_and_the_audit_shows_it_all() {
    let server = Server::start(Db::Sqlite).await;
    let t = tenant(&server, "console-workstations").await;
    let dir = tempfile::tempdir().unwrap();
    let (key_file, public) = software_key(dir.path(), "key");
    let mut admin = ConsoleClient::sign_in(&server.url, &t.admin).await;
    let base = format!("/console/t/{}", t.id);
    let registered = admin
        .post_form(
            &format!("{base}/keys"),
            &[
                ("serial", public["serial"].as_str().unwrap()),
                ("kem_public_key", public["kem_public_key"].as_str().unwrap()),
                ("sig_public_key", public["sig_public_key"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    // Deliveries go only to an active key: the agent asks for its key's.
    let key = keys(&server, &t).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let activated = admin
        .post_form(
            &format!("{base}/keys/{key}"),
            &[("status", "active"), ("employee", "")],
        )
        .await;
    assert_eq!(activated.status, 303, "{}", activated.body);
    assert_eq!(keys(&server, &t).await[0]["status"], "active");

    // A code with a bad validity is refused beside its field.
    let bad = admin
        .post_form(&format!("{base}/enrollment-codes"), &[("hours", "0")])
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("id=\"hours-error\""), "{}", bad.body);

    // The code, once, with the command that uses it on this server.
    let issued = admin
        .post_form(&format!("{base}/enrollment-codes"), &[("hours", "2")])
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    let code = text_of(&issued.body, "enrollment-code");
    assert!(code.len() >= 16, "a code: {code:?}");
    let command = text_of(&issued.body, "enroll-command");
    assert_eq!(
        command,
        format!(
            "latchkey agent run --server {} --enrollment-code {code} --key-file key.json",
            server.url
        )
    );
    assert!(issued.body.contains("(in 2 hours)"), "{}", issued.body);
    assert_eq!(
        issued.body.matches(code.as_str()).count(),
        2,
        "the code and the command"
    );

    // The agent enrolls with it and waits for approval.
    let run = crate::server_core::spawn_agent_run_once(&server, &code, &key_file, "console-ws");
    let mut enrolled = None;
    for _ in 0..300 {
        if let Some(w) = workstations(&server, &t).await.into_iter().next() {
            enrolled = Some(w);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let enrolled = enrolled.expect("the agent enrolled");
    assert_eq!(enrolled["status"], "enrolled");
    assert_eq!(enrolled["name"], "console-ws");
    let ws = enrolled["id"].as_str().unwrap().to_string();
    let page = admin.get(&format!("{base}/workstations")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("console-ws"));
    assert!(page.body.contains("badge-enrolled"));
    let approve = format!("{base}/workstations/{ws}/approve");
    assert!(
        page.body.contains(&format!("action=\"{approve}\"")),
        "{}",
        page.body
    );

    // Without the CSRF token (or with a wrong one) nothing is approved.
    let forged = admin.post_form_raw(&approve, &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let forged = admin.post_form_raw(&approve, &[("csrf", "guessed")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(workstations(&server, &t).await[0]["status"], "enrolled");

    let approved = admin.post_form(&approve, &[]).await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(workstations(&server, &t).await[0]["status"], "approved");
    let output = run.await.unwrap();
    assert!(
        output.status.success(),
        "agent run --once: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = admin.get(&format!("{base}/workstations")).await;
    assert!(page.body.contains("badge-approved"));
    assert!(
        !page.body.contains(&format!("action=\"{approve}\"")),
        "approved once"
    );
    assert!(
        page.body.contains("data-confirm=\"Revoke console-ws?"),
        "{}",
        page.body
    );

    let revoked = admin
        .post_form(&format!("{base}/workstations/{ws}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let listed = workstations(&server, &t).await;
    assert_eq!(listed[0]["status"], "revoked");
    assert!(listed[0]["revoked_at"].is_i64());
    // Approving it again is refused, on the page.
    let again = admin.post_form(&approve, &[]).await;
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(
        again.body.contains("id=\"workstation-error\""),
        "{}",
        again.body
    );
    assert_eq!(workstations(&server, &t).await[0]["status"], "revoked");

    // The audit page lists what happened; the filter narrows it.
    let audit = admin.get(&format!("{base}/audit")).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    for action in [
        "console.sign-in",
        "key.create",
        "workstation.code.create",
        "workstation.enroll",
        "workstation.approve",
        "workstation.revoke",
    ] {
        assert!(
            audit
                .body
                .contains(&format!("<td data-label=\"Action\">{action}</td>")),
            "{action} in {}",
            audit.body
        );
    }
    assert!(audit.body.contains("<datalist id=\"audit-actions\">"));
    let filtered = admin
        .get(&format!("{base}/audit?action=workstation.ap"))
        .await;
    assert_eq!(filtered.status, 200);
    assert!(
        filtered
            .body
            .contains("<td data-label=\"Action\">workstation.approve</td>")
    );
    assert!(
        !filtered
            .body
            .contains("<td data-label=\"Action\">key.create</td>")
    );
    assert!(
        !filtered
            .body
            .contains("<td data-label=\"Action\">workstation.revoke</td>")
    );
    assert_eq!(seqs_on(&filtered.body).len(), 1, "{}", filtered.body);

    // Paging: the first page is the newest records; Older and Newer walk the rest.
    let all: Vec<i64> = audit_records(&server, &t)
        .await
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert!(all.len() >= 7, "{all:?}");
    assert_eq!(seqs_on(&audit.body), all, "one page holds them all");
    let newest = admin.get(&format!("{base}/audit?limit=3")).await;
    assert_eq!(seqs_on(&newest.body), all[all.len() - 3..].to_vec());
    assert!(!newest.body.contains("Newer →"));
    let older_link = format!(
        "href=\"{base}/audit?limit=3&before={}\"",
        all[all.len() - 3]
    );
    assert!(
        unescape(&newest.body).contains(&older_link),
        "{}",
        newest.body
    );
    let older = admin
        .get(&format!(
            "{base}/audit?limit=3&before={}",
            all[all.len() - 3]
        ))
        .await;
    assert_eq!(
        seqs_on(&older.body),
        all[all.len() - 6..all.len() - 3].to_vec()
    );
    let newer_link = format!("href=\"{base}/audit?limit=3&after={}\"", all[all.len() - 4]);
    assert!(
        unescape(&older.body).contains(&newer_link),
        "{}",
        older.body
    );
    let newer = admin
        .get(&format!(
            "{base}/audit?limit=3&after={}",
            all[all.len() - 4]
        ))
        .await;
    assert_eq!(seqs_on(&newer.body), all[all.len() - 3..].to_vec());
    let oldest = admin.get(&format!("{base}/audit?limit=3&after=0")).await;
    assert_eq!(seqs_on(&oldest.body), all[..3].to_vec());
    assert!(!oldest.body.contains("← Older"), "{}", oldest.body);

    // The chain is whole.
    let verified = admin.get(&format!("{base}/audit?verify=1")).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let report = server
        .expect(
            200,
            "GET",
            &format!("/api/v1/tenants/{}/audit/verify", t.id),
            &t.owner,
            None,
        )
        .await;
    assert_eq!(report["ok"], true);
    assert!(
        verified.body.contains(&format!(
            "records, chain whole up to #{}",
            report["head"].as_i64().unwrap()
        )),
        "{}",
        verified.body
    );
    assert!(verified.body.contains("class=\"notice\""));

    // The code was shown once: on no later page, and never in the log.
    for path in [
        "workstations",
        "keys",
        "audit",
        "audit?verify=1",
        "employees",
    ] {
        let page = admin.get(&format!("{base}/{path}")).await;
        assert!(!page.body.contains(&code), "the code is on {path}");
    }
    let log = server.log();
    assert!(!log.is_empty());
    assert!(!log.contains(&code), "the code is in the server log");

    // An edited record breaks the chain, and Verify names it.
    let approve_seq = audit_records(&server, &t)
        .await
        .iter()
        .find(|r| r["action"] == "workstation.approve")
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    let store = open_store(&server).await;
    let changed = store
        .execute_unchecked(&format!(
            "UPDATE audit_log SET details = '{{\"name\":\"forged\"}}' WHERE seq = {approve_seq}"
        ))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    store.close().await;
    let broken = admin.get(&format!("{base}/audit?verify=1")).await;
    assert_eq!(broken.status, 200, "{}", broken.body);
    assert!(
        broken.body.contains(&format!(
            "The audit chain is broken: record {approve_seq} was edited"
        )),
        "{}",
        broken.body
    );
    assert!(broken.body.contains("class=\"alert\" role=\"alert\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pages_walk_a_sparse_chain_both_ways() {
    let server = Server::start(Db::Sqlite).await;
    let t = tenant(&server, "console-audit").await;
    let (other, _) = server
        .tenant_with_admin("console-audit-other", "owner")
        .await;
    // This tenant's records are far apart in the server's one chain: one in 50.
    let store = open_store(&server).await;
    for i in 0..600 {
        let (tenant, action) = if i % 50 == 7 {
            (t.id.as_str(), "test.mine")
        } else {
            (other.as_str(), "test.theirs")
        };
        store
            .append_audit(
                NewAuditRecord::new(Some(tenant), "test", action, None, json!({"i": i})),
                1_700_000_000 + i,
            )
            .await
            .unwrap();
    }
    store.close().await;
    // (Signing in is audited too: before the list to compare with.)
    let mut auditor = ConsoleClient::sign_in(&server.url, &t.auditor).await;
    let all: Vec<i64> = audit_records(&server, &t)
        .await
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert!(all.len() > 12, "{all:?}");
    let base = format!("/console/t/{}/audit", t.id);
    let link = |page: &str, rel: &str| -> Option<String> {
        let page = unescape(page);
        let end = page.find(&format!("\" rel=\"{rel}\""))?;
        let start = page[..end].rfind("href=\"")? + "href=\"".len();
        Some(page[start..end].to_string())
    };

    // From the newest page back to the oldest...
    let mut path = format!("{base}?limit=4");
    let mut walked = Vec::new();
    let mut pages = 0;
    loop {
        let page = auditor.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let seqs = seqs_on(&page.body);
        assert!(!seqs.is_empty() && seqs.len() <= 4, "{path}: {seqs:?}");
        walked.splice(0..0, seqs);
        pages += 1;
        match link(&page.body, "prev") {
            Some(older) => path = older,
            None => break,
        }
        assert!(pages < 50, "the walk ends");
    }
    assert_eq!(walked, all, "every record once, in order, walking back");
    // ...and from the oldest forward.
    let mut path = format!("{base}?limit=4&after=0");
    let mut walked = Vec::new();
    loop {
        let page = auditor.get(&path).await;
        walked.extend(seqs_on(&page.body));
        match link(&page.body, "next") {
            Some(newer) => path = newer,
            None => break,
        }
        assert!(walked.len() <= all.len(), "the walk ends");
    }
    assert_eq!(walked, all, "every record once, in order, walking forward");

    // The filter applies to every page, and the chain of all tenants is whole.
    let mine = auditor
        .get(&format!("{base}?action=test.mine&limit=500"))
        .await;
    assert_eq!(seqs_on(&mine.body).len(), 12, "{}", mine.body);
    let verified = auditor.get(&format!("{base}?verify=1")).await;
    assert!(
        verified.body.contains("chain whole up to #"),
        "{}",
        verified.body
    );
}
