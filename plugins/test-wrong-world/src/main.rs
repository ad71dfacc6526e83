//! A guest that exists only to test the host: a `wasi:cli` command, not a connector. The
//! registry must refuse it and say that the `latchkey:connector/connector` export is missing.

fn main() {
    println!("I am a command, not a connector");
}
