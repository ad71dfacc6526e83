//! Regression: every input in the committed fuzz corpora (host/fuzz/corpus/<target>/) goes
//! through the same entry point as its cargo-fuzz target, so an input that once crashed the
//! manifest parser, the checks of a plugin's answers or the HTTP API is retried by every
//! `cargo test`.

use std::path::Path;

fn run(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| entry(&data));
        assert!(result.is_ok(), "{} failed", path.display());
        count += 1;
    }
    assert!(count > 0, "corpus {} is empty", dir.display());
}

#[test]
fn manifest_corpus() {
    run("manifest", latchkey::fuzzing::manifest);
}

#[test]
fn plugin_output_corpus() {
    run("plugin_output", latchkey::fuzzing::plugin_output);
}

#[test]
fn api_request_corpus() {
    run("api_request", latchkey::fuzzing::api_request);
}
