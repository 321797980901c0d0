//! Connections that negotiated but whose transport has not arrived yet.
//! Abandoned ones (a client that fell back to another transport, or gave up)
//! expire after the disconnect timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::router::HubKey;
use crate::tenant::Identity;

/// What negotiate decided for a connection.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub connection_id: Arc<str>,
    pub hub: HubKey,
    pub identity: Identity,
    pub negotiate_version: u32,
    pub stateful_reconnect: bool,
    /// The request that opened the connection, as plugins may see it.
    pub request: RequestInfo,
}

/// What plugins may read of the request that opened a connection.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub query: Vec<(String, String)>,
    /// Header names lowercased; never Authorization or Cookie.
    pub headers: Vec<(String, String)>,
}

/// Headers never shown to plugins: they carry credentials.
const HIDDEN_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];
/// Query parameters never shown to plugins.
const HIDDEN_QUERY: &[&str] = &["access_token", "id"];
const MAX_REQUEST_ITEMS: usize = 64;
const MAX_REQUEST_VALUE: usize = 4096;

impl RequestInfo {
    /// Keeps what a plugin may see of a request, bounded in size.
    pub fn capture(query: &[(String, String)], headers: &axum::http::HeaderMap) -> RequestInfo {
        let query = query
            .iter()
            .filter(|(k, _)| !HIDDEN_QUERY.iter().any(|h| k.eq_ignore_ascii_case(h)))
            .filter(|(k, v)| k.len() + v.len() <= MAX_REQUEST_VALUE)
            .take(MAX_REQUEST_ITEMS)
            .cloned()
            .collect();
        let headers = headers
            .iter()
            .filter(|(name, _)| !HIDDEN_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .filter(|(k, v)| k.len() + v.len() <= MAX_REQUEST_VALUE)
            .take(MAX_REQUEST_ITEMS)
            .collect();
        RequestInfo { query, headers }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct PendingConnections {
    /// By the `id` clients send: the token (v1) or the connection id (v0).
    by_key: Mutex<HashMap<String, (Instant, Negotiated)>>,
    ttl: Duration,
    max: usize,
}

impl PendingConnections {
    pub fn new(ttl: Duration, max: usize) -> PendingConnections {
        PendingConnections {
            by_key: Mutex::new(HashMap::new()),
            ttl,
            max,
        }
    }

    /// Remembers a negotiated connection. False when too many are pending.
    pub fn insert(&self, key: String, negotiated: Negotiated) -> bool {
        let now = Instant::now();
        let mut map = self.by_key.lock();
        if map.len() >= self.max {
            map.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if map.len() >= self.max {
                return false;
            }
        }
        map.insert(key, (now, negotiated));
        true
    }

    /// Takes the connection a transport request names, if it is still pending.
    pub fn take(&self, key: &str) -> Option<Negotiated> {
        let (at, negotiated) = self.by_key.lock().remove(key)?;
        (at.elapsed() < self.ttl).then_some(negotiated)
    }

    /// Drops expired entries; called periodically.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut map = self.by_key.lock();
        let before = map.len();
        map.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.by_key.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated() -> Negotiated {
        Negotiated {
            connection_id: Arc::from("c"),
            hub: HubKey::new("t", "h"),
            identity: Identity::anonymous(),
            negotiate_version: 1,
            stateful_reconnect: false,
            request: RequestInfo::default(),
        }
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
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn capture_hides_credentials() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", "Bearer secret".parse().expect("h"));
        headers.insert("cookie", "s=1".parse().expect("h"));
        headers.insert("user-agent", "test".parse().expect("h"));
        let query = vec![
            ("access_token".to_owned(), "secret".to_owned()),
            ("id".to_owned(), "token".to_owned()),
            ("room".to_owned(), "blue".to_owned()),
        ];
        let info = RequestInfo::capture(&query, &headers);
        assert_eq!(info.query, vec![("room".to_owned(), "blue".to_owned())]);
        assert_eq!(info.header("User-Agent"), Some("test"));
        assert_eq!(info.header("authorization"), None);
        assert_eq!(info.header("cookie"), None);
    }
}
