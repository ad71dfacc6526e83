//! `latchkey plugin new` and `latchkey plugin test`, through the real binary: the AD connector
//! passes every conformance check against the Samba DC, each deliberately broken plugin fails
//! with its reason shown, and a freshly scaffolded plugin builds and passes unmodified.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use latchkey_tests::samba::{self, ServiceAccount, UserSpec};
use latchkey_tests::server::binary;
use latchkey_tests::{component, manifest, workspace_root};

/// One row of the suite's table.
#[derive(Debug)]
struct Row {
    check: String,
    result: String,
    reason: String,
}

/// What one `latchkey plugin test` run printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    rows: Vec<Row>,
}

impl Run {
    fn row(&self, check: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.check == check)
            .unwrap_or_else(|| panic!("no row `{check}` in:\n{}", self.stdout))
    }

    /// Assert that `check` has `result` and a reason containing `needle`.
    fn expect(&self, check: &str, result: &str, needle: &str) {
        let row = self.row(check);
        assert!(
            row.result == result && row.reason.contains(needle),
            "`{check}` should be {result} with `{needle}` in its reason, got {row:?}; the table:\n{}",
            self.stdout
        );
    }

    fn with(&self, result: &str) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.result == result).collect()
    }
}

fn parse_rows(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .filter_map(|line| {
            ["PASS", "FAIL", "SKIP"].into_iter().find_map(|result| {
                let marker = format!("  {result}    ");
                let (check, reason) = line.split_once(&marker)?;
                Some(Row {
                    check: check.trim_end().to_string(),
                    result: result.to_string(),
                    reason: reason.to_string(),
                })
            })
        })
        .collect()
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

/// `latchkey plugin test PATH [--manifest M] --config FILE`.
fn plugin_test(path: &Path, manifest: Option<&Path>, config: &Path) -> Run {
    let mut command = Command::new(binary());
    command.args(["plugin", "test"]).arg(path);
    if let Some(manifest) = manifest {
        command.arg("--manifest").arg(manifest);
    }
    command
        .arg("--config")
        .arg(config)
        .env("LATCHKEY_LOG", "warn");
    let out = output(&mut command);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        success: out.status.success(),
        rows: parse_rows(&stdout),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[tokio::test]
async fn the_ad_connector_passes_every_check_against_the_dc() {
    let dc = samba::dc();
    let user = dc.create_user("lkconf", UserSpec::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (bind_dn, bind_password) = dc.service_account(ServiceAccount::Delegated);
    let password_file = dir.path().join("bind-password");
    std::fs::write(&password_file, format!("{bind_password}\n")).expect("writing the secret");
    let config = dir.path().join("conformance.toml");
    std::fs::write(
        &config,
        format!(
            "[connector]\nurl = {}\nbase_dn = {}\nbind_dn = {}\nca_file = {}\ntimeout_ms = 5000\n\n\
             [secrets]\nbind_password_file = {}\n\n[test]\naccount = {}\n",
            toml_string(&dc.ldaps_url),
            toml_string(&dc.staff_ou),
            toml_string(bind_dn),
            toml_string(&dc.ca_file.to_string_lossy()),
            toml_string(&password_file.to_string_lossy()),
            toml_string(&user.username),
        ),
    )
    .expect("writing the config");

    let run = plugin_test(&component("ad-ldap"), Some(&manifest("ad-ldap")), &config);
    println!("{}", run.stdout);
    assert!(
        run.success && run.with("FAIL").is_empty() && run.with("SKIP").is_empty(),
        "the AD connector should pass every check:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.rows.len() >= 20, "too few rows:\n{}", run.stdout);
    for check in [
        "find-accounts: exact search",
        "check-password: too short",
        "check-password: contains the account name",
        "set-password: a valid password",
        "password-changed-at: moves",
        "errors: set-password, unknown account",
    ] {
        run.expect(check, "PASS", "");
    }
    // The suite really reset the account: its old password is gone.
    assert!(
        dc.bind(&user.dn, &user.password).await.is_err(),
        "the test user's password should have been reset by the suite"
    );
    // Secrets are never printed.
    assert!(!run.stdout.contains(bind_password) && !run.stderr.contains(bind_password));
}

/// A suite file for the slapd of this run, bound as the writer service account, with a fresh
/// test user: (config file, user, bind password). `dir` holds the files.
async fn slapd_suite(
    dir: &Path,
    prefix: &str,
) -> (PathBuf, latchkey_tests::slapd::TestUser, &'static str) {
    let server = latchkey_tests::slapd::slapd();
    let user = server
        .create_user(prefix, latchkey_tests::slapd::UserSpec::default())
        .await;
    let (bind_dn, bind_password) =
        server.service_account(latchkey_tests::slapd::ServiceAccount::Writer);
    let password_file = dir.join("bind-password");
    std::fs::write(&password_file, bind_password).expect("writing the secret");
    let config = dir.join("conformance.toml");
    std::fs::write(
        &config,
        format!(
            "[connector]\nurl = {}\nbase_dn = {}\nbind_dn = {}\nca_file = {}\npolicy_dn = {}\n\
             timeout_ms = 5000\n\n[secrets]\nbind_password_file = {}\n\n[test]\naccount = {}\n",
            toml_string(&server.ldaps_url),
            toml_string(&server.people_ou),
            toml_string(bind_dn),
            toml_string(&server.ca_file.to_string_lossy()),
            toml_string(&server.policy_dn),
            toml_string(&password_file.to_string_lossy()),
            toml_string(&user.username),
        ),
    )
    .expect("writing the config");
    (config, user, bind_password)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openldap_connector_passes_every_check_against_slapd() {
    let server = latchkey_tests::slapd::slapd();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, user, bind_password) = slapd_suite(dir.path(), "lkconf").await;

    let run = plugin_test(&component("openldap"), Some(&manifest("openldap")), &config);
    println!("{}", run.stdout);
    assert!(
        run.success && run.with("FAIL").is_empty(),
        "the OpenLDAP connector should pass:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    for check in [
        "find-accounts: exact search",
        "check-password: too short",
        "set-password: a valid password",
        "password-changed-at: moves",
        "errors: set-password, unknown account",
    ] {
        run.expect(check, "PASS", "");
    }
    assert!(
        server.bind(&user.dn, &user.password).await.is_err(),
        "the suite reset the test user's password"
    );
    assert!(!run.stdout.contains(bind_password) && !run.stderr.contains(bind_password));
}

/// A suite file for the in-memory broken plugins: their fake directory knows `alice`; a short
/// deadline, since one of them never answers `test-connection`.
fn broken_config(dir: &Path) -> PathBuf {
    let config = dir.join("conformance.toml");
    std::fs::write(
        &config,
        "[connector]\n\n[test]\naccount = \"alice\"\ndeadline_ms = 1000\n",
    )
    .expect("config");
    config
}

fn broken(name: &str) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = plugin_test(
        &component(name),
        Some(&manifest(name)),
        &broken_config(dir.path()),
    );
    assert!(
        !run.success,
        "{name} should fail the suite:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("conformance check(s) failed"),
        "{}",
        run.stderr
    );
    run
}

#[test]
fn a_describe_that_contradicts_its_manifest_fails_with_each_reason() {
    let run = broken("test-broken-describe");
    run.expect(
        "describe: identity",
        "FAIL",
        "describe says id `broken-describe`, the manifest `test-broken-describe`",
    );
    run.expect("describe: name and description", "FAIL", "name empty");
    run.expect("describe: config schema", "FAIL", "not a valid JSON Schema");
    run.expect(
        "describe: declared features work",
        "FAIL",
        "supports declares `import`, but find-accounts answered unsupported",
    );
    run.expect(
        "config: accepted by the schema",
        "SKIP",
        "not a usable JSON Schema",
    );
    run.expect("describe: secrets schema", "PASS", "");
}

#[test]
fn a_schema_that_is_not_json_stops_the_load() {
    let run = broken("test-broken-schema");
    run.expect("load", "FAIL", "`config-schema` is not JSON");
    assert_eq!(run.rows.len(), 1, "{}", run.stdout);
}

#[test]
fn a_check_that_misses_what_set_refuses_fails() {
    let run = broken("test-broken-check");
    run.expect(
        "check-password: too short",
        "FAIL",
        "check-password accepted a password of 11 characters (min-length 12)",
    );
    run.expect(
        "set-password: agrees with check (too short)",
        "FAIL",
        "set-password refused a password of 11 characters (min-length 12) that check-password had accepted: policy(too-short(12))",
    );
    // The rest of it is right, and the suite says so.
    run.expect("check-password: not complex", "PASS", "not-complex(3)");
    run.expect("set-password: a valid password", "PASS", "applied");
    run.expect("password-changed-at: moves", "PASS", "");
    run.expect("errors: set-password, unknown account", "PASS", "not-found");
    assert_eq!(run.with("FAIL").len(), 2, "{}", run.stdout);
}

#[test]
fn internal_errors_an_ignored_limit_and_a_missed_deadline_fail() {
    let run = broken("test-broken-errors");
    run.expect(
        "find-accounts: limit",
        "FAIL",
        "the plugin's answer to `find-accounts` was refused: `accounts` has 3 items; the limit is 1",
    );
    run.expect(
        "find-accounts: unknown name",
        "FAIL",
        "must give an empty page, not an error: internal",
    );
    run.expect(
        "errors: get-policy, unknown account",
        "FAIL",
        "expected not-found, got internal",
    );
    run.expect(
        "errors: set-password, unknown account",
        "FAIL",
        "expected not-found, got internal",
    );
    run.expect("password-changed-at: moves", "FAIL", "before the set");
    run.expect(
        "test-connection",
        "FAIL",
        "did not answer within its deadline of 1s",
    );
    run.expect("limits: every call within them", "FAIL", "refused");
    run.expect(
        "limits: every call within them",
        "FAIL",
        "test-connection: the plugin did not answer within its deadline",
    );
    run.expect("find-accounts: exact search", "PASS", "found `alice`");
}

fn cargo(dir: &Path, target: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    output(
        Command::new(cargo)
            .args(args)
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", target),
    )
}

#[test]
fn a_new_plugin_builds_and_passes_the_suite_unmodified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("acme-directory");
    let new = output(
        Command::new(binary())
            .args(["plugin", "new", "acme-directory", "--dir"])
            .arg(&dir),
    );
    assert!(
        new.status.success(),
        "plugin new: {}",
        String::from_utf8_lossy(&new.stderr)
    );
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("src/lib.rs");
    assert!(lib.contains("TODO:") && lib.contains("export_connector!(AcmeDirectory);"));

    // A second time: refused, nothing overwritten.
    let again = output(
        Command::new(binary())
            .args(["plugin", "new", "acme-directory", "--dir"])
            .arg(&dir),
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = output(
        Command::new(binary())
            .args(["plugin", "new", "Acme_Dir", "--dir"])
            .arg(tmp.path().join("x")),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lowercase letters"));

    // Built outside the workspace, in a target directory of its own that reruns reuse, with
    // the workspace's lock file so its dependencies are the versions this checkout tested
    // (cargo drops the entries it does not need).
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copying Cargo.lock");
    let target = workspace_root().join("target/plugin-new");
    let build = cargo(
        &dir,
        &target,
        &["build", "--target", "wasm32-wasip2", "--release"],
    );
    assert!(
        build.status.success(),
        "building the new plugin: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let test = cargo(&dir, &target, &["test"]);
    assert!(
        test.status.success(),
        "the new plugin's unit tests: {}\n{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(String::from_utf8_lossy(&test.stdout).contains("test result: ok. 3 passed"));

    let wasm = target.join("wasm32-wasip2/release/acme_directory.wasm");
    let run = plugin_test(
        &wasm,
        Some(&dir.join("manifest.toml")),
        &dir.join("conformance.toml"),
    );
    assert!(
        run.success && run.with("FAIL").is_empty(),
        "the new plugin should pass unmodified:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run.expect("describe: identity", "PASS", "id `acme-directory`");
    run.expect("config: accepted by the schema", "PASS", "2 key(s)");
    run.expect("get-policy: coherent", "PASS", "12-256 characters");
    run.expect("check-password: too short", "PASS", "too-short(12)");
    run.expect(
        "find-accounts: exact search",
        "SKIP",
        "`import` is not declared",
    );
    run.expect("set-password: a valid password", "SKIP", "not declared");
}

/// The Python OpenLDAP connector (plugins/openldap-py, built by componentize-py): the contract is
/// language-neutral, so a component written in Python passes the same suite against the same
/// slapd as the Rust connector, with the same key rows.
#[tokio::test]
async fn the_python_connector_passes_the_same_suite() {
    let wasm = workspace_root().join("target/wasm32-wasip2/release/openldap_py.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: build it with `python3 -m venv target/py && target/py/bin/pip install \
         componentize-py==0.25.1 && COMPONENTIZE_PY=target/py/bin/componentize-py \
         plugins/openldap-py/build.sh`, or run the whole suite with `tests/run`",
        wasm.display()
    );
    let server = latchkey_tests::slapd::slapd();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, user, bind_password) = slapd_suite(dir.path(), "lkpyconf").await;

    let run = plugin_test(&wasm, Some(&manifest("openldap-py")), &config);
    println!("{}", run.stdout);
    assert!(
        run.success && run.with("FAIL").is_empty(),
        "the Python OpenLDAP connector should pass:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run.expect("describe: identity", "PASS", "id `openldap-py`");
    // It found the user by its entryUUID, as the Rust connector does.
    run.expect(
        "find-accounts: exact search",
        "PASS",
        &format!("(id {})", user.id),
    );
    for check in [
        "check-password: too short",
        "set-password: a valid password",
        "password-changed-at: moves",
        "errors: set-password, unknown account",
    ] {
        run.expect(check, "PASS", "");
    }
    run.expect(
        "errors: change-password, unknown account",
        "SKIP",
        "not declared",
    );
    assert!(
        server.bind(&user.dn, &user.password).await.is_err(),
        "the suite reset the test user's password"
    );
    assert!(!run.stdout.contains(bind_password) && !run.stderr.contains(bind_password));
}
