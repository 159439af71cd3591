//! The limits the shell puts on every service: failed authentications per client and per named
//! tenant, and a request budget per tenant.
//!
//! Data flow: [`tenancy::require_api_key`](crate::tenancy::require_api_key) names the client
//! ([`ClientId`], from the peer address) and asks [`Tenancy`](crate::tenancy::Tenancy) to
//! authenticate; Tenancy first consults the two [`FailureLimiter`]s (client, then the tenant in
//! `X-Tenant`) and answers 429 without looking the key up when either has used its failures in
//! the current window, and records a failure in both when the key turns out not to be valid.
//! Once the [`Tenant`](crate::tenancy::Tenant) extractor has resolved an active tenant, it takes
//! a token from that tenant's bucket in [`TenantBuckets`] (the tenant's own [`RateLimit`] from the
//! directory, else the platform default) and answers 429 when the bucket is empty, so a noisy
//! tenant spends only its own budget.
//!
//! Every table is bounded: a spray of client addresses cannot grow memory without bound (when
//! the failure table is full of live windows, untracked clients share one overflow window, so the
//! spray is limited as if it were one client), and buckets are kept only for tenants the directory
//! resolved as active.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{HeaderName, Request};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A tenant's request budget: `rps` requests per second on average, bursts of up to `burst`.
/// `rps` of 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub rps: f64,
    pub burst: u32,
}

impl RateLimit {
    pub const OFF: RateLimit = RateLimit { rps: 0.0, burst: 0 };

    /// Off at 0, and at anything that is not a positive number (NaN included).
    pub fn is_off(&self) -> bool {
        self.rps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
    }
}

/// The limits of a process; [`Limits::off`] for none, [`Limits::default`] for the platform's
/// defaults (the values the environment variables default to, see [`crate::config::CommonArgs`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Failed authentications one client may make per window (0: no limit).
    pub auth_failures_per_client: u32,
    /// Failed authentications per window naming one tenant in `X-Tenant` (0: no limit).
    pub auth_failures_per_tenant: u32,
    pub auth_failure_window: Duration,
    /// The platform default budget of each tenant.
    pub tenant_rate: RateLimit,
    /// How long a request over its tenant's budget is held before its 429 goes out. A client
    /// that ignores `Retry-After` and retries at once (a closed loop) is slowed to its
    /// connections / this delay, so the refusals cost little of the CPU its neighbours need;
    /// a held request is a sleeping task, and its tenant's token is not spent.
    pub throttle_delay: Duration,
    /// Most clients (and, separately, tenants) the failure tables track at once.
    pub max_tracked: usize,
    /// A header carrying the client's address, set by a trusted proxy in front of every
    /// replica (e.g. `x-forwarded-for`); its last address is the client. `None`: the peer.
    pub client_ip_header: Option<HeaderName>,
}

impl Limits {
    pub fn off() -> Self {
        Limits {
            auth_failures_per_client: 0,
            auth_failures_per_tenant: 0,
            auth_failure_window: Duration::from_secs(60),
            tenant_rate: RateLimit::OFF,
            throttle_delay: Duration::ZERO,
            max_tracked: 100_000,
            client_ip_header: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auth_failures_per_client: 20,
            auth_failures_per_tenant: 100,
            tenant_rate: RateLimit {
                rps: 100.0,
                burst: 200,
            },
            throttle_delay: Duration::from_millis(250),
            ..Limits::off()
        }
    }
}

/// Who made a request, for the failure limits: the peer address (an IPv6 address by its /64,
/// which one host typically holds whole), or `Unknown` when there is no socket (a router driven
/// in process): all such requests count as one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientId {
    Ip(IpAddr),
    Unknown,
}

impl ClientId {
    pub fn from_ip(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        };
        ClientId::Ip(ip)
    }

    /// The client of `req`: the last address in `header` when configured and parseable, else
    /// the peer address from axum's `ConnectInfo`, else `Unknown`.
    pub fn of<B>(req: &Request<B>, header: Option<&HeaderName>) -> Self {
        let from_header = header
            .and_then(|h| req.headers().get(h))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        if let Some(ip) = from_header {
            return ClientId::from_ip(ip);
        }
        match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => ClientId::from_ip(addr.ip()),
            None => ClientId::Unknown,
        }
    }
}

/// Seconds to wait until `until`, at least 1 (a `Retry-After` of 0 invites a busy loop).
fn secs_until(now: Instant, until: Instant) -> u64 {
    let d = until.saturating_duration_since(now);
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            start: now,
            failures: 0,
        }
    }

    fn ended(&self, now: Instant, window: Duration) -> bool {
        now.saturating_duration_since(self.start) >= window
    }

    /// Counts a failure; true when this one used up the limit.
    fn hit(&mut self, now: Instant, window: Duration, limit: u32) -> bool {
        if self.ended(now, window) {
            *self = Window::new(now);
        }
        self.failures = self.failures.saturating_add(1);
        self.failures == limit
    }

    fn retry_after(&self, now: Instant, window: Duration, limit: u32) -> Option<u64> {
        (!self.ended(now, window) && self.failures >= limit)
            .then(|| secs_until(now, self.start + window))
    }
}

#[derive(Debug)]
struct FailureTable<K> {
    windows: HashMap<K, Window>,
    /// Shared by the keys that found the table full.
    overflow: Window,
    last_prune: Instant,
}

/// Counts failures per key in fixed windows; a key with `limit` failures in its current window
/// is blocked until the window ends. At most `max_tracked` keys are tracked.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    limit: u32,
    window: Duration,
    max_tracked: usize,
    table: Mutex<FailureTable<K>>,
}

/// How often a full table may be swept for ended windows (a sweep is linear in its size).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

impl<K: Eq + Hash + Clone> FailureLimiter<K> {
    /// `limit` of 0: never blocks.
    pub fn new(limit: u32, window: Duration, max_tracked: usize) -> Self {
        let now = Instant::now();
        FailureLimiter {
            limit,
            window: window.max(Duration::from_secs(1)),
            max_tracked: max_tracked.max(1),
            table: Mutex::new(FailureTable {
                windows: HashMap::new(),
                overflow: Window::new(now),
                last_prune: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureTable<K>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds until `key` may try again, when it has used up its failures.
    pub fn blocked(&self, key: &K) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let now = Instant::now();
        let t = self.lock();
        let w = match t.windows.get(key) {
            Some(w) => w,
            None if t.windows.len() >= self.max_tracked => &t.overflow,
            None => return None,
        };
        w.retry_after(now, self.window, self.limit)
    }

    /// Counts a failure of `key`; true when it has just used up its failures.
    pub fn record_failure(&self, key: &K) -> bool {
        if self.limit == 0 {
            return false;
        }
        let now = Instant::now();
        let (window, limit, max) = (self.window, self.limit, self.max_tracked);
        let mut t = self.lock();
        if let Some(w) = t.windows.get_mut(key) {
            return w.hit(now, window, limit);
        }
        if t.windows.len() >= max && now.saturating_duration_since(t.last_prune) >= PRUNE_EVERY {
            t.windows.retain(|_, w| !w.ended(now, window));
            t.last_prune = now;
        }
        if t.windows.len() >= max {
            return t.overflow.hit(now, window, limit);
        }
        let mut w = Window::new(now);
        let used_up = w.hit(now, window, limit);
        t.windows.insert(key.clone(), w);
        used_up
    }

    /// Keys tracked now (not counting the overflow window).
    pub fn tracked(&self) -> usize {
        self.lock().windows.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One token bucket per tenant id.
#[derive(Debug)]
pub struct TenantBuckets {
    max_tracked: usize,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

/// The longest `Retry-After` a bucket answers (a tiny rate would otherwise ask for days).
const MAX_RETRY_AFTER_SECS: u64 = 3600;

impl TenantBuckets {
    pub fn new(max_tracked: usize) -> Self {
        TenantBuckets {
            max_tracked: max_tracked.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `tenant`'s bucket under `rate`; when it is empty, the seconds until
    /// the next token.
    pub fn take(&self, tenant: Uuid, rate: RateLimit) -> Result<(), u64> {
        if rate.is_off() {
            return Ok(());
        }
        let burst = f64::from(rate.burst.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= self.max_tracked && !buckets.contains_key(&tenant) {
            // A bucket that has refilled is the same as no bucket.
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate.rps < burst
            });
            if buckets.len() >= self.max_tracked {
                buckets.clear();
            }
        }
        let b = buckets.entry(tenant).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate.rps;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / rate.rps).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                (wait as u64).min(MAX_RETRY_AFTER_SECS)
            } else {
                1
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_after_its_failures_and_others_are_not() {
        let l = FailureLimiter::new(3, Duration::from_secs(3600), 100);
        for _ in 0..2 {
            assert!(!l.record_failure(&"a"));
        }
        assert_eq!(l.blocked(&"a"), None);
        assert!(l.record_failure(&"a"));
        let retry = l.blocked(&"a").unwrap();
        assert!((3500..=3600).contains(&retry), "{retry}");
        assert_eq!(l.blocked(&"b"), None);
    }

    #[test]
    fn a_spray_of_keys_is_bounded_and_shares_one_window() {
        let l = FailureLimiter::new(5, Duration::from_secs(3600), 10);
        for i in 0..1000 {
            l.record_failure(&i);
        }
        assert_eq!(l.tracked(), 10);
        // Past the table, the spray is one client: blocked as a whole.
        assert!(l.blocked(&5000).is_some());
        // A tracked key under its limit is not.
        assert_eq!(l.blocked(&0), None);
    }

    #[test]
    fn limit_zero_never_blocks() {
        let l = FailureLimiter::new(0, Duration::from_secs(60), 10);
        for _ in 0..100 {
            l.record_failure(&"a");
        }
        assert_eq!(l.blocked(&"a"), None);
    }

    #[test]
    fn buckets_allow_their_burst_then_refuse_with_a_retry_time() {
        let b = TenantBuckets::new(10);
        let (noisy, quiet) = (Uuid::new_v4(), Uuid::new_v4());
        let rate = RateLimit {
            rps: 0.001,
            burst: 3,
        };
        for _ in 0..3 {
            assert_eq!(b.take(noisy, rate), Ok(()));
        }
        let retry = b.take(noisy, rate).unwrap_err();
        assert!((1..=MAX_RETRY_AFTER_SECS).contains(&retry), "{retry}");
        assert_eq!(b.take(quiet, rate), Ok(()));
        for _ in 0..1000 {
            assert_eq!(b.take(noisy, RateLimit::OFF), Ok(()));
        }
    }

    #[test]
    fn clients_are_peers_and_ipv6_hosts_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(ClientId::from_ip(a), ClientId::from_ip(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            ClientId::from_ip(mapped),
            ClientId::Ip("10.0.0.1".parse().unwrap())
        );
        let req = Request::builder().body(()).unwrap();
        assert_eq!(ClientId::of(&req, None), ClientId::Unknown);
        let mut req = Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 1, 1, 1], 4000))));
        assert_eq!(
            ClientId::of(&req, None),
            ClientId::Ip("10.1.1.1".parse().unwrap())
        );
        let h = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            ClientId::of(&req, Some(&h)),
            ClientId::Ip("198.51.100.7".parse().unwrap())
        );
    }
}
