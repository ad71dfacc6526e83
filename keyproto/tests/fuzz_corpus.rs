//! Regression: every input in the committed fuzz corpora (keyproto/fuzz/corpus/<target>/) goes
//! through the same entry point as its cargo-fuzz target, so an input that once crashed a
//! parser is retried by every `cargo test`.

use std::path::Path;

fn run(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = file.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        entry(&data);
        count += 1;
    }
    assert!(count > 0, "corpus {} is empty", dir.display());
}

#[test]
fn envelope_corpus() {
    run("envelope", keyproto::fuzzing::envelope);
}

#[test]
fn ack_corpus() {
    run("ack", keyproto::fuzzing::ack);
}

#[test]
fn hid_frames_corpus() {
    run("hid_frames", keyproto::fuzzing::hid_frames);
}

#[test]
fn ble_frames_corpus() {
    run("ble_frames", keyproto::fuzzing::ble_frames);
}
