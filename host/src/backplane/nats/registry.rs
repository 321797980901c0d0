//! The cluster registry: which node holds which connection, and which users
//! are connected where. One KV bucket whose entries age out after
//! `registry_ttl_secs`; each node rewrites its own entries every third of
//! that, and deletes those of connections that ended. A node that dies stops
//! refreshing, so its entries expire: the registry survives any one node.
//!
//! Keys (every name base64url): `{tenant}.{hub}.c.{connection}` holds the
//! node id; `{tenant}.{hub}.u.{user}.{connection}` holds the node id;
//! `node.{node id}` holds the URL other nodes reach the node's HTTP at (for
//! forwarding a request to the node that holds its connection).

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tracing::{debug, info, warn};

use super::Shared;
use super::subject::token;
use crate::router::{HubKey, Router};

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
    let bucket = shared.names.registry_bucket();
    if let Ok(store) = shared.js.get_key_value(&bucket).await {
        return Ok(store);
    }
    let created = shared
        .js
        .create_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 1,
            max_age: Duration::from_secs(shared.config.registry_ttl_secs),
            num_replicas: shared.config.replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another node created it meanwhile.
        Err(e) => shared.js.get_key_value(&bucket).await.map_err(|_| err(e)),
    }
}

/// Keeps this node's entries fresh until the backplane stops: every second
/// it adds the entries of new connections and deletes those of ended ones;
/// every third of the TTL it rewrites them all (and the node's own entry), so
/// they outlive the TTL only while the node lives.
pub(super) async fn run(shared: Arc<Shared>, router: Weak<Router>) {
    let refresh_every = Duration::from_secs(shared.config.registry_ttl_secs) / 3;
    let mut tick = tokio::time::interval(refresh_every.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: HashSet<String> = HashSet::new();
    let mut refreshed: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            _ = tick.tick() => {}
            // The advertised URL was just set: announce it now, not a tick later.
            () = shared.registry_wake.notified() => refreshed = None,
        }
        let Some(router) = router.upgrade() else {
            return;
        };
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
        for connection in router.local_connections() {
            now.insert(connection_key(&connection.hub, &connection.id));
            if let Some(user) = &connection.user {
                now.insert(user_key(&connection.hub, user, &connection.id));
            }
        }
        drop(router);
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
