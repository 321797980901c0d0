//! Connections accepted while every slot is taken. They may only reach the
//! operator's routes (health, readiness, metrics, the admin API); anything
//! else is answered 503. There are few of them, each serves one request, and
//! when all are taken the oldest is closed for the newest, so a flood of
//! silent sockets cannot keep a health check out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Connections kept for the operator's routes beside the cap.
pub const RESERVED_CONNECTIONS: usize = 16;

/// Whether a request for `path` is served on a reserved connection.
pub fn is_operator_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path == "/admin/v1"
        || path.starts_with("/admin/v1/")
}

/// The live reserved connections, oldest first.
#[derive(Debug)]
pub struct Reserved {
    live: Mutex<VecDeque<(u64, CancellationToken)>>,
    next: AtomicU64,
    max: usize,
}

/// A reserved connection's place; it leaves the set when dropped.
#[derive(Debug)]
pub struct Place {
    set: Arc<Reserved>,
    id: u64,
    /// Cancelled when a newer connection needs the place.
    pub evicted: CancellationToken,
}

impl Reserved {
    /// A set of at most `max` places (at least 1).
    pub fn new(max: usize) -> Arc<Reserved> {
        Arc::new(Reserved {
            live: Mutex::new(VecDeque::with_capacity(max)),
            next: AtomicU64::new(0),
            max: max.max(1),
        })
    }

    /// A place for a new connection; when all are taken, the oldest
    /// connection is told to close (its token cancelled) and true returned.
    pub fn enter(self: &Arc<Self>) -> (Place, bool) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut live = self.live.lock();
        let mut evicted_one = false;
        while live.len() >= self.max {
            if let Some((_, oldest)) = live.pop_front() {
                oldest.cancel();
                evicted_one = true;
            }
        }
        live.push_back((id, evicted.clone()));
        drop(live);
        (
            Place {
                set: self.clone(),
                id,
                evicted,
            },
            evicted_one,
        )
    }

    /// Reserved connections open.
    pub fn len(&self) -> usize {
        self.live.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut live = self.set.live.lock();
        if let Some(at) = live.iter().position(|(id, _)| *id == self.id) {
            live.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_paths_only() {
        for path in ["/healthz", "/readyz", "/metrics", "/admin/v1/tenants"] {
            assert!(is_operator_path(path), "{path}");
        }
        for path in [
            "/hubs/demo/chat/negotiate",
            "/hubs/demo/chat",
            "/api/v1/tenants/demo/hubs/chat/:send",
            "/healthz/x",
            "/admin/v10",
            "/",
        ] {
            assert!(!is_operator_path(path), "{path}");
        }
    }

    #[test]
    fn the_oldest_makes_room_for_the_newest() {
        let set = Reserved::new(2);
        let (a, evicted) = set.enter();
        assert!(!evicted);
        let (b, _) = set.enter();
        assert_eq!(set.len(), 2);
        let (c, evicted) = set.enter();
        assert!(evicted, "full: the oldest goes");
        assert!(a.evicted.is_cancelled());
        assert!(!b.evicted.is_cancelled() && !c.evicted.is_cancelled());
        assert_eq!(set.len(), 2);
        drop(a);
        assert_eq!(set.len(), 2, "an evicted place is already gone");
        drop(b);
        assert_eq!(set.len(), 1);
        drop(c);
        assert!(set.is_empty());
    }
}
