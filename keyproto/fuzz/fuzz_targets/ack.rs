//! Fuzz target: the ack parser. The entry point (shared with tests/fuzz_corpus.rs) lives in
//! keyproto::fuzzing so the corpus replays through exactly the same code under `cargo test`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyproto::fuzzing::ack(data));
