//! Slots for memory-hard work: argon2id verifies and hashes (API tokens: 19 MiB each, typed
//! passwords' history: 8 MiB) run at most one per core at once; the others wait for a slot
//! holding nothing. Unbounded, each ran on its own thread of tokio's blocking pool (up to 512):
//! a burst of 64 requests with one not-yet-cached token took a server from 61 MiB to 824 MiB,
//! 200 wrong tokens to 1.7 GB, and the first 30-minute soak's server sat at 3.6 GB. More than
//! one per core buys no throughput: the work is CPU-bound.

use std::sync::LazyLock;

use tokio::sync::{Semaphore, SemaphorePermit};

static SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Waits for a slot; the work may run while the permit lives.
pub(crate) async fn argon2() -> SemaphorePermit<'static> {
    SLOTS
        .acquire()
        .await
        .expect("the semaphore is never closed")
}
