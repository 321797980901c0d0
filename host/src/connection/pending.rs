//! Connections that negotiated but whose transport has not arrived yet.
//! Abandoned ones (a client that fell back to another transport, or gave up)
//! expire after the disconnect timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::address::HubKey;
use crate::outbound::RequestInfo;
use crate::tenant::Identity;

/// What negotiate decided for a connection.
#[derive(Debug, Clone)]
pub struct Negotiated {
    /// The public connection id, shown to plugins and the REST API.
    pub connection_id: Arc<str>,
    /// The tenant and hub the client negotiated for.
    pub hub: HubKey,
    /// Who the client authenticated as at negotiate.
    pub identity: Identity,
    /// The client's `negotiateVersion`: 0 (the connection id is the key) or 1 (a separate token
    /// is).
    pub negotiate_version: u32,
    /// Whether the client asked for stateful reconnect and the node allows it.
    pub stateful_reconnect: bool,
    /// The request that opened the connection, as plugins may see it.
    pub request: RequestInfo,
    /// What the client POSTed before its transport's first request (at most
    /// [`EARLY_BYTES`]): handed to the connection before anything else.
    pub early: Vec<bytes::Bytes>,
}

/// Bytes a client may POST to a negotiated connection before its SSE stream
/// or first poll starts it (ASP.NET's pipe pauses its writer at 64 KiB).
pub const EARLY_BYTES: usize = 64 * 1024;

/// Why a POST before the transport started was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyRefused {
    /// No pending connection of that key passes the check (or it expired).
    Unknown,
    /// More than [`EARLY_BYTES`], or the pending connections' byte budget.
    Full,
}

/// Bytes all pending connections may hold at once (their request info, claims
/// and bookkeeping, estimated); more negotiates are refused until some start
/// or expire.
pub(super) const PENDING_BYTES: usize = 64 << 20;
/// What one pending connection costs beside its request info and claims.
const ENTRY_BYTES: usize = 512;

impl Negotiated {
    /// About how many bytes this holds on the heap.
    pub fn cost(&self) -> usize {
        let claims = if self.identity.claims.is_empty() {
            0
        } else {
            serde_json::to_vec(&self.identity.claims).map_or(0, |v| v.len())
        };
        ENTRY_BYTES
            + self.request.heap_bytes()
            + claims
            + self.early.iter().map(|b| b.len()).sum::<usize>()
    }
}

/// Negotiated connections by the `id` their transport requests send, until a transport starts them
/// or they expire.
#[derive(Debug)]
pub struct PendingConnections {
    /// By the `id` clients send: the token (v1) or the connection id (v0).
    by_key: Mutex<Pending>,
    ttl: Duration,
    max: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Pending {
    /// When each was negotiated, and what it costs.
    map: HashMap<String, (Instant, usize, Negotiated)>,
    bytes: usize,
}

impl Pending {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        let mut freed = 0;
        self.map.retain(|_, (at, cost, _)| {
            let keep = now.duration_since(*at) < ttl;
            if !keep {
                freed += *cost;
            }
            keep
        });
        self.bytes -= freed;
    }
}

impl PendingConnections {
    /// A table whose entries expire after `ttl`, holding at most `max` of them and 64 MiB
    /// (estimated) in all.
    pub fn new(ttl: Duration, max: usize) -> PendingConnections {
        PendingConnections::with_budget(ttl, max, PENDING_BYTES)
    }

    /// As [`PendingConnections::new`], with `max_bytes` as the byte budget instead of 64 MiB.
    pub fn with_budget(ttl: Duration, max: usize, max_bytes: usize) -> PendingConnections {
        PendingConnections {
            by_key: Mutex::new(Pending::default()),
            ttl,
            max,
            max_bytes,
        }
    }

    /// Remembers a negotiated connection. False when too many are pending,
    /// by count or by bytes.
    pub fn insert(&self, key: String, negotiated: Negotiated) -> bool {
        let now = Instant::now();
        let cost = negotiated.cost();
        let mut pending = self.by_key.lock();
        let full = |p: &Pending| p.map.len() >= self.max || p.bytes + cost > self.max_bytes;
        if full(&pending) {
            pending.expire(now, self.ttl);
            if full(&pending) {
                return false;
            }
        }
        pending.bytes += cost;
        if let Some((_, old, _)) = pending.map.insert(key, (now, cost, negotiated)) {
            pending.bytes -= old;
        }
        true
    }

    /// Takes the connection a transport request names, if it is still pending.
    pub fn take(&self, key: &str) -> Option<Negotiated> {
        let mut pending = self.by_key.lock();
        let (at, cost, negotiated) = pending.map.remove(key)?;
        pending.bytes -= cost;
        (at.elapsed() < self.ttl).then_some(negotiated)
    }

    /// Keeps `data` for the pending connection `key` names, if `check`
    /// passes it (its hub and user): a client may POST its handshake before
    /// its transport's first request, as ASP.NET allows (the connection
    /// exists from negotiate), and the transport hands it on when it starts.
    pub fn append_early(
        &self,
        key: &str,
        data: bytes::Bytes,
        check: impl FnOnce(&Negotiated) -> bool,
    ) -> Result<(), EarlyRefused> {
        let mut guard = self.by_key.lock();
        let pending = &mut *guard;
        let Some((at, cost, negotiated)) = pending.map.get_mut(key) else {
            return Err(EarlyRefused::Unknown);
        };
        if at.elapsed() >= self.ttl || !check(negotiated) {
            return Err(EarlyRefused::Unknown);
        }
        let held: usize = negotiated.early.iter().map(|b| b.len()).sum();
        if held + data.len() > EARLY_BYTES || pending.bytes + data.len() > self.max_bytes {
            return Err(EarlyRefused::Full);
        }
        *cost += data.len();
        pending.bytes += data.len();
        negotiated.early.push(data);
        Ok(())
    }

    /// Whether a transport request for `key` would find its connection.
    pub fn contains(&self, key: &str) -> bool {
        self.by_key.lock().map.contains_key(key)
    }

    /// Drops expired entries; called periodically.
    pub fn sweep(&self) -> usize {
        let mut pending = self.by_key.lock();
        let before = pending.map.len();
        pending.expire(Instant::now(), self.ttl);
        before - pending.map.len()
    }

    /// Pending connections, expired ones not swept yet included.
    pub fn len(&self) -> usize {
        self.by_key.lock().map.len()
    }

    /// The estimated bytes all pending connections hold.
    pub fn bytes(&self) -> usize {
        self.by_key.lock().bytes
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Visible;

    fn negotiated() -> Negotiated {
        Negotiated {
            connection_id: Arc::from("c"),
            hub: HubKey::new("t", "h"),
            identity: Identity::anonymous(),
            negotiate_version: 1,
            stateful_reconnect: false,
            request: RequestInfo::default(),
            early: Vec::new(),
        }
    }

    #[test]
    fn early_posts_are_kept_bounded_for_their_transport() {
        let pending = PendingConnections::new(Duration::from_secs(60), 10);
        assert!(pending.insert("k".into(), negotiated()));
        let data = bytes::Bytes::from_static(b"{\"protocol\":\"json\",\"version\":1}\x1e");
        assert_eq!(pending.append_early("k", data.clone(), |_| true), Ok(()));
        assert_eq!(
            pending.append_early("k", data.clone(), |_| false),
            Err(EarlyRefused::Unknown),
            "the check (hub, user) refuses"
        );
        assert_eq!(
            pending.append_early("other", data.clone(), |_| true),
            Err(EarlyRefused::Unknown)
        );
        let big = bytes::Bytes::from(vec![b'x'; EARLY_BYTES]);
        assert_eq!(
            pending.append_early("k", big, |_| true),
            Err(EarlyRefused::Full)
        );
        let taken = pending.take("k").expect("pending");
        assert_eq!(taken.early, vec![data]);
        assert_eq!(pending.bytes(), 0, "the early bytes were counted and freed");
    }

    #[test]
    fn take_once_and_expire() {
        let p = PendingConnections::new(Duration::from_millis(50), 10);
        assert!(p.insert("k".into(), negotiated()));
        assert!(p.take("k").is_some());
        assert!(p.take("k").is_none(), "a connection is taken once");
        assert!(p.insert("old".into(), negotiated()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(p.take("old").is_none(), "expired");
        assert!(p.insert("x".into(), negotiated()));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.sweep(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn bounded() {
        let p = PendingConnections::new(Duration::from_secs(60), 2);
        assert!(p.insert("a".into(), negotiated()));
        assert!(p.insert("b".into(), negotiated()));
        assert!(!p.insert("c".into(), negotiated()));
    }

    #[test]
    fn bounded_in_bytes_and_freed_as_they_start_or_expire() {
        let mut big = negotiated();
        let headers: axum::http::HeaderMap = (0..4)
            .map(|i| {
                (
                    axum::http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).expect("n"),
                    "v".repeat(1000).parse().expect("v"),
                )
            })
            .collect();
        big.request = RequestInfo::capture(&[], &headers, Visible::DEFAULT);
        let cost = big.cost();
        assert!(cost > 4000 && cost < 5000, "{cost}");
        let p = PendingConnections::with_budget(Duration::from_millis(50), 100, cost * 3);
        for key in ["a", "b", "c"] {
            assert!(p.insert(key.into(), big.clone()));
        }
        assert_eq!(p.bytes(), cost * 3);
        assert!(!p.insert("d".into(), big.clone()), "over the byte budget");
        assert!(p.take("a").is_some());
        assert!(
            p.insert("d".into(), big.clone()),
            "a started connection frees its bytes"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(p.insert("e".into(), big.clone()), "expired ones make room");
        assert_eq!((p.len(), p.bytes()), (1, cost));
        assert_eq!(p.sweep(), 0);
    }
}
