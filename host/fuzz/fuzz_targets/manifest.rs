//! Fuzz target: manifest. The entry point (shared with host/tests/fuzz_corpus.rs) lives in
//! latchkey::fuzzing so the corpus replays through exactly the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey::fuzzing::manifest(data));
