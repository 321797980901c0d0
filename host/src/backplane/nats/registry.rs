//! The cluster registry: which node holds which connection, and which users
//! are connected where. One KV bucket whose entries age out after
//! `registry_ttl_secs`; each node rewrites its own entries every third of
//! that, and deletes those of connections that ended. A node that dies stops
//! refreshing, so its entries expire: the registry survives any one node.
//!
//! Keys (every name base64url): `{tenant}.{hub}.c.{connection}` holds the
//! node id; `{tenant}.{hub}.u.{user}.{connection}` holds the node id.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

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

async fn open(shared: &Shared) -> Result<kv::Store, RegistryError> {
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

/// Keeps this node's entries fresh until the backplane stops.
pub(super) async fn run(shared: Arc<Shared>, router: Weak<Router>) {
    let period = Duration::from_secs(shared.config.registry_ttl_secs) / 3;
    let mut written: HashSet<String> = HashSet::new();
    let mut store: Option<kv::Store> = None;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(router) = router.upgrade() else {
            return;
        };
        if !shared.is_connected() {
            continue;
        }
        if store.is_none() {
            match open(&shared).await {
                Ok(s) => store = Some(s),
                Err(e) => {
                    warn!(error = %e, "cannot open the cluster registry");
                    continue;
                }
            }
        }
        let Some(store) = store.as_ref() else {
            continue;
        };
        let mut now = HashSet::new();
        for connection in router.local_connections() {
            now.insert(connection_key(&connection.hub, &connection.id));
            if let Some(user) = &connection.user {
                now.insert(user_key(&connection.hub, user, &connection.id));
            }
        }
        drop(router);
        let value = Bytes::from(shared.node_id.clone());
        let mut failed = 0usize;
        for key in &now {
            if store.put(key, value.clone()).await.is_err() {
                failed += 1;
            }
        }
        for gone in written.difference(&now) {
            if store.delete(gone).await.is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            warn!(failed, "cluster registry refresh incomplete");
        }
        debug!(entries = now.len(), "cluster registry refreshed");
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

    /// How many connections `user` has in `hub` across the cluster.
    pub async fn user_connections(&self, hub: &HubKey, user: &str) -> Result<usize, RegistryError> {
        let store = open(&self.shared).await?;
        let filter = format!("{}.u.{}.*", hub_prefix(hub), token(user));
        let mut keys = store.watch_with_history(filter).await.map_err(err)?;
        let mut live = HashSet::new();
        // The watch first replays what the bucket holds, then waits: stop
        // at the last replayed entry, or after a bounded wait if it is empty.
        loop {
            let next = tokio::time::timeout(Duration::from_millis(500), keys.next()).await;
            let Ok(Some(entry)) = next else { break };
            let entry = entry.map_err(err)?;
            if entry.operation == kv::Operation::Put {
                live.insert(entry.key.clone());
            } else {
                live.remove(&entry.key);
            }
            if entry.delta == 0 {
                break;
            }
        }
        Ok(live.len())
    }
}
