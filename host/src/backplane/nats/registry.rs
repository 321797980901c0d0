//! The cluster registry: which node holds which connection, and which users
//! are connected where. One KV bucket whose entries age out after
//! `registry_ttl_secs`; each node rewrites its own entries every third of
//! that, and deletes those of connections that ended. A node that dies stops
//! refreshing, so its entries expire: the registry survives any one node.
//!
//! Keys (every name base64url): `{tenant}.{hub}.c.{connection}` holds the
//! node id; `{tenant}.{hub}.u.{user}.{connection}` holds the node id;
//! `node.{node id}` holds the URL other nodes reach the node's HTTP at (for
//! forwarding a request to the node that holds its connection);
//! `stats.{node id}` holds the node's [`NodeRecord`] (JSON, at most
//! [`MAX_RECORD_BYTES`]), rewritten every [`STATS_EVERY`], which the
//! dashboards of every node list.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tracing::{debug, info, warn};

use super::Shared;
use super::kv::open_or_create;
use super::subject::token;
use crate::address::HubKey;
use crate::backplane::LocalIndex;

/// A read or write of the cluster registry bucket failed (NATS's reason).
#[derive(Debug, thiserror::Error)]
#[error("the cluster registry is unavailable: {0}")]
pub struct RegistryError(String);

fn err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError(e.to_string())
}

fn hub_prefix(hub: &HubKey) -> String {
    format!("{}.{}", token(&hub.tenant), token(&hub.hub))
}

fn connection_key(hub: &HubKey, connection: &str) -> String {
    format!("{}.c.{}", hub_prefix(hub), token(connection))
}

fn user_key(hub: &HubKey, user: &str, connection: &str) -> String {
    format!(
        "{}.u.{}.{}",
        hub_prefix(hub),
        token(user),
        token(connection)
    )
}

fn node_key(node: &str) -> String {
    format!("node.{node}")
}

fn stats_key(node: &str) -> String {
    format!("stats.{node}")
}

/// How often a node rewrites its [`NodeRecord`] (more often when a third of
/// `registry_ttl_secs` is shorter).
pub const STATS_EVERY: Duration = Duration::from_secs(2);

/// Ticks come a little early or late; a record due within this is written now.
const TICK_SLACK: Duration = Duration::from_millis(200);

/// A record not rewritten for this long belongs to a node that is down (or
/// cut off from NATS); it expires from the bucket after `registry_ttl_secs`.
pub const DOWN_AFTER: Duration = Duration::from_secs(8);

/// The most a record takes; a longer one is neither written nor read.
pub const MAX_RECORD_BYTES: usize = 1024;

/// The most nodes a reader lists.
pub const MAX_NODES: usize = 256;

/// What a node tells the cluster about itself, every [`STATS_EVERY`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    /// The node's id, as in the `Sb-Node` header of what it publishes.
    pub id: String,
    /// The node's Switchboard version (the crate version).
    pub version: String,
    /// Where other nodes reach it (its advertised URL), if it has one.
    pub url: Option<String>,
    /// Seconds since the node's backplane started.
    pub uptime_secs: u64,
    /// Not draining, connected to NATS, and every partition's live consumer reading.
    pub ready: bool,
    /// The node is shutting down and takes no new connections.
    pub draining: bool,
    /// Connections the node holds.
    pub connections: u64,
    /// The p99 of its backplane lag since its previous record, if it read any message.
    pub lag_p99_ms: Option<f64>,
    /// Backplane messages it missed (gone from the stream before it read them).
    pub lost: u64,
    /// Envelopes it published only after waiting for NATS or retrying.
    pub late: u64,
}

/// A node's record as read from the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedNode {
    /// The record as the node wrote it.
    pub record: NodeRecord,
    /// The entry's revision: it changes with every rewrite.
    pub revision: u64,
    /// How long ago NATS stored it (by this node's clock and NATS's).
    pub age: Duration,
}

/// This node's record now; `lag_before` is the lag reading of the previous
/// record, replaced by the current one.
fn own_record(
    shared: &Shared,
    local: &dyn LocalIndex,
    lag_before: &mut Vec<(f64, f64)>,
) -> NodeRecord {
    let stats = shared.stats.snapshot();
    let lag_now = shared.stats.lag.buckets();
    let lag_p99_ms =
        crate::metrics::quantile(0.99, lag_before, &lag_now).map(|s| (s * 1e5).round() / 100.0);
    *lag_before = lag_now;
    let draining = shared.draining.load(std::sync::atomic::Ordering::Acquire);
    NodeRecord {
        id: shared.node_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        url: shared.advertise.get().cloned(),
        uptime_secs: shared.started.elapsed().as_secs(),
        ready: !draining
            && shared.is_connected()
            && shared
                .link
                .live
                .iter()
                .all(|live| live.load(std::sync::atomic::Ordering::Relaxed)),
        draining,
        connections: local.connection_count() as u64,
        lag_p99_ms,
        lost: stats.missed,
        late: stats.published_late,
    }
}

/// `record` as the bytes of its entry, within [`MAX_RECORD_BYTES`] (a URL
/// too long to fit is left out).
fn encode_record(record: &NodeRecord) -> Option<Bytes> {
    let fits = |r: &NodeRecord| {
        serde_json::to_vec(r)
            .ok()
            .filter(|bytes| bytes.len() <= MAX_RECORD_BYTES)
    };
    fits(record)
        .or_else(|| {
            fits(&NodeRecord {
                url: None,
                ..record.clone()
            })
        })
        .map(Bytes::from)
}

fn decode_record(value: &[u8]) -> Option<NodeRecord> {
    if value.len() > MAX_RECORD_BYTES {
        return None;
    }
    serde_json::from_slice(value).ok()
}

/// How long a node's URL, once read, is used without reading it again.
const NODE_URL_CACHE: Duration = Duration::from_secs(5);

/// The registry bucket, opened once and kept (a handle holds no server state,
/// so it stays valid across reconnects; it is dropped after a failed write, in
/// case NATS lost the bucket, so the next use creates it again).
async fn open(shared: &Shared) -> Result<kv::Store, RegistryError> {
    if let Some(store) = shared.registry_store.lock().clone() {
        return Ok(store);
    }
    let store = open_bucket(shared).await?;
    *shared.registry_store.lock() = Some(store.clone());
    Ok(store)
}

/// Writes at once to the registry, at most this many at a time.
const CONCURRENT_WRITES: usize = 64;

async fn open_bucket(shared: &Shared) -> Result<kv::Store, RegistryError> {
    let config = kv::Config {
        bucket: shared.names.registry_bucket(),
        history: 1,
        max_age: Duration::from_secs(shared.config.registry_ttl_secs),
        num_replicas: shared.config.replicas,
        ..Default::default()
    };
    open_or_create(&shared.js, config).await.map_err(err)
}

/// Keeps this node's entries fresh until the backplane stops: every second
/// it adds the entries of new connections and deletes those of ended ones;
/// every third of the TTL it rewrites them all (and the node's own entry), so
/// they outlive the TTL only while the node lives.
pub(super) async fn run(shared: Arc<Shared>, local: Weak<dyn LocalIndex>) {
    let refresh_every = Duration::from_secs(shared.config.registry_ttl_secs) / 3;
    let mut tick = tokio::time::interval(refresh_every.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: HashSet<String> = HashSet::new();
    let mut refreshed: Option<tokio::time::Instant> = None;
    let mut stats_written: Option<tokio::time::Instant> = None;
    // Within the TTL, however short, so a live node's record never expires.
    let stats_every = STATS_EVERY.min(refresh_every);
    let mut lag_before: Vec<(f64, f64)> = Vec::new();
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            _ = tick.tick() => {}
            // The advertised URL was just set: announce it now, not a tick later.
            () = shared.registry_wake.notified() => {
                refreshed = None;
                stats_written = None;
            }
        }
        let Some(index) = local.upgrade() else {
            return;
        };
        // Held while this round writes, so a leave waits for it to finish.
        let _writing = shared.registry_writing.lock().await;
        if shared.left.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        if !shared.is_connected() {
            continue;
        }
        let store = match open(&shared).await {
            Ok(store) => store,
            Err(e) => {
                warn!(error = %e, "cannot open the cluster registry");
                continue;
            }
        };
        let mut now = HashSet::new();
        index.each_connection(&mut |hub, id, user| {
            now.insert(connection_key(hub, id));
            if let Some(user) = user {
                now.insert(user_key(hub, user, id));
            }
        });
        let record = stats_written
            .is_none_or(|at| at.elapsed() + TICK_SLACK >= stats_every)
            .then(|| own_record(&shared, &*index, &mut lag_before));
        drop(index);
        if let Some(value) = record.as_ref().and_then(encode_record) {
            match store.put(stats_key(&shared.node_id), value).await {
                Ok(_) => stats_written = Some(tokio::time::Instant::now()),
                Err(e) => {
                    debug!(error = %e, "cannot write this node's record to the cluster registry")
                }
            }
        }
        let full = refreshed.is_none_or(|at| at.elapsed() >= refresh_every);
        if full && let Some(url) = shared.advertise.get() {
            match store
                .put(node_key(&shared.node_id), Bytes::from(url.clone()))
                .await
            {
                Ok(_) => {
                    if !shared
                        .announced
                        .swap(true, std::sync::atomic::Ordering::AcqRel)
                    {
                        info!(node = %shared.node_id, url, "node announced in the cluster registry");
                    }
                }
                Err(e) => warn!(error = %e, "cannot announce this node in the cluster registry"),
            }
        }
        // Owned keys: the futures must not borrow from the closure's argument.
        let puts: Vec<String> = if full {
            now.iter().cloned().collect()
        } else {
            now.difference(&written).cloned().collect()
        };
        let deletes: Vec<String> = written.difference(&now).cloned().collect();
        let value = Bytes::from(shared.node_id.clone());
        let store = &store;
        let failed_puts = futures_util::stream::iter(puts)
            .map(|key: String| store.put(key, value.clone()))
            .buffer_unordered(CONCURRENT_WRITES)
            .filter(|put| std::future::ready(put.is_err()))
            .count()
            .await;
        let failed_deletes = futures_util::stream::iter(deletes)
            .map(|key: String| store.delete(key))
            .buffer_unordered(CONCURRENT_WRITES)
            .filter(|delete| std::future::ready(delete.is_err()))
            .count()
            .await;
        if failed_puts + failed_deletes > 0 {
            warn!(
                failed = failed_puts + failed_deletes,
                "cluster registry refresh incomplete; retrying"
            );
            // Everything again next time, into a bucket opened afresh.
            *shared.registry_store.lock() = None;
            refreshed = None;
        } else if full {
            refreshed = Some(tokio::time::Instant::now());
            debug!(entries = now.len(), "cluster registry refreshed");
        }
        metrics::gauge!("switchboard_cluster_registry_entries").set(now.len() as f64);
        written = now;
    }
}

/// The longest a leaving node waits for NATS to delete its entries.
pub const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// Takes this node out of the registry (its record and its URL), so the
/// other nodes stop listing and forwarding to it at once rather than when
/// its entries expire; the refresh task writes nothing after this. Bounded
/// by [`LEAVE_WAIT`]: NATS being away only means the entries expire instead.
pub(super) async fn leave(shared: &Shared) -> bool {
    shared
        .left
        .store(true, std::sync::atomic::Ordering::Release);
    let removed = tokio::time::timeout(LEAVE_WAIT, async {
        // A round of the refresh task in flight writes nothing after this.
        let _writing = shared.registry_writing.lock().await;
        let store = open(shared).await?;
        store
            .delete(stats_key(&shared.node_id))
            .await
            .map_err(err)?;
        store.delete(node_key(&shared.node_id)).await.map_err(err)
    })
    .await;
    match removed {
        Ok(Ok(())) => {
            info!(node = %shared.node_id, "node left the cluster registry");
            true
        }
        Ok(Err(e)) => {
            warn!(error = %e, "cannot leave the cluster registry; its entries will expire");
            false
        }
        Err(_) => {
            warn!("the cluster registry did not answer; this node's entries will expire");
            false
        }
    }
}

/// Reads the cluster registry.
#[derive(Debug, Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl Registry {
    pub(super) fn new(shared: Arc<Shared>) -> Registry {
        Registry { shared }
    }

    /// The node holding `connection`, if any node registered it.
    pub async fn connection_node(
        &self,
        hub: &HubKey,
        connection: &str,
    ) -> Result<Option<String>, RegistryError> {
        let store = open(&self.shared).await?;
        let value = store
            .get(connection_key(hub, connection))
            .await
            .map_err(err)?;
        Ok(value.and_then(|v| String::from_utf8(v.to_vec()).ok()))
    }

    /// The URL another node advertises, if it is registered (it announced
    /// itself within the registry TTL). Read at most every few seconds per node.
    pub async fn node_url(&self, node: &str) -> Option<String> {
        let cached = self
            .shared
            .node_urls
            .lock()
            .get(node)
            .filter(|(_, at)| at.elapsed() < NODE_URL_CACHE)
            .map(|(url, _)| url.clone());
        if cached.is_some() {
            return cached;
        }
        let store = open(&self.shared).await.ok()?;
        let entry = match store.get(node_key(node)).await {
            Ok(entry) => entry,
            Err(e) => {
                debug!(node, error = %e, "cannot read a node's URL");
                return None;
            }
        };
        let url = entry.and_then(|v| String::from_utf8(v.to_vec()).ok());
        let mut cache = self.shared.node_urls.lock();
        match &url {
            Some(url) => {
                cache.insert(node.to_owned(), (url.clone(), std::time::Instant::now()));
            }
            None => {
                cache.remove(node);
            }
        }
        url
    }

    /// Every node's record (at most [`MAX_NODES`]), this one's included:
    /// the subjects of the records (from the stream's subject index), each
    /// read unless its last entry is a delete.
    pub async fn nodes(&self) -> Result<Vec<ListedNode>, RegistryError> {
        let store = open(&self.shared).await?;
        let filter = format!("{}{}", store.prefix, stats_key("*"));
        let mut subjects = store.stream.info_with_subjects(filter).await.map_err(err)?;
        let mut keys = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(err)?;
            if let Some(key) = subject.strip_prefix(store.prefix.as_str()) {
                keys.push(key.to_owned());
            }
            if keys.len() >= MAX_NODES {
                break;
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let mut nodes = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(entry) = store.entry(key).await.map_err(err)? else {
                continue;
            };
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let Some(record) = decode_record(&entry.value) else {
                debug!(key = %entry.key, "ignoring an unreadable node record");
                continue;
            };
            let age_nanos = (now - entry.created.unix_timestamp_nanos()).max(0);
            nodes.push(ListedNode {
                record,
                revision: entry.revision,
                age: Duration::from_nanos(u64::try_from(age_nanos).unwrap_or(u64::MAX)),
            });
        }
        nodes.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        Ok(nodes)
    }

    /// How many connections `user` has in `hub` across the cluster: the
    /// subjects of the user's keys (from the stream's subject index), each
    /// counted when its last entry is a put, not a delete.
    pub async fn user_connections(&self, hub: &HubKey, user: &str) -> Result<usize, RegistryError> {
        let store = open(&self.shared).await?;
        let filter = format!("{}{}.u.{}.*", store.prefix, hub_prefix(hub), token(user));
        let mut subjects = store.stream.info_with_subjects(filter).await.map_err(err)?;
        let mut live = 0;
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(err)?;
            let last = match store.stream.get_last_raw_message_by_subject(&subject).await {
                Ok(last) => last,
                // Expired or purged since the index was read.
                Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(err(e)),
            };
            let removed = last
                .headers
                .get("KV-Operation")
                .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
            if !removed {
                live += 1;
            }
        }
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(url: Option<String>) -> NodeRecord {
        NodeRecord {
            id: "0123456789abcdef".into(),
            version: "0.1.0".into(),
            url,
            uptime_secs: 7,
            ready: true,
            draining: false,
            connections: 3,
            lag_p99_ms: Some(1.5),
            lost: 0,
            late: 2,
        }
    }

    #[test]
    fn records_round_trip_within_their_bound() {
        let r = record(Some("http://10.0.0.1:5000".into()));
        let bytes = encode_record(&r).expect("fits");
        assert!(bytes.len() <= MAX_RECORD_BYTES);
        assert_eq!(decode_record(&bytes), Some(r));
    }

    #[test]
    fn a_url_too_long_is_left_out_and_an_oversized_value_is_not_read() {
        let long = record(Some(format!("http://{}", "a".repeat(2 * MAX_RECORD_BYTES))));
        let bytes = encode_record(&long).expect("fits without the URL");
        assert_eq!(decode_record(&bytes).map(|r| r.url), Some(None));
        let mut padded = serde_json::to_vec(&record(None)).expect("json");
        padded.extend(std::iter::repeat_n(b' ', MAX_RECORD_BYTES));
        assert_eq!(decode_record(&padded), None);
        assert_eq!(decode_record(b"not json"), None);
    }
}
