//! `latchkey plugin test`: the conformance suite an integrator runs against their plugin and a
//! live test directory before packaging it. It loads the plugin as a server would (unsigned is
//! fine: it is the author's machine), enables it with a configuration file's settings, and
//! checks what the contract promises and Latchkey relies on: a truthful `describe`, schemas
//! that are schemas, searches that respect limits and end, a `check-password` that catches
//! whatever `set-password` would refuse, a `password-changed-at` that moves, typed errors, and
//! calls within the host's limits.
//!
//! It owns the configuration file (`config`), loading the plugin under test (`target`), the
//! checks (`checks`, with `schema` and `candidates`), and the report (`report`). It must never
//! print a secret or a password, and writes only to the account the file names.

pub mod candidates;
pub mod checks;
pub mod config;
pub mod report;
pub mod schema;
pub mod target;

use std::path::Path;

pub use config::SuiteConfig;
pub use report::{Outcome, Report, Row};

use crate::runtime::{Runtime, RuntimeConfig};

/// Run the suite against the plugin at `path` (a package directory, or a component with an
/// optional `manifest`) with the configuration file at `config`.
pub async fn run(path: &Path, manifest: Option<&Path>, config: &Path) -> anyhow::Result<Report> {
    let config = SuiteConfig::read(config)?;
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 4,
        ..RuntimeConfig::new(cache.path())
    })?;
    let target = match target::load(&runtime, path, manifest, config.grant).await {
        Ok(target) => target,
        Err(target::LoadError::Unreadable(error)) => return Err(error),
        Err(target::LoadError::Refused(error)) => {
            // What a server would refuse to load; nothing else can run.
            let mut report = Report::default();
            report.fail("load", error.to_string());
            return Ok(report);
        }
    };
    let instance = target::enable(target.plugin, &config)?;
    let suite = checks::Suite::new(&instance, target.manifest.as_ref(), &config);
    Ok(suite.run().await)
}
