//! Packages: only signed packages from trusted keys load (unless the operator allows unsigned
//! ones), any change after signing is caught, and a component that is not a connector is
//! refused with a message saying what is wrong.

use std::fs;
use std::path::Path;

use latchkey::runtime::{Package, PackageError, PluginRegistry, Provenance, TrustStore, package};
use latchkey_tests::{component, manifest, runtime, signed_package, trust};

async fn install(dir: &Path, trust: TrustStore) -> Result<Provenance, PackageError> {
    let cache = tempfile::tempdir().unwrap();
    let registry = PluginRegistry::new(runtime(cache.path()), trust);
    registry.install(dir).await.map(|p| p.provenance().clone())
}

fn unsigned_package(name: &str, out: &Path) -> std::path::PathBuf {
    let dir = out.join(name);
    Package::assemble(&manifest(name), &component(name), &dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_package_from_a_trusted_key_loads() {
    let out = tempfile::tempdir().unwrap();
    let dir = signed_package("test-echo", out.path());
    assert!(matches!(
        install(&dir, trust()).await,
        Ok(Provenance::Signed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_packages_are_refused_unless_allowed() {
    let out = tempfile::tempdir().unwrap();
    let dir = unsigned_package("test-echo", out.path());
    let error = install(&dir, trust()).await.unwrap_err();
    assert!(matches!(error, PackageError::Unsigned), "{error:?}");
    assert!(
        error.to_string().contains("--allow-unsigned-plugins"),
        "{error}"
    );
    let allowing = trust().allowing_unsigned();
    assert_eq!(
        install(&dir, allowing).await.unwrap(),
        Provenance::UnsignedAllowed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_signed_by_an_unknown_key_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let dir = unsigned_package("test-echo", out.path());
    let stranger = out.path().join("stranger.pem");
    let stranger_id = package::generate_key(&stranger).unwrap();
    Package::read(&dir)
        .unwrap()
        .sign(&package::read_signing_key(&stranger).unwrap())
        .unwrap();
    let error = install(&dir, trust()).await.unwrap_err();
    assert!(matches!(&error, PackageError::UntrustedSigner { key_id } if *key_id == stranger_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_after_signing_is_caught() {
    let out = tempfile::tempdir().unwrap();
    // A capability added to the manifest.
    let dir = signed_package("test-echo", out.path());
    let text = fs::read_to_string(dir.join("manifest.toml")).unwrap();
    fs::write(
        dir.join("manifest.toml"),
        text.replace(r#""log", "config""#, r#""log", "config", "ldap""#),
    )
    .unwrap();
    let error = install(&dir, trust()).await.unwrap_err();
    assert!(matches!(error, PackageError::Tampered { .. }), "{error:?}");
    assert!(error.to_string().contains("changed after signing"));

    // One byte of the component flipped.
    let dir = signed_package("test-trap", &out.path().join("second"));
    let mut wasm = fs::read(dir.join("plugin.wasm")).unwrap();
    let middle = wasm.len() / 2;
    wasm[middle] ^= 1;
    fs::write(dir.join("plugin.wasm"), wasm).unwrap();
    assert!(matches!(
        install(&dir, trust()).await,
        Err(PackageError::Tampered { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_of_another_world_is_refused_with_what_is_missing() {
    let out = tempfile::tempdir().unwrap();
    let dir = signed_package("test-wrong-world", out.path());
    let error = install(&dir, trust()).await.unwrap_err();
    let PackageError::WrongWorld(why) = &error else {
        panic!("{error:?}")
    };
    assert!(
        why.contains("does not export `latchkey:connector/connector@0.1.0`"),
        "{why}"
    );
    assert!(
        why.contains("wasi:cli/run@0.2"),
        "it should say what the component exports: {why}"
    );
    assert!(why.contains("export_connector!"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_module_is_refused_as_not_a_component() {
    let out = tempfile::tempdir().unwrap();
    let core = out.path().join("core.wasm");
    fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let dir = out.path().join("core");
    Package::assemble(&manifest("test-echo"), &core, &dir).unwrap();
    let allowing = TrustStore::default().allowing_unsigned();
    let error = install(&dir, allowing).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("core WebAssembly module, not a component"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_version_and_identity_must_match_the_manifest() {
    let out = tempfile::tempdir().unwrap();
    let allowing = || TrustStore::default().allowing_unsigned();

    let dir = unsigned_package("test-echo", &out.path().join("wit"));
    let text = fs::read_to_string(dir.join("manifest.toml")).unwrap();
    fs::write(
        dir.join("manifest.toml"),
        text.replace(r#"wit = "0.1.0""#, r#"wit = "0.2.0""#),
    )
    .unwrap();
    let error = install(&dir, allowing()).await.unwrap_err();
    assert!(matches!(error, PackageError::WitVersion(_)), "{error:?}");
    assert!(error.to_string().contains("supports 0.1.0"), "{error}");

    let dir = unsigned_package("test-echo", &out.path().join("id"));
    fs::write(
        dir.join("manifest.toml"),
        text.replace(r#"id = "test-echo""#, r#"id = "not-echo""#),
    )
    .unwrap();
    let error = install(&dir, allowing()).await.unwrap_err();
    assert!(
        matches!(&error, PackageError::DescribeMismatch { field: "id", found, .. } if found == "test-echo"),
        "{error:?}"
    );
}
