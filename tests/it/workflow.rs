//! The host's own password history on both backends (`store_test!`): a remembered password is
//! found, the oldest falls out beyond the tenant's length, histories do not cross employees or
//! tenants, and no row holds the password in any encoding.

use latchkey::capabilities::secrets::Secrets;
use latchkey::store::{Employee, NewEmployee, Store, Tenant};
use latchkey::workflow::history::{Origin, in_history, remember};
use latchkey_tests::databases::tenant_with_connector;
use latchkey_tests::store_test;
use secrecy::SecretString;

/// A tenant with one connector and two employees.
async fn fixture(store: &Store, name: &str) -> (Tenant, Employee, Employee) {
    let (tenant, connector) = tenant_with_connector(store, name, &Secrets::new()).await;
    let mut employees = Vec::new();
    for who in ["alice", "bob"] {
        let employee = store
            .create_employee(
                &tenant.id,
                NewEmployee {
                    connector_id: connector.id.clone(),
                    account_id: format!("guid-{who}"),
                    username: who.into(),
                    display_name: None,
                    account: serde_json::Value::Null,
                },
            )
            .await
            .expect("employee");
        employees.push(employee);
    }
    let bob = employees.pop().unwrap();
    let alice = employees.pop().unwrap();
    (tenant, alice, bob)
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

store_test!(a_remembered_password_is_found, |db| {
    let store = &db.store;
    let (tenant, alice, _) = fixture(store, "acme").await;
    assert_eq!(store.password_history_length(&tenant.id).await.unwrap(), 24);
    let password = secret("Corr3ct-Horse-Battery");
    assert!(
        !in_history(store, &tenant.id, &alice.id, &password)
            .await
            .unwrap()
    );
    remember(store, &tenant.id, &alice.id, &password, Origin::Typed)
        .await
        .unwrap();
    assert!(
        in_history(store, &tenant.id, &alice.id, &password)
            .await
            .unwrap()
    );
    assert!(
        !in_history(
            store,
            &tenant.id,
            &alice.id,
            &secret("Corr3ct-Horse-Battery!")
        )
        .await
        .unwrap()
    );
});

store_test!(the_oldest_falls_out_beyond_the_tenants_length, |db| {
    let store = &db.store;
    let (tenant, alice, _) = fixture(store, "acme").await;
    store
        .set_password_history_length(&tenant.id, 3)
        .await
        .unwrap();
    assert!(
        store
            .set_password_history_length(&tenant.id, 101)
            .await
            .is_err()
    );
    let passwords: Vec<_> = (0..4).map(|i| secret(&format!("Passw0rd-{i}"))).collect();
    for password in &passwords {
        remember(store, &tenant.id, &alice.id, password, Origin::Typed)
            .await
            .unwrap();
    }
    assert!(
        !in_history(store, &tenant.id, &alice.id, &passwords[0])
            .await
            .unwrap()
    );
    for password in &passwords[1..] {
        assert!(
            in_history(store, &tenant.id, &alice.id, password)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        store
            .password_hashes(&tenant.id, &alice.id)
            .await
            .unwrap()
            .len(),
        3
    );
    // Pruned in the same transaction: the table holds 3 rows, not 4.
    assert_eq!(store.password_history_raw().await.unwrap().len(), 3 * 5);
    // A shorter length hides the older entries at once.
    store
        .set_password_history_length(&tenant.id, 1)
        .await
        .unwrap();
    assert!(
        !in_history(store, &tenant.id, &alice.id, &passwords[2])
            .await
            .unwrap()
    );
    assert!(
        in_history(store, &tenant.id, &alice.id, &passwords[3])
            .await
            .unwrap()
    );
    // None remembers nothing.
    store
        .set_password_history_length(&tenant.id, 0)
        .await
        .unwrap();
    assert!(
        !in_history(store, &tenant.id, &alice.id, &passwords[3])
            .await
            .unwrap()
    );
});

store_test!(histories_do_not_cross_employees_or_tenants, |db| {
    let store = &db.store;
    let (acme, alice, bob) = fixture(store, "acme").await;
    let (globex, carol, _) = fixture(store, "globex").await;
    let password = secret("Shared-Passw0rd");
    remember(store, &acme.id, &alice.id, &password, Origin::Typed)
        .await
        .unwrap();
    assert!(
        !in_history(store, &acme.id, &bob.id, &password)
            .await
            .unwrap()
    );
    assert!(
        !in_history(store, &globex.id, &carol.id, &password)
            .await
            .unwrap()
    );
    // Naming another tenant's employee finds nothing and cannot write.
    assert!(
        store
            .password_hashes(&globex.id, &alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !in_history(store, &globex.id, &alice.id, &password)
            .await
            .unwrap()
    );
    assert!(
        remember(store, &globex.id, &alice.id, &password, Origin::Typed)
            .await
            .is_err()
    );
    assert!(
        in_history(store, &acme.id, &alice.id, &password)
            .await
            .unwrap()
    );
});

store_test!(no_row_holds_the_password, |db| {
    let store = &db.store;
    let (tenant, alice, _) = fixture(store, "acme").await;
    let plain = "Unm1stakable-Secret";
    remember(store, &tenant.id, &alice.id, &secret(plain), Origin::Typed)
        .await
        .unwrap();
    let cells = store.password_history_raw().await.unwrap();
    assert_eq!(cells.len(), 5);
    assert!(cells[3].starts_with("$argon2id$"));
    let utf8 = plain.as_bytes().to_vec();
    let utf16: Vec<u8> = plain.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for cell in &cells {
        let bytes = cell.as_bytes();
        for needle in [&utf8, &utf16] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_slice()));
        }
        assert!(!cell.to_lowercase().contains(&plain.to_lowercase()));
    }
});
