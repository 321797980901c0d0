//! Per-tenant limits at run time: what each tenant uses right now on this
//! node (connections, running invocations), the token bucket that paces a
//! connection's invocations, and the record of every limit reached (a
//! metric each time, a log line once per burst).
//!
//! The configured numbers are `config::Limits`; they are read on every check,
//! so a tenant whose limits change gets the new ones at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::address::HubKey;
use crate::config::Limits;

/// A limit that can be reached; its name is the `limit` label of
/// `switchboard_limit_hits_total` and the `limit` field of the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The tenant's `connections` on this node.
    Connections,
    /// The tenant's `concurrent_invocations` on this node.
    ConcurrentInvocations,
    /// A connection's `messages_per_second` (with its burst).
    MessagesPerSecond,
    /// A connection's `groups_per_connection`.
    GroupsPerConnection,
    /// The largest message a client may send (`max_message_size`).
    MessageSize,
    /// An invocation's `invocation_cpu_ms`.
    InvocationCpu,
    /// A plugin instance's `memory_mb`.
    Memory,
}

impl Limit {
    /// The limit's name, as its config key spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConcurrentInvocations => "concurrent_invocations",
            Limit::MessagesPerSecond => "messages_per_second",
            Limit::GroupsPerConnection => "groups_per_connection",
            Limit::MessageSize => "max_message_size",
            Limit::InvocationCpu => "invocation_cpu_ms",
            Limit::Memory => "memory_mb",
        }
    }
}

// === TokenBucket ===

/// A token bucket: holds up to `burst` tokens, refilled at `per_second`.
/// Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            tokens: burst,
            burst,
            per_second: f64::from(per_second.max(1)),
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Follows a change of the configured rate, keeping the tokens it has.
    pub fn reconfigure(&mut self, per_second: u32, burst: u32) {
        self.per_second = f64::from(per_second.max(1));
        self.burst = f64::from(burst.max(1));
        self.tokens = self.tokens.min(self.burst);
    }
}

// === Bounded counter ===

/// A count with a ceiling given at each acquire (connections of a tenant).
#[derive(Debug, Default)]
pub struct Bounded(AtomicUsize);

/// One unit of a [`Bounded`] count, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Bounded>);

impl Bounded {
    /// Takes one unit if fewer than `max` are taken.
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Units taken now.
    pub fn current(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

// === BurstLog ===

/// How long without hits ends a burst.
pub const BURST_QUIET: Duration = Duration::from_secs(10);

/// Decides which hits of a limit are logged: the first of each burst, a
/// burst being hits less than [`BURST_QUIET`] apart. Pure.
#[derive(Debug, Default)]
pub struct BurstLog {
    last_hit: Option<Instant>,
    /// Hits since the last one logged.
    unlogged: u64,
}

impl BurstLog {
    /// Records a hit; `Some(n)` when it should be logged, with `n` the hits
    /// of the previous burst that were not.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        let new_burst = self
            .last_hit
            .is_none_or(|last| now.saturating_duration_since(last) >= BURST_QUIET);
        self.last_hit = Some(now);
        if new_burst {
            Some(std::mem::take(&mut self.unlogged))
        } else {
            self.unlogged += 1;
            None
        }
    }
}

// === Usage ===

/// What every tenant uses on this node, by tenant name. Kept apart from the
/// tenant's configuration, so a tenant updated in place keeps its counts.
#[derive(Debug, Default)]
pub struct Usage {
    tenants: Mutex<HashMap<Arc<str>, Arc<TenantUsage>>>,
}

/// One tenant's current use.
#[derive(Debug, Default)]
pub struct TenantUsage {
    connections: Arc<Bounded>,
    /// Slots for running invocations, and the limit they were made for.
    invocations: Mutex<Option<(usize, Arc<Semaphore>)>>,
    bursts: Mutex<HashMap<Limit, BurstLog>>,
}

impl Usage {
    /// The use of tenant `name`, made empty on first ask.
    pub fn tenant(&self, name: &str) -> Arc<TenantUsage> {
        let mut tenants = self.tenants.lock();
        if let Some(usage) = tenants.get(name) {
            return usage.clone();
        }
        tenants
            .entry(Arc::from(name))
            .or_insert_with(|| Arc::new(TenantUsage::default()))
            .clone()
    }
}

impl TenantUsage {
    /// Open connections of the tenant on this node.
    pub fn connections(&self) -> usize {
        self.connections.current()
    }

    /// Whether one more connection would be allowed now.
    pub fn has_connection_room(&self, limits: &Limits) -> bool {
        self.connections.current() < limits.connections
    }

    /// Takes a connection slot, if the tenant is below its limit.
    pub fn try_connect(&self, limits: &Limits) -> Option<Slot> {
        self.connections.try_acquire(limits.connections)
    }

    /// Waits up to `invocation_queue_ms` for a slot to run an invocation.
    pub async fn invocation_slot(&self, limits: &Limits) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.invocations.lock();
            match &*slots {
                Some((max, semaphore)) if *max == limits.concurrent_invocations => {
                    semaphore.clone()
                }
                // First use, or the limit changed: running invocations finish
                // on the old slots; new ones share the new.
                _ => {
                    let semaphore = Arc::new(Semaphore::new(limits.concurrent_invocations));
                    *slots = Some((limits.concurrent_invocations, semaphore.clone()));
                    semaphore
                }
            }
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        let wait = Duration::from_millis(limits.invocation_queue_ms);
        tokio::time::timeout(wait, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Counts a limit reached in `hub` and logs it if it starts a burst.
    pub fn hit(&self, hub: &HubKey, limit: Limit, detail: &str) {
        record_hit(hub, limit);
        let log = self
            .bursts
            .lock()
            .entry(limit)
            .or_default()
            .hit(Instant::now());
        if let Some(unlogged) = log {
            tracing::warn!(
                tenant = %hub.tenant,
                hub = %hub.hub,
                limit = limit.as_str(),
                earlier_unlogged = unlogged,
                "tenant limit reached: {detail} (further hits in this burst are counted in switchboard_limit_hits_total, not logged)"
            );
        }
    }
}

/// Counts a limit reached, for limits the hub layer does not see happen
/// (CPU and memory, seen by the plugin engine; remote group adds).
pub fn record_hit(hub: &HubKey, limit: Limit) {
    metrics::counter!(
        crate::metrics::LIMIT_HITS,
        "tenant" => hub.tenant.clone(),
        "hub" => hub.hub.clone(),
        "limit" => limit.as_str()
    )
    .increment(1);
}

// === Connections ===

/// A connection's place in its tenant's count and the connection gauge;
/// both go down when it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    _slot: Slot,
    gauge: metrics::Gauge,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// The error a client is given when its tenant has no room for it.
pub fn too_many_connections(limits: &Limits) -> String {
    format!(
        "Too many connections: the tenant allows at most {} on this server.",
        limits.connections
    )
}

/// Admits a connection of `hub` (after its handshake), or says why not.
pub fn admit_connection(
    usage: &Usage,
    limits: &Limits,
    hub: &HubKey,
) -> Result<ConnectionSlot, String> {
    let tenant = usage.tenant(&hub.tenant);
    let Some(slot) = tenant.try_connect(limits) else {
        tenant.hit(hub, Limit::Connections, &too_many_connections(limits));
        return Err(too_many_connections(limits));
    };
    let gauge = metrics::gauge!(
        crate::metrics::CONNECTIONS,
        "tenant" => hub.tenant.clone(),
        "hub" => hub.hub.clone()
    );
    gauge.increment(1.0);
    Ok(ConnectionSlot { _slot: slot, gauge })
}

/// Refuses a negotiation early when the tenant is already full (the
/// handshake checks again: this one is only advice, as others may race).
pub fn check_connection_room(usage: &Usage, limits: &Limits, hub: &HubKey) -> Result<(), String> {
    let tenant = usage.tenant(&hub.tenant);
    if tenant.has_connection_room(limits) {
        return Ok(());
    }
    tenant.hit(hub, Limit::Connections, &too_many_connections(limits));
    Err(too_many_connections(limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, t0);
        assert!((0..3).all(|_| bucket.try_take(t0)), "the burst");
        assert!(!bucket.try_take(t0), "empty");
        // 10 per second: one token every 100 ms.
        assert!(!bucket.try_take(t0 + Duration::from_millis(50)));
        assert!(bucket.try_take(t0 + Duration::from_millis(110)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(120)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take(later)).count(), 3);
    }

    #[test]
    fn bucket_follows_a_lower_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 100, t0);
        bucket.reconfigure(1, 2);
        assert_eq!((0..10).filter(|_| bucket.try_take(t0)).count(), 2);
    }

    #[test]
    fn bounded_counts_up_to_the_ceiling_and_back() {
        let count = Arc::new(Bounded::default());
        let a = count.try_acquire(2).expect("first");
        let b = count.try_acquire(2).expect("second");
        assert!(count.try_acquire(2).is_none(), "full");
        assert_eq!(count.current(), 2);
        drop(a);
        let c = count.try_acquire(2).expect("room again");
        assert!(
            count.try_acquire(3).is_some(),
            "a higher ceiling applies at once"
        );
        drop((b, c));
        assert_eq!(count.current(), 0);
    }

    #[test]
    fn burst_log_logs_the_first_hit_of_each_burst() {
        let t0 = Instant::now();
        let mut log = BurstLog::default();
        assert_eq!(log.hit(t0), Some(0));
        assert_eq!(log.hit(t0 + Duration::from_secs(1)), None);
        // Hits keep the burst going: 9 s apart each, 18 s after the first.
        assert_eq!(log.hit(t0 + Duration::from_secs(10)), None);
        assert_eq!(log.hit(t0 + Duration::from_secs(19)), None);
        assert_eq!(log.hit(t0 + Duration::from_secs(29)), Some(3));
        assert_eq!(log.hit(t0 + Duration::from_secs(29)), None);
    }

    #[test]
    fn tenants_count_apart() {
        let usage = Usage::default();
        let limits = Limits {
            connections: 1,
            ..Limits::default()
        };
        let a = HubKey::new("a", "h");
        let b = HubKey::new("b", "h");
        let slot = admit_connection(&usage, &limits, &a).expect("a's first");
        let refused = admit_connection(&usage, &limits, &a).expect_err("a is full");
        assert!(refused.contains("at most 1"), "{refused}");
        assert!(check_connection_room(&usage, &limits, &a).is_err());
        let _b = admit_connection(&usage, &limits, &b).expect("b is not affected");
        drop(slot);
        assert_eq!(usage.tenant("a").connections(), 0);
        admit_connection(&usage, &limits, &a).expect("a has room again");
    }

    #[tokio::test]
    async fn invocation_slots_wait_then_give_up() {
        let usage = TenantUsage::default();
        let limits = Limits {
            concurrent_invocations: 1,
            invocation_queue_ms: 20,
            ..Limits::default()
        };
        let held = usage.invocation_slot(&limits).await.expect("first");
        assert!(
            usage.invocation_slot(&limits).await.is_none(),
            "waited, gave up"
        );
        drop(held);
        assert!(usage.invocation_slot(&limits).await.is_some());
    }
}
