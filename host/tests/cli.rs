//! The `latchkey` binary as an operator and an integrator use it: create a signing key, pack,
//! sign, verify and inspect a plugin, then serve it and ask the health endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when the test ends however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn latchkey(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .output()
        .expect("running latchkey")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "latchkey failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn component(file: &str) -> String {
    let path = workspace().join("target/wasm32-wasip2/release").join(file);
    assert!(
        path.exists(),
        "{} is missing: run `tests/run` (it builds the plugins first)",
        path.display()
    );
    path.display().to_string()
}

fn manifest(plugin: &str) -> String {
    workspace()
        .join("plugins")
        .join(plugin)
        .join("manifest.toml")
        .display()
        .to_string()
}

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connecting to the server");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn keygen_pack_sign_verify_inspect_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).display().to_string();

    let out = stdout(&latchkey(&["plugin", "keygen", "--out", &d("key.pem")]));
    let key_id = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("key id ")
        .unwrap()
        .to_string();
    assert_eq!(key_id.len(), 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key must be readable by its owner only"
        );
    }
    let public = d("key.pem.pub.pem");

    stdout(&latchkey(&[
        "plugin",
        "pack",
        "--manifest",
        &manifest("test-echo"),
        "--component",
        &component("test_echo.wasm"),
        "--out",
        &d("pkg"),
    ]));

    let unsigned = latchkey(&["plugin", "verify", &d("pkg"), "--trusted-key", &public]);
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("the package is not signed"));

    let out = stdout(&latchkey(&[
        "plugin",
        "sign",
        &d("pkg"),
        "--key",
        &d("key.pem"),
    ]));
    assert_eq!(
        out.trim(),
        format!("signed test-echo 0.1.0 with key {key_id}")
    );
    let out = stdout(&latchkey(&[
        "plugin",
        "verify",
        &d("pkg"),
        "--trusted-key",
        &public,
    ]));
    assert_eq!(
        out.trim(),
        format!("ok: test-echo 0.1.0 is signed by trusted key {key_id}")
    );

    let out = stdout(&latchkey(&["plugin", "inspect", &d("pkg")]));
    assert!(out.contains("contract version stamped: 0.1.0"), "{out}");
    assert!(out.contains("capabilities requested: log, config"), "{out}");
    assert!(
        out.contains(&format!("signature: by key {key_id}")),
        "{out}"
    );
    assert!(out.contains("world: ok"), "{out}");
    assert!(out.contains("describe: test-echo 0.1.0"), "{out}");

    stdout(&latchkey(&[
        "plugin",
        "pack",
        "--manifest",
        &manifest("test-wrong-world"),
        "--component",
        &component("test-wrong-world.wasm"),
        "--out",
        &d("wrong"),
    ]));
    stdout(&latchkey(&[
        "plugin",
        "sign",
        &d("wrong"),
        "--key",
        &d("key.pem"),
    ]));
    let out = stdout(&latchkey(&["plugin", "inspect", &d("wrong")]));
    assert!(out.contains("world: REFUSED"), "{out}");
    assert!(
        out.contains("does not export `latchkey:connector/connector@0.1.0`"),
        "{out}"
    );

    // Serve: the signed package and its key in the data directory; the wrong-world package
    // beside it is refused without stopping the server.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("plugins")).unwrap();
    std::fs::create_dir_all(data.join("trusted-keys")).unwrap();
    std::fs::rename(d("pkg"), data.join("plugins/test-echo")).unwrap();
    std::fs::rename(d("wrong"), data.join("plugins/wrong")).unwrap();
    std::fs::copy(&public, data.join("trusted-keys/dev.pem")).unwrap();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data.display().to_string(),
                "--database-url",
                &format!("sqlite://{}", data.join("latchkey.db").display()),
            ])
            .env("LATCHKEY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (sender, lines) = std::sync::mpsc::channel();
    let stderr = server.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut seen = vec![];
    let address = loop {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let Ok(line) = lines.recv_timeout(left) else {
            panic!("the server did not say where it listens within 60 s: {seen:#?}");
        };
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        seen.push(line);
    };
    assert!(
        seen.iter()
            .any(|l| l.contains("plugin package refused") && l.contains("does not export")),
        "{seen:#?}"
    );
    let health = get(&address, "/healthz");
    let ready = get(&address, "/readyz");
    drop(server);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#"{"status":"ok"}"#), "{health}");
    // The signed package, and the connector built into the binary.
    assert!(
        ready.contains(r#"{"id":"test-echo","version":"0.1.0"}"#),
        "{ready}"
    );
    assert!(ready.contains(r#"{"id":"ad-ldap","#), "{ready}");
}
