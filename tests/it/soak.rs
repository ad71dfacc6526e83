//! The soak (issue 10), two minutes of it against the debug build on SQLite: a steady 20
//! changes/s (every tenth typed) for 30 employees of 3 tenants, their keys' workstations pulling
//! and acknowledging continuously, policy checks and reads. The driver is the harness's
//! (`latchkey_tests::soak`, which `latchkey-bench soak` runs for half an hour); this test
//! asserts what a user relies on, with bounds generous enough for a loaded machine:
//!
//! - no request failed or answered unexpectedly, and the server answered no 5xx and logged no
//!   error;
//! - every change made was delivered: the server reports each one applied and delivered, its
//!   counters agree with the driver's, a final pull of every key finds nothing;
//! - memory is flat: the last window's resident set is within 1.5 × the first steady window's
//!   plus 20 MiB, and over the last half it does not keep growing (a leak grows at a constant
//!   rate to the end; the first window, the warm-up, is left out of both);
//! - latency is stable: the p99 of the last third (changes, and deliveries to the key) is
//!   within 5 × the first third's.

use std::time::Duration;

use latchkey_tests::server::{Db, Server};
use latchkey_tests::soak::{self, Latency, Load};

/// How fast the resident set may grow over the last minute of the run (Theil–Sen, so an
/// allocator's step or two does not count as a trend), in MiB per minute: at 20 changes/s,
/// about 16 KiB per change. The debug server measured 0 here, in steps of 13 MiB.
const MAX_RSS_SLOPE_MIB_PER_MINUTE: f64 = 20.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minutes_of_steady_changes_deliver_everything_with_flat_memory_and_stable_latency() {
    let server = Server::start_with(Db::Sqlite, soak::server_options(None)).await;
    let load = Load {
        duration: Duration::from_secs(120),
        changes_per_second: 20.0,
        tenants: 3,
        employees_per_tenant: 10,
        typed_every: 10,
        reads_per_second: 4.0,
        window: Duration::from_secs(10),
    };
    let outcome = soak::run(&server, &load, |_| {}).await;
    println!(
        "server RSS before the load: {:.1} MiB\n{}\n{} changes, {} delivered, drained in {:.1} s",
        outcome.rss_before_mib,
        outcome.table(),
        outcome.changes,
        outcome.delivered,
        outcome.drain.as_secs_f64()
    );

    assert!(
        outcome.errors == 0 && outcome.server_errors == 0 && outcome.log_errors.is_empty(),
        "every answer is the expected one: {} unexpected answers, {} 5xx; the first: {:#?}\n\
         the server's log: {:#?}",
        outcome.errors,
        outcome.server_errors,
        outcome.error_messages.iter().take(5).collect::<Vec<_>>(),
        outcome.log_errors
    );

    // Two minutes at 20/s is 2,400 changes; a machine too busy to start most of them is not a
    // soak.
    assert!(
        outcome.changes >= 1200,
        "only {} changes started",
        outcome.changes
    );
    assert_eq!(outcome.delivered, outcome.changes, "every change delivered");
    assert!(
        outcome.undelivered.is_empty(),
        "the server reports changes not applied and delivered: {:#?}",
        outcome.undelivered
    );
    assert_eq!(outcome.left_pending, 0, "nothing left pending");
    assert_eq!(
        (
            outcome.server_changes_accepted,
            outcome.server_acks_delivered
        ),
        (outcome.changes as u64, outcome.delivered as u64),
        "the server's own counters agree"
    );

    let (first, last) = outcome.rss_first_and_last();
    assert!(first > 0.0, "the server's resident set was read");
    assert!(
        last <= first * 1.5 + 20.0,
        "the resident set grew from {first:.1} MiB to {last:.1} MiB"
    );
    let slope = outcome.rss_slope_last_half();
    assert!(
        slope <= MAX_RSS_SLOPE_MIB_PER_MINUTE,
        "the resident set still grows {slope:.2} MiB/min over the last half"
    );

    for which in [Latency::Change, Latency::Delivery] {
        let (early, late) = outcome.p99_thirds(which);
        assert!(
            late <= early * 5 + Duration::from_millis(20),
            "{which:?} p99 went from {early:?} in the first third to {late:?} in the last"
        );
    }
}
