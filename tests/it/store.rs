//! The store on both backends: every test runs once on SQLite and once on PostgreSQL
//! (`store_test!`). Migrations, tenant isolation, tokens, sealed connector secrets and their
//! rotation, key status rules, the delivery queue (partial unique indexes, supersede, leases,
//! concurrent claims, acks), crash recovery's query, and the audit chain.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use latchkey::capabilities::secrets::Secrets;
use latchkey::store::{
    AckOutcome, AuditProblem, Backend, ChangeMode, ChangeState, ConnectorRole, DeliveryState,
    Employee, Key, KeyRefusal, KeyStatus, MasterKey, NewAuditRecord, NewChange, NewConnector,
    NewEmployee, NewKey, NewSyncCheck, Role, Store, StoreError, SyncState, Tenant,
    WorkstationStatus,
};
use latchkey_tests::databases::tenant_with_connector;
use latchkey_tests::store_test;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

/// A tenant with an AD connector (secret `bind_password`), an employee and an Active key.
struct Fixture {
    tenant: Tenant,
    connector: String,
    employee: Employee,
    key: Key,
}

async fn fixture(store: &Store, name: &str) -> Fixture {
    let secrets = Secrets::from_iter([(
        "bind_password",
        SecretString::from(format!("bind-secret-of-{name}")),
    )]);
    let (tenant, connector) = tenant_with_connector(store, name, &secrets).await;
    let (employee, key) = employee_with_key(store, &tenant.id, &connector.id, name).await;
    Fixture {
        tenant,
        connector: connector.id,
        employee,
        key,
    }
}

/// An employee `alice.{name}` of `tenant_id` (through `connector_id`) with an Active key.
async fn employee_with_key(
    store: &Store,
    tenant_id: &str,
    connector_id: &str,
    name: &str,
) -> (Employee, Key) {
    let employee = store
        .create_employee(
            tenant_id,
            NewEmployee {
                connector_id: connector_id.to_string(),
                account_id: format!("guid-{name}"),
                username: format!("alice.{name}"),
                display_name: Some("Alice Example".into()),
                account: serde_json::Value::Null,
            },
        )
        .await
        .expect("employee");
    let key = store
        .create_key(
            tenant_id,
            NewKey {
                serial: format!("SN-{name}"),
                kem_public_key: vec![1; 32],
                sig_public_key: vec![2; 32],
            },
        )
        .await
        .expect("key");
    store
        .assign_key(tenant_id, &key.id, Some(&employee.id))
        .await
        .expect("assign");
    let key = store
        .set_key_status(tenant_id, &key.id, KeyStatus::Active)
        .await
        .expect("activate");
    (employee, key)
}

/// A change with a fresh delivery id and the next sequence number of this process (sequences
/// must grow per key and slot).
fn change(f: &Fixture, slot: &str, envelope: &[u8]) -> NewChange {
    static SEQUENCE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    NewChange {
        employee_id: f.employee.id.clone(),
        key_id: f.key.id.clone(),
        actor: "admin-1".into(),
        mode: ChangeMode::Manual,
        options: json!({"must_change_at_next_logon": false, "unlock": true}),
        slot: slot.into(),
        delivery_id: format!("00000000-0000-4000-8000-{n:012x}"),
        sequence: n,
        envelope: envelope.to_vec(),
        receipt: vec![],
        not_after: None,
        history_hash: None,
    }
}

/// Creates a change for `slot` and releases its delivery; returns the delivery id.
async fn queued(store: &Store, f: &Fixture, slot: &str, envelope: &[u8]) -> String {
    let (_, held) = store
        .begin_change(&f.tenant.id, change(f, slot, envelope), NOW)
        .await
        .expect("begin change");
    store
        .release_delivery(&f.tenant.id, &held.id, NOW)
        .await
        .expect("release")
        .delivery
        .id
}

fn not_found(result: Result<impl std::fmt::Debug, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected not found, got {other:?}"),
    }
}

store_test!(migrations_apply_from_empty, |db| {
    let store = &db.store;
    let expected = if db.url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(store.backend(), expected);
    assert!(store.tenants().await.unwrap().is_empty());
    let report = store.verify_audit().await.unwrap();
    assert_eq!(
        (report.records, report.head_seq, report.problem),
        (0, 0, None)
    );
    // Opening again finds the migrations applied and changes nothing.
    let again = db.reopen(db.master_key()).await;
    let tenant = again.create_tenant("acme").await.unwrap();
    assert_eq!(store.tenant(&tenant.id).await.unwrap(), tenant);
    again.close().await;
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        let wal = std::path::PathBuf::from(format!("{path}-wal"));
        assert!(
            wal.exists(),
            "SQLite runs in WAL mode: {} exists",
            wal.display()
        );
    }
});

store_test!(a_change_begins_durably, |db| {
    let store = &db.store;
    let f = fixture(store, "durable").await;
    let before = store.wal_syncs();
    let (change, _) = store
        .begin_change(&f.tenant.id, change(&f, "alice", b"sealed"), NOW)
        .await
        .expect("begin change");
    match store.backend() {
        // The begin returned only after an fsync of the WAL that holds it.
        Backend::Sqlite => assert_eq!(store.wal_syncs(), before.map(|n| n + 1)),
        // PostgreSQL commits every transaction durably; there is no WAL of ours to sync.
        Backend::Postgres => assert_eq!(store.wal_syncs(), None),
    }
    // Committed: another connection reads it.
    let again = db.reopen(db.master_key()).await;
    assert_eq!(
        again
            .password_change(&f.tenant.id, &change.id)
            .await
            .unwrap()
            .state,
        ChangeState::Held
    );
    again.close().await;
});

store_test!(each_employees_latest_change_in_one_query, |db| {
    let store = &db.store;
    let a = fixture(store, "latest").await;
    // A second employee of the same tenant, with a key of their own, and a third with none.
    let other = fixture(store, "latest-other-tenant").await;
    let (employee, key) = employee_with_key(store, &a.tenant.id, &a.connector, "bob").await;
    let bob = Fixture {
        tenant: a.tenant.clone(),
        connector: a.connector.clone(),
        employee,
        key,
    };
    let begin = |f: &Fixture, slot: &str, at: i64| {
        let new = change(f, slot, b"sealed");
        let tenant = f.tenant.id.clone();
        async move { store.begin_change(&tenant, new, at).await.unwrap().0 }
    };
    begin(&a, "one", NOW).await;
    let alice_latest = begin(&a, "two", NOW + 5).await;
    let bob_first = begin(&bob, "one", NOW + 1).await;
    let bob_second = begin(&bob, "two", NOW + 1).await;
    // The other tenant's employee changed later than anyone here: not this tenant's.
    begin(&other, "one", NOW + 9).await;
    // Same start: the smaller id first, as the change list orders them.
    let bob_latest = if bob_first.id < bob_second.id {
        bob_first
    } else {
        bob_second
    };
    let mut latest = store.latest_changes(&a.tenant.id).await.unwrap();
    latest.sort_by(|x, y| x.employee_id.cmp(&y.employee_id));
    let mut expected = vec![alice_latest, bob_latest];
    expected.sort_by(|x, y| x.employee_id.cmp(&y.employee_id));
    assert_eq!(latest, expected);
    for f in [&a, &bob] {
        let listed = store
            .password_changes(&a.tenant.id, Some(&f.employee.id), 1)
            .await
            .unwrap();
        assert!(expected.contains(&listed[0]), "the change list agrees");
    }
    assert!(
        store
            .latest_changes(&other.tenant.id)
            .await
            .unwrap()
            .iter()
            .all(|c| c.tenant_id == other.tenant.id)
    );
});

store_test!(concurrent_changes_and_other_writes_all_land, |db| {
    // SQLite runs a change's transactions whole on its writer thread and the other writes on
    // the write gate's sqlx connection: interleaved, none may wait out SQLite's busy timeout,
    // fail, or break the audit chain they all append to.
    let store = &db.store;
    let f = Arc::new(fixture(store, "interleaved").await);
    let before = store.verify_audit().await.unwrap().records;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (change_store, change_f) = (store.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let (store, f) = (change_store, change_f);
            let slot = format!("account-{i}");
            let (begun, held) = store
                .begin_change_audited(&f.tenant.id, change(&f, &slot, b"sealed"), NOW, {
                    let tenant = f.tenant.id.clone();
                    move |_, _| Some(record(&tenant, 1000 + i))
                })
                .await
                .expect("begin change");
            store
                .set_change_state(&f.tenant.id, &begun.id, ChangeState::Applying, None, NOW)
                .await
                .expect("applying");
            let tenant = f.tenant.id.clone();
            let (done, release) = store
                .finish_applied_change(
                    &f.tenant.id,
                    &begun.id,
                    Some((f.connector.as_str(), json!({"ok": true}))),
                    &held.id,
                    ChangeState::Applied,
                    None,
                    move |_| record(&tenant, 2000 + i),
                    NOW,
                )
                .await
                .expect("finish");
            assert_eq!(done.state, ChangeState::Applied);
            assert_eq!(done.outcomes[&f.connector], json!({"ok": true}));
            assert_eq!(release.delivery.state, DeliveryState::Pending);
        }));
        let (store, f) = (store.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            store
                .create_key(
                    &f.tenant.id,
                    NewKey {
                        serial: format!("SN-interleaved-{i}"),
                        kem_public_key: vec![1; 32],
                        sig_public_key: vec![2; 32],
                    },
                )
                .await
                .expect("a write on the gate's connection");
            store
                .append_audit(record(&f.tenant.id, 3000 + i), NOW)
                .await
                .expect("audit");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.records, before + 24 * 3);
    let pending = store
        .deliveries_of_key(&f.tenant.id, &f.key.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .count();
    assert_eq!(pending, 24);
});

store_test!(tenant_isolation_in_every_lookup, |db| {
    let store = &db.store;
    let a = fixture(store, "a").await;
    let b = fixture(store, "b").await;
    let t = &a.tenant.id;
    not_found(store.employee(t, &b.employee.id).await, "employee");
    not_found(store.key(t, &b.key.id).await, "key");
    not_found(store.connector(t, &b.connector).await, "connector");
    not_found(store.connector_secrets(t, &b.connector).await, "secrets");
    let ws = store
        .enroll_workstation(&b.tenant.id, "pc-b")
        .await
        .unwrap();
    not_found(store.workstation(t, &ws.value.id).await, "workstation");
    not_found(store.approve_workstation(t, &ws.value.id).await, "approve");
    not_found(
        store.set_key_status(t, &b.key.id, KeyStatus::Locked).await,
        "key status",
    );
    not_found(
        store.assign_key(t, &a.key.id, Some(&b.employee.id)).await,
        "assign to another tenant's employee",
    );
    not_found(
        store
            .create_employee(
                t,
                NewEmployee {
                    connector_id: b.connector.clone(),
                    account_id: "x".into(),
                    username: "x".into(),
                    display_name: None,
                    account: serde_json::Value::Null,
                },
            )
            .await,
        "employee through another tenant's connector",
    );
    let delivery = queued(store, &b, "alice", b"envelope-b").await;
    not_found(store.delivery(t, &delivery).await, "delivery");
    not_found(
        store.ack_delivery(t, &b.key.id, &delivery, NOW).await,
        "ack",
    );
    not_found(
        store
            .lease_deliveries(t, &b.key.id, "ws", 10, 60, NOW)
            .await,
        "lease",
    );
    not_found(
        store.begin_change(t, change(&b, "alice", b"e"), NOW).await,
        "change with another tenant's key",
    );
    // Lists hold only the tenant's own rows.
    assert_eq!(
        store.employees(t, "").await.unwrap(),
        vec![a.employee.clone()]
    );
    assert_eq!(store.employees(t, "ALICE").await.unwrap().len(), 1);
    assert!(
        store.employees(t, "%").await.unwrap().is_empty(),
        "wildcards are literal"
    );
    assert_eq!(store.keys(t, None).await.unwrap().len(), 1);
    assert_eq!(store.connectors(t).await.unwrap().len(), 1);
    assert!(store.workstations(t).await.unwrap().is_empty());
});

store_test!(tokens_verify_only_with_the_right_secret, |db| {
    let store = &db.store;
    let tenant = store.create_tenant("acme").await.unwrap();
    let admin = store
        .create_admin(&tenant.id, "Helen", Role::Helpdesk)
        .await
        .unwrap();
    let token = admin.token.expose_secret().to_string();
    assert!(token.starts_with("lk_"), "{token}");
    assert!(
        !format!("{admin:?}").contains(&token),
        "Debug hides the token"
    );
    let found = store.authenticate(&admin.token).await.unwrap().unwrap();
    assert_eq!(found, admin.value);
    assert!(matches!(
        found.kind,
        latchkey::store::PrincipalKind::Admin {
            role: Role::Helpdesk,
            ..
        }
    ));
    // A wrong secret, an unknown id, a malformed token.
    let (prefix, _) = token.rsplit_once('_').unwrap();
    let wrong = SecretString::from(format!(
        "{prefix}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    ));
    assert_eq!(store.authenticate(&wrong).await.unwrap(), None);
    let unknown = SecretString::from(format!(
        "lk_{}_{}",
        "0".repeat(32),
        token.rsplit_once('_').unwrap().1
    ));
    assert_eq!(store.authenticate(&unknown).await.unwrap(), None);
    assert_eq!(
        store
            .authenticate(&SecretString::from("Bearer x"))
            .await
            .unwrap(),
        None
    );
    // Operators; revoked admins.
    let operator = store.create_operator("root").await.unwrap();
    assert_eq!(store.operator_count().await.unwrap(), 1);
    assert_eq!(
        store
            .authenticate(&operator.token)
            .await
            .unwrap()
            .unwrap()
            .kind,
        latchkey::store::PrincipalKind::Operator
    );
    store
        .revoke_admin(&tenant.id, &admin.value.id)
        .await
        .unwrap();
    assert_eq!(store.authenticate(&admin.token).await.unwrap(), None);
    // Workstations: enrolled tokens work, revoked ones do not.
    let ws = store.enroll_workstation(&tenant.id, "pc-1").await.unwrap();
    let found = store
        .authenticate_workstation(&ws.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, WorkstationStatus::Enrolled);
    assert_eq!(
        store.authenticate(&ws.token).await.unwrap(),
        None,
        "not a principal"
    );
    let approved = store
        .approve_workstation(&tenant.id, &ws.value.id)
        .await
        .unwrap();
    assert!(approved.is_approved());
    store
        .revoke_workstation(&tenant.id, &ws.value.id)
        .await
        .unwrap();
    assert!(
        store
            .authenticate_workstation(&ws.token)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .approve_workstation(&tenant.id, &ws.value.id)
            .await
            .is_err()
    );
});

store_test!(connector_secrets_are_sealed_bound_and_rotated, |db| {
    let store = &db.store;
    let a = fixture(store, "a").await;
    let b = fixture(store, "b").await;
    let t = &a.tenant.id;
    let read = |s: &Secrets| s.get("bind_password").unwrap().expose_secret().to_string();
    assert_eq!(
        read(&store.connector_secrets(t, &a.connector).await.unwrap()),
        "bind-secret-of-a"
    );
    store
        .set_connector_secret(
            t,
            &a.connector,
            "bind_password",
            &SecretString::from("new-pw"),
        )
        .await
        .unwrap();
    assert_eq!(
        read(&store.connector_secrets(t, &a.connector).await.unwrap()),
        "new-pw"
    );
    // One primary per tenant.
    let second = store
        .create_connector(
            t,
            NewConnector {
                plugin: "azure-ad".into(),
                role: ConnectorRole::Primary,
                config: Default::default(),
                enabled: true,
                granted: vec!["ldap".into(), "log".into(), "config".into()],
            },
            &Secrets::new(),
        )
        .await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    // The plaintext is nowhere in the table.
    let plain_rows = store
        .execute_unchecked(
            "UPDATE connector_secrets SET name = name WHERE ciphertext IS NULL OR name = 'new-pw'",
        )
        .await
        .unwrap();
    assert_eq!(plain_rows, 0);
    // A sealed value moved to another tenant's connector does not open there.
    store
        .execute_unchecked(&format!(
            "UPDATE connector_secrets SET \
             nonce = (SELECT nonce FROM connector_secrets WHERE connector_id = '{a}'), \
             ciphertext = (SELECT ciphertext FROM connector_secrets WHERE connector_id = '{a}') \
             WHERE connector_id = '{b}'",
            a = a.connector,
            b = b.connector
        ))
        .await
        .unwrap();
    let moved = store.connector_secrets(&b.tenant.id, &b.connector).await;
    match moved {
        Err(StoreError::MasterKey(message)) => {
            assert!(message.contains("does not open"), "{message}");
            assert!(!message.contains("new-pw"), "{message}");
        }
        other => panic!(
            "a moved secret opened: {:?}",
            other.map(|s| format!("{s:?}"))
        ),
    }
    store
        .set_connector_secret(
            &b.tenant.id,
            &b.connector,
            "bind_password",
            &SecretString::from("b2"),
        )
        .await
        .unwrap();
    // Rotation: a wrong old key changes nothing; the right one re-seals everything at once.
    let old = db.master_key();
    let new = MasterKey::generate();
    let wrong = store.rotate_master_key(&MasterKey::generate(), &new).await;
    assert!(matches!(wrong, Err(StoreError::MasterKey(_))), "{wrong:?}");
    assert_eq!(
        read(&store.connector_secrets(t, &a.connector).await.unwrap()),
        "new-pw"
    );
    assert_eq!(store.rotate_master_key(&old, &new).await.unwrap(), 2);
    let stale = store.connector_secrets(t, &a.connector).await;
    assert!(
        matches!(stale, Err(StoreError::MasterKey(_))),
        "the old key no longer opens"
    );
    let rotated = db.reopen(new).await;
    assert_eq!(
        read(&rotated.connector_secrets(t, &a.connector).await.unwrap()),
        "new-pw"
    );
    assert_eq!(
        read(
            &rotated
                .connector_secrets(&b.tenant.id, &b.connector)
                .await
                .unwrap()
        ),
        "b2"
    );
    rotated.close().await;
});

store_test!(key_status_rules_are_typed_refusals, |db| {
    let store = &db.store;
    let f = fixture(store, "a").await;
    let t = &f.tenant.id;
    for status in KeyStatus::ALL {
        if status == KeyStatus::Compromised {
            continue;
        }
        store.set_key_status(t, &f.key.id, status).await.unwrap();
        let slot = format!("slot-{status}");
        let began = store.begin_change(t, change(&f, &slot, b"e"), NOW).await;
        match (status.allows_new_password(), began) {
            (true, Ok((_, held))) => {
                store
                    .discard_held_delivery(t, &held.id, "test", NOW)
                    .await
                    .unwrap();
            }
            (
                false,
                Err(StoreError::KeyRefused {
                    refusal: KeyRefusal::NoNewPassword,
                    status: s,
                    ..
                }),
            ) => {
                assert_eq!(s, status)
            }
            (allowed, other) => panic!("{status}: allowed={allowed}, got {other:?}"),
        }
        let leased = store.lease_deliveries(t, &f.key.id, "ws", 1, 60, NOW).await;
        match (status == KeyStatus::Active, leased) {
            (true, Ok(_)) => {}
            (
                false,
                Err(StoreError::KeyRefused {
                    refusal: KeyRefusal::NoDelivery,
                    ..
                }),
            ) => {}
            (allowed, other) => panic!("{status}: delivery allowed={allowed}, got {other:?}"),
        }
    }
    // Another employee's key refuses; a compromised key stays compromised and its queue ends.
    store
        .set_key_status(t, &f.key.id, KeyStatus::Active)
        .await
        .unwrap();
    let mut other = change(&f, "x", b"e");
    other.employee_id = "someone-else".into();
    assert!(matches!(
        store.begin_change(t, other, NOW).await,
        Err(StoreError::KeyRefused {
            refusal: KeyRefusal::NotTheEmployees,
            ..
        })
    ));
    let pending = queued(store, &f, "alice", b"envelope").await;
    let (_, held) = store
        .begin_change(t, change(&f, "alice", b"e2"), NOW)
        .await
        .unwrap();
    store
        .set_key_status(t, &f.key.id, KeyStatus::Compromised)
        .await
        .unwrap();
    for id in [&pending, &held.id] {
        let d = store.delivery(t, id).await.unwrap();
        assert_eq!((d.state, d.ciphertext), (DeliveryState::Failed, None));
    }
    assert!(matches!(
        store.set_key_status(t, &f.key.id, KeyStatus::Active).await,
        Err(StoreError::KeyRefused {
            refusal: KeyRefusal::Terminal,
            ..
        })
    ));
});

store_test!(a_queued_delivery_goes_to_an_active_key_only, |db| {
    // The lease's own statement checks the key (no read before it): a key suspended or locked
    // with a delivery queued gets nothing and is told why; the delivery waits, untouched, and
    // goes once the key is Active again.
    let store = &db.store;
    let f = fixture(store, "acme").await;
    let t = &f.tenant.id;
    let id = queued(store, &f, "alice", b"envelope").await;
    for status in [KeyStatus::Suspended, KeyStatus::Locked] {
        store.set_key_status(t, &f.key.id, status).await.unwrap();
        match store
            .lease_deliveries(t, &f.key.id, "ws", 10, 60, NOW)
            .await
        {
            Err(StoreError::KeyRefused {
                refusal: KeyRefusal::NoDelivery,
                status: s,
                ..
            }) => assert_eq!(s, status),
            other => panic!("{status}: expected a refusal, got {other:?}"),
        }
        let waiting = store.delivery(t, &id).await.unwrap();
        assert_eq!(
            (
                waiting.state,
                waiting.attempts,
                waiting.ciphertext.as_deref()
            ),
            (DeliveryState::Pending, 0, Some(&b"envelope"[..])),
            "{status}"
        );
        store
            .set_key_status(t, &f.key.id, KeyStatus::Active)
            .await
            .unwrap();
    }
    not_found(
        store
            .lease_deliveries(t, "no-such-key", "ws", 10, 60, NOW)
            .await,
        "an unknown key",
    );
    let leased = store
        .lease_deliveries(t, &f.key.id, "ws", 10, 60, NOW)
        .await
        .unwrap();
    assert_eq!(
        leased.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
});

store_test!(audit_records_land_with_their_transaction, |db| {
    // PostgreSQL appends a transaction's records inside its COMMIT (a deferred trigger, so the
    // chain's head is never locked across a client round trip); SQLite at once. Either way a
    // record lands exactly when what it records does, chained like any other.
    let store = &db.store;
    let f = fixture(store, "audited").await;
    let t = &f.tenant.id;
    let id = queued(store, &f, "alice", b"envelope").await;
    let before = store.verify_audit().await.unwrap();
    let lease_audited = |n: usize| {
        let tenant = t.clone();
        store.lease_deliveries_audited(t, &f.key.id, "ws", 10, 60, NOW, move |_| {
            Some(record(&tenant, n))
        })
    };
    // The audit log refuses the record: the lease is refused with it, and nothing changed.
    let (refuse, allow) = match store.backend() {
        Backend::Sqlite => (
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
            "DROP TRIGGER refuse_audit",
        ),
        Backend::Postgres => (
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$; \
         CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
         FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            "DROP TRIGGER refuse_audit ON audit_log",
        ),
    };
    store.execute_unchecked(refuse).await.unwrap();
    match lease_audited(1).await {
        Err(StoreError::Database(e)) => assert!(e.to_string().contains("audit refused"), "{e}"),
        other => panic!("expected the database's refusal, got {other:?}"),
    }
    store.execute_unchecked(allow).await.unwrap();
    let waiting = store.delivery(t, &id).await.unwrap();
    assert_eq!(
        (waiting.state, waiting.attempts),
        (DeliveryState::Pending, 0)
    );
    let unchanged = store.verify_audit().await.unwrap();
    assert_eq!(
        (unchanged.records, unchanged.head_seq, unchanged.problem),
        (before.records, before.head_seq, None)
    );
    // Accepted: the lease and its record, the chain's next, whole.
    let leased = lease_audited(2).await.unwrap();
    assert_eq!(
        leased.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let after = store.verify_audit().await.unwrap();
    assert_eq!(
        (after.records, after.head_seq, after.problem),
        (before.records + 1, before.head_seq + 1, None)
    );
    let last = store.audit_records(t, before.head_seq, 10).await.unwrap();
    assert_eq!(
        last.iter()
            .map(|r| (r.seq, r.subject.as_deref()))
            .collect::<Vec<_>>(),
        [(before.head_seq + 1, Some("employee-2"))]
    );
    if store.backend() == Backend::Postgres {
        // Nothing is left waiting for a commit.
        let left = store.execute_unchecked("DELETE FROM audit_pending").await;
        assert_eq!(left.unwrap(), 0);
    }
});

store_test!(delivery_lifecycle, |db| {
    let store = &db.store;
    let f = fixture(store, "a").await;
    let t = &f.tenant.id;
    let (change1, held1) = store
        .begin_change(t, change(&f, "alice", b"first"), NOW)
        .await
        .unwrap();
    assert_eq!(change1.state, ChangeState::Held);
    assert_eq!(
        (held1.state, held1.ciphertext.as_deref()),
        (DeliveryState::Held, Some(&b"first"[..]))
    );
    // One change in flight per key and slot (partial unique index on held).
    let twice = store
        .begin_change(t, change(&f, "alice", b"again"), NOW)
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    // Another slot is independent.
    let (_, other_slot) = store
        .begin_change(t, change(&f, "bob", b"bob"), NOW)
        .await
        .unwrap();
    store
        .discard_held_delivery(t, &other_slot.id, "primary refused", NOW)
        .await
        .unwrap();
    // Held deliveries are never leased.
    assert!(
        store
            .lease_deliveries(t, &f.key.id, "ws", 10, 60, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    let first = store.release_delivery(t, &held1.id, NOW).await.unwrap();
    assert!(first.superseded.is_empty());
    assert_eq!(first.delivery.state, DeliveryState::Pending);
    assert!(
        store.release_delivery(t, &held1.id, NOW).await.is_err(),
        "released twice"
    );
    // The database itself refuses a second queued delivery for the slot.
    let raw = store
        .execute_unchecked(&format!(
            "INSERT INTO deliveries (id, tenant_id, key_id, slot, state, ciphertext, created_at) \
             SELECT 'rogue', tenant_id, key_id, slot, 'pending', ciphertext, created_at \
             FROM deliveries WHERE id = '{}'",
            held1.id
        ))
        .await;
    assert!(
        raw.is_err(),
        "two pending deliveries for one key and slot: {raw:?}"
    );
    // A newer change supersedes on release, atomically.
    let (_, held2) = store
        .begin_change(t, change(&f, "alice", b"second"), NOW + 1)
        .await
        .unwrap();
    let second = store.release_delivery(t, &held2.id, NOW + 1).await.unwrap();
    assert_eq!(second.superseded, vec![held1.id.clone()]);
    let old = store.delivery(t, &held1.id).await.unwrap();
    assert_eq!(
        (old.state, old.ciphertext),
        (DeliveryState::Superseded, None)
    );
    // Lease, no double claim, expiry, re-claim.
    let leased = store
        .lease_deliveries(t, &f.key.id, "ws-1", 10, 60, NOW + 2)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(
        (leased[0].id.as_str(), leased[0].attempts),
        (held2.id.as_str(), 1)
    );
    assert_eq!(leased[0].ciphertext.as_deref(), Some(&b"second"[..]));
    assert_eq!(leased[0].lease_expires_at, Some(NOW + 62));
    assert!(
        store
            .lease_deliveries(t, &f.key.id, "ws-2", 10, 60, NOW + 3)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .lease_deliveries(t, &f.key.id, "ws-2", 10, 60, NOW + 62)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    assert_eq!(again[0].leased_by.as_deref(), Some("ws-2"));
    assert_eq!(store.expire_leases(NOW + 121).await.unwrap(), 0);
    assert_eq!(store.expire_leases(NOW + 122).await.unwrap(), 1);
    assert_eq!(
        store.delivery(t, &held2.id).await.unwrap().state,
        DeliveryState::Pending
    );
    // Ack: delivered, ciphertext gone, idempotent; acks of ended ones change nothing.
    store
        .lease_deliveries(t, &f.key.id, "ws-1", 10, 60, NOW + 130)
        .await
        .unwrap();
    assert_eq!(
        store
            .ack_delivery(t, &f.key.id, &held2.id, NOW + 131)
            .await
            .unwrap(),
        AckOutcome::Delivered
    );
    let done = store.delivery(t, &held2.id).await.unwrap();
    assert_eq!(
        (done.state, done.ciphertext, done.finished_at),
        (DeliveryState::Delivered, None, Some(NOW + 131))
    );
    assert_eq!(
        store
            .ack_delivery(t, &f.key.id, &held2.id, NOW + 132)
            .await
            .unwrap(),
        AckOutcome::AlreadyDelivered
    );
    assert_eq!(
        store
            .ack_delivery(t, &f.key.id, &held1.id, NOW + 132)
            .await
            .unwrap(),
        AckOutcome::Ended(DeliveryState::Superseded)
    );
    // not_after: expired, ciphertext gone, never leased.
    let mut late = change(&f, "carol", b"late");
    late.not_after = Some(NOW + 500);
    let (_, held3) = store.begin_change(t, late, NOW).await.unwrap();
    store.release_delivery(t, &held3.id, NOW).await.unwrap();
    assert!(
        store
            .lease_deliveries(t, &f.key.id, "ws", 10, 60, NOW + 500)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.expire_deliveries(NOW + 500).await.unwrap(), 1);
    let expired = store.delivery(t, &held3.id).await.unwrap();
    assert_eq!(
        (expired.state, expired.ciphertext),
        (DeliveryState::Expired, None)
    );
    // Every final row has lost its ciphertext.
    for d in store.deliveries_of_key(t, &f.key.id).await.unwrap() {
        assert_eq!(d.ciphertext.is_some(), d.state.is_live(), "{d:?}");
    }
});

store_test!(concurrent_claims_deliver_each_exactly_once, |db| {
    let store = &db.store;
    let f = Arc::new(fixture(store, "a").await);
    const N: usize = 200;
    for i in 0..N {
        queued(
            store,
            &f,
            &format!("slot-{i:03}"),
            format!("envelope-{i}").as_bytes(),
        )
        .await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .lease_deliveries(
                        &f.tenant.id,
                        &f.key.id,
                        &format!("ws-{worker}"),
                        5,
                        300,
                        NOW,
                    )
                    .await
                    .expect("lease");
                if batch.is_empty() {
                    return mine;
                }
                for d in batch {
                    let outcome = store
                        .ack_delivery(&f.tenant.id, &f.key.id, &d.id, NOW)
                        .await;
                    assert_eq!(outcome.expect("ack"), AckOutcome::Delivered, "{d:?}");
                    mine.push(d.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("claimer"));
    }
    let elapsed = started.elapsed();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (N, N),
        "each delivery claimed exactly once"
    );
    let rows = store
        .deliveries_of_key(&f.tenant.id, &f.key.id)
        .await
        .unwrap();
    assert!(
        rows.iter().all(|d| d.state == DeliveryState::Delivered
            && d.ciphertext.is_none()
            && d.attempts == 1)
    );
    eprintln!(
        "{:?}: {N} deliveries claimed and acked by 8 workers in {elapsed:?} ({:.0}/s)",
        store.backend(),
        N as f64 / elapsed.as_secs_f64()
    );
});

store_test!(unfinished_changes_for_crash_recovery, |db| {
    let store = &db.store;
    let f = fixture(store, "a").await;
    let t = &f.tenant.id;
    let (held, held_delivery) = store
        .begin_change(t, change(&f, "s1", b"1"), NOW)
        .await
        .unwrap();
    let (applying, applying_delivery) = store
        .begin_change(t, change(&f, "s2", b"2"), NOW + 1)
        .await
        .unwrap();
    store
        .set_change_state(t, &applying.id, ChangeState::Applying, None, NOW + 1)
        .await
        .unwrap();
    store
        .record_change_outcome(t, &applying.id, &f.connector, json!({"set": true}), NOW + 1)
        .await
        .unwrap();
    let (done, done_delivery) = store
        .begin_change(t, change(&f, "s3", b"3"), NOW + 2)
        .await
        .unwrap();
    store
        .set_change_state(t, &done.id, ChangeState::Applying, None, NOW + 2)
        .await
        .unwrap();
    store
        .release_delivery(t, &done_delivery.id, NOW + 2)
        .await
        .unwrap();
    let finished = store
        .set_change_state(t, &done.id, ChangeState::Applied, None, NOW + 3)
        .await
        .unwrap();
    assert_eq!(finished.finished_at, Some(NOW + 3));
    assert!(
        store
            .set_change_state(t, &done.id, ChangeState::Failed, Some("x"), NOW + 4)
            .await
            .is_err()
    );
    let unfinished = store.unfinished_changes().await.unwrap();
    let got: Vec<_> = unfinished
        .iter()
        .map(|u| {
            (
                u.change.id.clone(),
                u.change.state,
                u.held_delivery_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                held.id.clone(),
                ChangeState::Held,
                Some(held_delivery.id.clone())
            ),
            (
                applying.id.clone(),
                ChangeState::Applying,
                Some(applying_delivery.id.clone())
            ),
        ]
    );
    assert_eq!(
        unfinished[1].change.outcomes.get(&f.connector),
        Some(&json!({"set": true}))
    );
    // Resolving one (the directory never changed): destroy the delivery, fail the change.
    store
        .discard_held_delivery(
            t,
            &held_delivery.id,
            "not applied before the crash",
            NOW + 5,
        )
        .await
        .unwrap();
    store
        .set_change_state(
            t,
            &held.id,
            ChangeState::Failed,
            Some("interrupted"),
            NOW + 5,
        )
        .await
        .unwrap();
    assert_eq!(store.unfinished_changes().await.unwrap().len(), 1);
});

fn record(tenant: &str, i: usize) -> NewAuditRecord {
    NewAuditRecord {
        tenant_id: Some(tenant.to_string()),
        actor: format!("admin-{}", i % 3),
        action: "password.reset".into(),
        subject: Some(format!("employee-{i}")),
        details: json!({"i": i, "connectors": ["ad"]}),
    }
}

store_test!(audit_chain_survives_concurrency_and_names_tampering, |db| {
    let store = &db.store;
    let tenant = store.create_tenant("acme").await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        let tenant = tenant.id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .append_audit(record(&tenant, worker * 25 + i), NOW)
                    .await
                    .expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!(
        "{:?}: 200 concurrent audit appends in {:?}",
        store.backend(),
        started.elapsed()
    );
    let report = store.verify_audit().await.unwrap();
    assert_eq!(
        (report.records, report.head_seq, report.problem),
        (200, 200, None)
    );
    let page = store.audit_records(&tenant.id, 0, 500).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    assert!(
        store
            .audit_records("other", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Deleting a middle record: verify names the gap.
    store
        .execute_unchecked("DELETE FROM audit_log WHERE seq = 150")
        .await
        .unwrap();
    assert_eq!(
        store.verify_audit().await.unwrap().problem,
        Some(AuditProblem::Missing { seq: 150 })
    );
    // Editing an earlier record's details: verify names it first.
    store
        .execute_unchecked("UPDATE audit_log SET details = '{\"i\":0}' WHERE seq = 50")
        .await
        .unwrap();
    assert_eq!(
        store.verify_audit().await.unwrap().problem,
        Some(AuditProblem::Edited { seq: 50 })
    );
});

store_test!(audit_chain_names_out_of_order_and_truncated_records, |db| {
    let store = &db.store;
    for i in 0..5 {
        store
            .append_audit(record("t", i), NOW + i as i64)
            .await
            .unwrap();
    }
    // Swapping two records' content while keeping their seqs breaks the chain at the first.
    store
        .execute_unchecked(
            "UPDATE audit_log SET seq = 100 WHERE seq = 2; \
             UPDATE audit_log SET seq = 2 WHERE seq = 3; \
             UPDATE audit_log SET seq = 3 WHERE seq = 100",
        )
        .await
        .unwrap();
    let problem = store.verify_audit().await.unwrap().problem;
    assert!(
        matches!(
            problem,
            Some(AuditProblem::Edited { seq: 2 }) | Some(AuditProblem::OutOfOrder { seq: 2 })
        ),
        "{problem:?}"
    );
    // Cutting the tail is found through the head.
    let tail = db.reopen(db.master_key()).await;
    tail.execute_unchecked("DELETE FROM audit_log WHERE seq >= 2")
        .await
        .unwrap();
    assert_eq!(
        tail.verify_audit().await.unwrap().problem,
        Some(AuditProblem::Missing { seq: 2 })
    );
    tail.close().await;
});

store_test!(
    sync_checks_are_due_settled_once_and_rewrite_the_outcome,
    |db| {
        let store = &db.store;
        let f = fixture(store, "sync").await;
        let t = &f.tenant.id;
        let (change, _) = store
            .begin_change(t, change(&f, "alice", b"e"), NOW)
            .await
            .unwrap();
        store
            .record_change_outcome(
                t,
                &change.id,
                "entra",
                json!({"ok": true, "status": "awaiting-sync", "steps": []}),
                NOW,
            )
            .await
            .unwrap();
        store
            .add_sync_check(NewSyncCheck {
                change_id: change.id.clone(),
                connector_id: "entra".into(),
                tenant_id: t.clone(),
                account: json!({"id": "obj-1", "username": "alice"}),
                since: NOW,
                deadline: NOW + 60,
                watch_until: NOW + 600,
                next_check_at: NOW + 1,
            })
            .await
            .unwrap();
        // Not due before its time, due after; a second check of the same outcome is refused.
        assert!(store.due_sync_checks(NOW, 10).await.unwrap().is_empty());
        let due = store.due_sync_checks(NOW + 1, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        let check = &due[0];
        assert_eq!(
            (check.state, check.checks, check.account["id"].as_str()),
            (SyncState::Awaiting, 0, Some("obj-1"))
        );
        assert!(
            store
                .add_sync_check(NewSyncCheck {
                    change_id: change.id.clone(),
                    connector_id: "entra".into(),
                    tenant_id: t.clone(),
                    account: json!({}),
                    since: NOW,
                    deadline: NOW,
                    watch_until: NOW,
                    next_check_at: NOW,
                })
                .await
                .is_err()
        );

        store
            .reschedule_sync_check(check, NOW + 5, Some("Graph is busy"))
            .await
            .unwrap();
        assert!(store.due_sync_checks(NOW + 4, 10).await.unwrap().is_empty());
        let check = store.due_sync_checks(NOW + 5, 10).await.unwrap().remove(0);
        assert_eq!(check.checks, 1);
        assert_eq!(check.last_error.as_deref(), Some("Graph is busy"));

        let audit = || {
            NewAuditRecord::new(
                Some(t.as_str()),
                "latchkey",
                "password.change.synced",
                Some(change.id.as_str()),
                json!({"change": change.id}),
            )
        };
        let moved = store
            .settle_sync_check(
                &check,
                SyncState::Synced,
                Some(NOW + 7),
                NOW + 7,
                |o| o["status"] = json!("synced"),
                audit(),
                NOW + 7,
            )
            .await
            .unwrap();
        assert!(moved);
        // A sweep that read the same check before it moved does not move it again.
        let again = store
            .settle_sync_check(
                &check,
                SyncState::Overdue,
                None,
                NOW + 8,
                |o| o["status"] = json!("sync-overdue"),
                audit(),
                NOW + 8,
            )
            .await
            .unwrap();
        assert!(!again);
        let change = store.password_change(t, &change.id).await.unwrap();
        assert_eq!(change.outcomes["entra"]["status"], "synced");
        assert_eq!(change.outcomes["entra"]["ok"], true, "the rest is kept");
        let checks = store.sync_checks_of_change(t, &change.id).await.unwrap();
        assert_eq!(
            (checks[0].state, checks[0].synced_at),
            (SyncState::Synced, Some(NOW + 7))
        );
        assert!(
            store
                .due_sync_checks(NOW + 100, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let synced = store
            .audit_records_matching(t, 0, 100, Some("password.change.synced"))
            .await
            .unwrap();
        assert_eq!(synced.len(), 1, "one record for one move");
        assert!(store.verify_audit().await.unwrap().problem.is_none());
    }
);

store_test!(
    console_sessions_end_on_expiry_sign_out_and_revocation,
    |db| {
        let store = &db.store;
        let tenant = store.create_tenant("sessions").await.unwrap();
        let admin = store
            .create_admin(&tenant.id, "Ada", Role::Admin)
            .await
            .unwrap();
        let (value, session) = store
            .create_console_session(&admin.value, NOW)
            .await
            .unwrap();
        assert_eq!(session.expires_at, NOW + latchkey::store::SESSION_SECONDS);
        assert_eq!(session.csrf.len(), 43, "256 bits of base64url");

        // Found while live, with its principal and CSRF token; never by another value.
        let found = store
            .console_session(&value, NOW + 60)
            .await
            .unwrap()
            .expect("a live session");
        assert_eq!(found.principal, admin.value);
        assert_eq!(found.csrf, session.csrf);
        let other = SecretString::from(format!("{}x", value.expose_secret()));
        assert!(store.console_session(&other, NOW).await.unwrap().is_none());
        // The database keeps a hash of the value, never the value.
        let cells = store.console_sessions_raw().await.unwrap();
        assert_eq!(cells.len(), 3);
        assert!(
            cells.iter().all(|c| !c.contains(value.expose_secret())),
            "the session value is stored in the clear"
        );

        // Expired: gone.
        assert!(
            store
                .console_session(&value, session.expires_at)
                .await
                .unwrap()
                .is_none()
        );

        // Signed out: gone.
        let (second, _) = store
            .create_console_session(&admin.value, NOW)
            .await
            .unwrap();
        store.end_console_session(&second).await.unwrap();
        assert!(store.console_session(&second, NOW).await.unwrap().is_none());

        // The admin revoked: every session of theirs is gone.
        let (third, _) = store
            .create_console_session(&admin.value, NOW)
            .await
            .unwrap();
        assert!(store.console_session(&third, NOW).await.unwrap().is_some());
        store
            .revoke_admin(&tenant.id, &admin.value.id)
            .await
            .unwrap();
        assert!(store.console_session(&third, NOW).await.unwrap().is_none());
    }
);
