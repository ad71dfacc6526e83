//! Brute-force protection for everything that takes a token: API bearer tokens (operators,
//! admins, workstations) and the console's sign-in. A client address that fails to
//! authenticate `max_failures` times within `window` is locked out for `lockout`: every request
//! of it that carries a token (even a right one) is answered 429 with `Retry-After`, before
//! any argon2 verify runs, so guessing also cannot burn the server's CPU. Each lockout is
//! logged at warn with the address.
//!
//! The count lives in this replica's memory (per replica, like a load balancer's stickiness);
//! with several replicas an attacker gets at most `max_failures` per replica per window. It is
//! bounded: past `MAX_CLIENTS` tracked addresses, stale entries are dropped first, then new
//! addresses are not tracked (and a warning says so). Behind a reverse proxy every client has
//! the proxy's address; see docs/SECURITY.md.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses tracked at once.
const MAX_CLIENTS: usize = 65_536;

/// How failures are counted and for how long a client is locked out.
#[derive(Debug, Clone, Copy)]
pub struct LimiterSettings {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for LimiterSettings {
    /// 10 failures within 5 minutes lock the address out for 15 minutes.
    fn default() -> Self {
        LimiterSettings {
            max_failures: 10,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(900),
        }
    }
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Failed authentications by client address.
#[derive(Debug)]
pub struct AuthLimiter {
    settings: LimiterSettings,
    clients: Mutex<HashMap<IpAddr, Entry>>,
}

/// The address a request came from; requests without one (in-process calls, tests without a
/// socket) share the unspecified address.
pub fn client_address(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

impl AuthLimiter {
    pub fn new(settings: LimiterSettings) -> AuthLimiter {
        AuthLimiter {
            settings,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> LimiterSettings {
        self.settings
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds to wait)` while `client` is locked out.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut clients = self.clients();
        let Some(entry) = clients.get_mut(&client) else {
            return Ok(());
        };
        match entry.blocked_until {
            Some(until) if until > now => Err((until - now).as_secs().max(1)),
            Some(_) => {
                entry.blocked_until = None;
                entry.failures = 0;
                entry.window_start = now;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication of `client`; true when it has just been locked out.
    pub fn failed(&self, client: IpAddr, now: Instant) -> bool {
        let settings = self.settings;
        let mut clients = self.clients();
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, e| {
                e.blocked_until.is_some_and(|until| until > now)
                    || now.duration_since(e.window_start) < settings.window
            });
            if clients.len() >= MAX_CLIENTS {
                tracing::warn!(
                    client = %client,
                    "too many addresses are failing to authenticate to track another one"
                );
                return false;
            }
        }
        let entry = clients.entry(client).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now.duration_since(entry.window_start) >= settings.window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures >= settings.max_failures && entry.blocked_until.is_none() {
            entry.blocked_until = Some(now + settings.lockout);
            tracing::warn!(
                client = %client,
                failures = entry.failures,
                lockout_seconds = settings.lockout.as_secs(),
                "locked out an address after repeated failed authentications"
            );
            return true;
        }
        false
    }

    /// A successful authentication clears `client`'s failures.
    pub fn succeeded(&self, client: IpAddr) {
        let mut clients = self.clients();
        if clients
            .get(&client)
            .is_some_and(|e| e.blocked_until.is_none())
        {
            clients.remove(&client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> AuthLimiter {
        AuthLimiter::new(LimiterSettings {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(600),
        })
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn the_third_failure_locks_the_address_out_and_only_it() {
        let limiter = limiter();
        let t = Instant::now();
        assert!(!limiter.failed(A, t));
        assert!(!limiter.failed(A, t));
        assert_eq!(limiter.check(A, t), Ok(()));
        assert!(limiter.failed(A, t + Duration::from_secs(1)));
        assert_eq!(
            limiter.check(A, t + Duration::from_secs(1)),
            Err(600),
            "locked out for the whole lockout"
        );
        assert_eq!(limiter.check(A, t + Duration::from_secs(301)), Err(300));
        assert_eq!(
            limiter.check(B, t),
            Ok(()),
            "another address is not affected"
        );
        // A success during the lockout does not lift it.
        limiter.succeeded(A);
        assert!(limiter.check(A, t + Duration::from_secs(2)).is_err());
        // After the lockout the address starts afresh.
        assert_eq!(limiter.check(A, t + Duration::from_secs(602)), Ok(()));
        assert!(!limiter.failed(A, t + Duration::from_secs(603)));
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_add_up() {
        let limiter = limiter();
        let t = Instant::now();
        for minute in 0..10 {
            let at = t + Duration::from_secs(61 * minute);
            assert!(!limiter.failed(A, at));
            assert!(!limiter.failed(A, at));
        }
        assert_eq!(limiter.check(A, t + Duration::from_secs(700)), Ok(()));
    }

    #[test]
    fn a_success_clears_the_count() {
        let limiter = limiter();
        let t = Instant::now();
        limiter.failed(A, t);
        limiter.failed(A, t);
        limiter.succeeded(A);
        assert!(!limiter.failed(A, t));
        assert!(!limiter.failed(A, t));
        assert!(limiter.failed(A, t));
    }
}
