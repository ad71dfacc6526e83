//! A plugin call: a fresh instance per call (what Latchkey does), a warm instance (what it
//! would cost without isolation) and the same check in native Rust, side by side; and
//! keyproto's server-side operations.

use std::time::{Duration, Instant};

use latchkey::capabilities::Capability;
use latchkey::runtime::wit::types::Account;
use latchkey::runtime::{ConnectorInstance, ConnectorSettings, Limits};
use secrecy::SecretString;

use crate::report::{Section, met, quantile, us};

fn account() -> Account {
    Account {
        id: "id-jdoe".into(),
        username: "jdoe".into(),
        principal_name: Some("jdoe@corp.test".into()),
        display_name: Some("John Doe".into()),
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    }
}

/// Median and p99 of `rounds` timed runs of `f` (after a tenth as many warm-up runs).
async fn time<F, Fut>(rounds: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..rounds / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    (quantile(&samples, 0.5), quantile(&samples, 0.99))
}

pub async fn run(quick: bool) -> Section {
    let rounds = if quick { 500 } else { 20_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = crate::setup::registry(&["test-echo"], dir.path()).await;
    let instance = ConnectorInstance::new(
        registry.get("test-echo").expect("test-echo"),
        ConnectorSettings {
            tenant: "bench".into(),
            connector: "echo".into(),
            granted: [Capability::Log].into_iter().collect(),
            config: Default::default(),
            limits: Limits::default(),
            ldap: None,
            graph: None,
        },
    )
    .expect("instance");
    let account = account();
    let candidate = SecretString::from("Tr0ub4dor&3-horse");
    let mut section = Section::new(
        "A plugin call, and keyproto on the server",
        &format!(
            "`check-password` of `plugins/test-echo` (Active Directory's default rules: length, \
             3 of 5 classes, account name, display-name tokens) on a 17-character candidate, \
             {rounds} calls one after the other: in a fresh instance per call (what Latchkey \
             does: a new store, WASI context, limiter and deadline, instantiation from the \
             pre-instantiated component, the call, size checks, log flush, drop), in one warm \
             instance (never done by Latchkey, shown for the cost of isolation), and the same \
             check compiled natively. Then keyproto's server side: seal one envelope (HPKE + \
             Ed25519), verify one ack with the key's public keys parsed for it (what an ack \
             alone costs), and verify one more ack of a key already parsed (what each further \
             ack of a pull costs: the server parses a key once per request)."
        ),
        &["what", "p50", "p99", "per second (one core)"],
    );
    let (fresh, fresh99) = time(rounds, || async {
        let v = instance
            .check_password(&account, &candidate)
            .await
            .expect("call");
        assert!(v.is_empty());
    })
    .await;
    let mut warm = instance.warm().await.expect("warm");
    let mut warm_samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        assert!(warm.check_password(&account, "Tr0ub4dor&3-horse").await);
        warm_samples.push(started.elapsed());
    }
    warm_samples.sort();
    let native_account = latchkey_plugin_sdk::Account {
        id: account.id.clone(),
        username: account.username.clone(),
        principal_name: account.principal_name.clone(),
        display_name: account.display_name.clone(),
        email: None,
        location: None,
        enabled: true,
        locked_out: false,
        synced_from_on_premises: false,
    };
    let policy = latchkey_plugin_sdk::complexity::ad_default_policy();
    let mut native_samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let v = latchkey_plugin_sdk::complexity::check(
            std::hint::black_box("Tr0ub4dor&3-horse"),
            &native_account,
            &policy,
        );
        native_samples.push(started.elapsed());
        assert!(v.is_empty());
    }
    native_samples.sort();
    let per_second = |d: Duration| format!("{:.0}", 1.0 / d.as_secs_f64().max(1e-9));
    section.row(vec![
        "fresh instance + check-password".into(),
        us(fresh),
        us(fresh99),
        per_second(fresh),
    ]);
    let (w50, w99) = (quantile(&warm_samples, 0.5), quantile(&warm_samples, 0.99));
    section.row(vec![
        "warm instance, check-password".into(),
        us(w50),
        us(w99),
        per_second(w50),
    ]);
    let (n50, n99) = (
        quantile(&native_samples, 0.5),
        quantile(&native_samples, 0.99),
    );
    section.row(vec![
        "native Rust, the same check".into(),
        us(n50),
        us(n99),
        per_second(n50),
    ]);

    // keyproto, server side.
    let server_key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut key =
        keyproto::softkey::SoftwareKey::generate("bench", &mut rand_core::OsRng).expect("key");
    let tenant = uuid::Uuid::new_v4();
    key.provision(keyproto::envelope::TrustAnchor {
        tenant: keyproto::identity::TenantId(*tenant.as_bytes()),
        server_key: server_key.verifying_key(),
    })
    .expect("provision");
    let record = latchkey::store::Key {
        id: "k".into(),
        tenant_id: tenant.to_string(),
        serial: "bench".into(),
        kem_public_key: key.identity().kem_public_key().to_vec(),
        sig_public_key: key.identity().sig_public_key().as_bytes().to_vec(),
        status: latchkey::store::KeyStatus::Active,
        employee_id: None,
        created_at: 0,
        updated_at: 0,
    };
    let password = SecretString::from("A-generated-passw0rd!");
    let mut sequence = 0;
    let (seal, seal99) = time(rounds / 4, || {
        sequence += 1;
        let s = sequence;
        let (server_key, record, password) = (&server_key, &record, &password);
        async move {
            latchkey::delivery::seal_for_key(
                server_key,
                record,
                "jdoe",
                "jdoe",
                password,
                s,
                latchkey::store::now(),
                3600,
            )
            .expect("seal");
        }
    })
    .await;
    section.row(vec![
        "keyproto: seal one envelope".into(),
        us(seal),
        us(seal99),
        per_second(seal),
    ]);
    let sealed = latchkey::delivery::seal_for_key(
        &server_key,
        &record,
        "jdoe",
        "jdoe",
        &password,
        1_000_000,
        latchkey::store::now(),
        3600,
    )
    .expect("seal");
    let ack = key
        .receive(&sealed.envelope, latchkey::store::now() as u64)
        .expect("open");
    let delivery = latchkey::store::Delivery {
        id: sealed.delivery_id.clone(),
        tenant_id: tenant.to_string(),
        key_id: "k".into(),
        slot: "jdoe".into(),
        change_id: None,
        state: latchkey::store::DeliveryState::Leased,
        ciphertext: None,
        created_at: 0,
        released_at: None,
        not_after: None,
        lease_expires_at: None,
        leased_by: None,
        attempts: 1,
        finished_at: None,
        failure: None,
        sequence: sealed.sequence,
        receipt: Some(sealed.receipt.clone()),
    };
    let (verify, verify99) = time(rounds / 4, || async {
        latchkey::delivery::verify_ack(&delivery, &record, &ack).expect("verify");
    })
    .await;
    section.row(vec![
        "keyproto: verify one ack (key parsed for it)".into(),
        us(verify),
        us(verify99),
        per_second(verify),
    ]);
    let verifier = latchkey::delivery::AckVerifier::for_key(&record).expect("a usable key");
    let (again, again99) = time(rounds / 4, || async {
        verifier.verify(&delivery, &ack).expect("verify");
    })
    .await;
    section.row(vec![
        "keyproto: verify one more ack of the same key".into(),
        us(again),
        us(again99),
        per_second(again),
    ]);
    section.finding(format!(
        "Goal: a plugin call is microseconds — {} (a fresh instance per call: {}; isolation \
         costs {} over a warm instance).",
        met(fresh < Duration::from_millis(1)),
        us(fresh),
        us(fresh.saturating_sub(w50))
    ));
    section
}
