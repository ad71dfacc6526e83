//! Waking the workstations that long-poll for a key: a `Notify` per key in this process, and,
//! on PostgreSQL, a listener for the NOTIFY the store sends with every release, so a release on
//! one replica wakes the poll held by another.
//!
//! A waiter takes its `Waiting` before it looks at the queue, so a release between the look
//! and the wait is never missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;

/// Per-key wake-ups.
#[derive(Default)]
pub struct Waker {
    keys: Mutex<HashMap<String, Weak<Notify>>>,
}

/// A registration to wait on, taken before looking at the queue.
pub struct Waiting(Arc<Notify>);

impl Waiting {
    /// Waits until the key is woken or `timeout` passes; true when woken.
    pub async fn wait(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.0.notified())
            .await
            .is_ok()
    }
}

impl Waker {
    pub fn new() -> Arc<Waker> {
        Arc::new(Waker::default())
    }

    /// Registers interest in `key_id`.
    pub fn register(&self, key_id: &str) -> Waiting {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = keys.get(key_id).and_then(Weak::upgrade) {
            return Waiting(notify);
        }
        keys.retain(|_, w| w.strong_count() > 0);
        let notify = Arc::new(Notify::new());
        keys.insert(key_id.to_string(), Arc::downgrade(&notify));
        Waiting(notify)
    }

    /// Wakes every waiter of `key_id` in this process.
    pub fn wake(&self, key_id: &str) {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = keys.get(key_id).and_then(Weak::upgrade) {
            notify.notify_waiters();
        }
    }

    /// On PostgreSQL: forwards the store's release notifications (from every replica) to this
    /// process's waiters, reconnecting when the listener's connection drops. On SQLite there is
    /// one process and nothing to listen to.
    pub fn listen(self: &Arc<Waker>, store: &Store) {
        let waker = Arc::downgrade(self);
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                match store.release_listener().await {
                    Ok(Some(mut listener)) => loop {
                        match listener.recv().await {
                            Ok(key_id) => match waker.upgrade() {
                                Some(waker) => waker.wake(&key_id),
                                None => return,
                            },
                            Err(error) => {
                                tracing::warn!(%error, "release notifications: reconnecting");
                                break;
                            }
                        }
                    },
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(%error, "release notifications: cannot listen; retrying")
                    }
                }
                if waker.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
