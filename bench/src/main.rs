//! `cargo run --release -p latchkey-bench`: measures what Latchkey costs, prints each table as
//! it goes, and writes BENCHMARKS.md (machine, date, commit, every figure, each goal met or
//! not). BENCHMARKS.md is this program's output; edit the program, not the file.
//!
//! Needs the plugins built (`cargo build --target wasm32-wasip2 --release -p test-echo -p
//! ad-ldap`); uses PostgreSQL when `LATCHKEY_POSTGRES_URL` is set and the Samba DC when
//! `LATCHKEY_SAMBA_ENV` is (a section that cannot run says so and why). `--quick` runs every
//! section with smaller counts (to check the program, not for figures).
//!
//! `soak [--minutes 30] [--rate 50]` runs the soak of issue 10 instead (`soak.rs`): the release
//! server under a steady load for that long; a 30-minute run writes docs/soak.md.

mod changes;
mod deliveries;
mod memory;
mod plugin;
mod report;
mod samba;
mod setup;
mod soak;
mod startup;

use report::Report;

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("soak") {
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(soak::run());
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::new(quick);
    println!("{}", report.header());
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    runtime.block_on(async {
        // Memory first, in a process that has done nothing else yet.
        if wanted("memory") {
            report.add(memory::run(quick).await);
        }
        if wanted("plugin") {
            report.add(plugin::run(quick).await);
        }
        if wanted("changes") {
            report.add(changes::run(quick).await);
        }
        if wanted("deliveries") {
            report.add(deliveries::run(quick).await);
        }
        if wanted("samba") {
            report.add(samba::run(quick).await);
        }
        if wanted("startup") {
            report.add(startup::run(quick).await);
        }
    });
    if quick || only.is_some() {
        println!("(--quick or --only: BENCHMARKS.md is not written)");
    } else {
        let path = latchkey_tests::workspace_root().join("BENCHMARKS.md");
        std::fs::write(&path, report.markdown())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
