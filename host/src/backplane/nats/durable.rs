//! What durable resume keeps in NATS (see `crate::durable`): the sessions
//! bucket, one entry per durable connection under a hash of its reconnect
//! token, changed only by compare-and-set of its revision; the state of a
//! partition's stream; and a replay of that stream from a checkpoint, for the
//! node that takes a connection over.

use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use super::kv::{TimedOut, bounded, live_entry};
use super::{NatsBackplane, Shared, codec, subscriber};
use async_nats::jetstream::stream::LastRawMessageErrorKind;

use crate::address::HubKey;
use crate::backplane::{Cursor, Envelope, EnvelopeKind};

/// Why a read or write of durable-resume state in NATS failed.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// NATS refused the operation or could not be reached (its error text).
    #[error("NATS: {0}")]
    Nats(String),
    /// NATS did not answer within 5 s.
    #[error("NATS did not answer in time")]
    TimedOut,
}

fn nats(e: impl std::fmt::Display) -> DurableError {
    DurableError::Nats(e.to_string())
}

impl TimedOut for DurableError {
    fn timed_out() -> DurableError {
        DurableError::TimedOut
    }
}

/// A partition stream as a resume sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Its identity: when it was created (a recreated stream numbers anew).
    pub identity: String,
    /// Sequence of the oldest record the stream still holds.
    pub first: u64,
    /// Sequence of the newest record stored in the stream.
    pub last: u64,
}

/// The records of a partition's stream from a sequence on, in order.
pub type Replay = Pin<Box<dyn Stream<Item = Result<Envelope, DurableError>> + Send>>;

/// Most bytes of one entry of the sessions bucket: an encoded session (the
/// durable layer encodes within it; the request info is capped already).
pub const MAX_SESSION_BYTES: usize = 64 * 1024;

/// The sessions bucket's config.
pub(super) fn sessions_config(shared: &Shared) -> kv::Config {
    kv::Config {
        bucket: shared.names.sessions_bucket(),
        history: 1,
        // A session older than the streams' retention cannot
        // be resumed anyway.
        max_age: Duration::from_secs(shared.config.max_age_secs.max(60)),
        max_value_size: MAX_SESSION_BYTES as i32,
        num_replicas: shared.config.replicas,
        ..Default::default()
    }
}

impl NatsBackplane {
    async fn sessions(&self) -> Result<&kv::Store, DurableError> {
        self.sessions.store().await.map_err(nats)
    }

    /// A session and its revision; None when there is none.
    pub async fn session_read(&self, key: &str) -> Result<Option<(Bytes, u64)>, DurableError> {
        bounded(async {
            let store = self.sessions().await?;
            let entry = live_entry(store, key).await.map_err(nats)?;
            Ok(entry.map(|entry| (entry.value, entry.revision)))
        })
        .await
    }

    /// Writes a new connection's session; its revision.
    pub async fn session_write(&self, key: &str, value: Bytes) -> Result<u64, DurableError> {
        bounded(async {
            let store = self.sessions().await?;
            store.put(key, value).await.map_err(nats)
        })
        .await
    }

    /// Replaces the session at `revision`; its new revision, or None when
    /// another write came first (the compare-and-set lost).
    pub async fn session_swap(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
    ) -> Result<Option<u64>, DurableError> {
        bounded(async {
            let store = self.sessions().await?;
            match store.update(key, value, revision).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) if e.to_string().contains("wrong last sequence") => Ok(None),
                Err(e) => Err(nats(e)),
            }
        })
        .await
    }

    /// Deletes the session if it is still at `revision` (a node that took
    /// the connection over has its own).
    pub async fn session_delete(&self, key: &str, revision: u64) -> Result<(), DurableError> {
        bounded(async {
            let store = self.sessions().await?;
            store
                .delete_expect_revision(key, Some(revision))
                .await
                .map_err(nats)
        })
        .await
    }

    /// The last claim of a durable connection stored in its hub's stream:
    /// its sequence and epoch; None when the stream holds none (never taken
    /// over, or the claim has expired).
    pub async fn last_claim(
        &self,
        hub: &HubKey,
        connection: &str,
    ) -> Result<Option<(u64, u64)>, DurableError> {
        let partition = self.partition_of(hub);
        let subject = self.shared.names.claim_subject(partition, hub, connection);
        bounded(async {
            let stream = subscriber::ensure_stream(&self.shared, partition)
                .await
                .map_err(nats)?;
            let message = match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => message,
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
                Err(e) => return Err(nats(e)),
            };
            match codec::decode(hub.clone(), &message.payload).map(|e| e.kind) {
                Ok(EnvelopeKind::Claim { epoch, .. }) => Ok(Some((message.sequence, epoch))),
                _ => Err(DurableError::Nats(format!(
                    "record {} on a claim subject is no claim",
                    message.sequence
                ))),
            }
        })
        .await
    }

    /// What the stream of `partition` holds now.
    pub async fn stream_info(&self, partition: u32) -> Result<StreamInfo, DurableError> {
        bounded(async {
            let mut stream = subscriber::ensure_stream(&self.shared, partition)
                .await
                .map_err(nats)?;
            let info = stream.info().await.map_err(nats)?;
            Ok(StreamInfo {
                identity: info.created.unix_timestamp_nanos().to_string(),
                first: info.state.first_sequence,
                last: info.state.last_sequence,
            })
        })
        .await
    }

    /// The records of `partition`'s stream from sequence `from` on, as the
    /// subscriber hands them to the router (cursor and `own` set); it goes on
    /// with new records until dropped.
    pub async fn replay(&self, partition: u32, from: u64) -> Result<Replay, DurableError> {
        let shared = self.shared.clone();
        let messages = bounded(async {
            let stream = subscriber::ensure_stream(&shared, partition)
                .await
                .map_err(nats)?;
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: shared.names.partition_wildcard(partition),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: from.max(1),
                    },
                    ..Default::default()
                })
                .await
                .map_err(nats)?;
            consumer.messages().await.map_err(nats)
        })
        .await?;
        let node_id = shared.node_id.clone();
        Ok(Box::pin(messages.filter_map(move |message| {
            let out = (|| {
                let message = message.map_err(nats)?;
                let info = message.info().map_err(nats)?;
                let cursor = Cursor {
                    partition,
                    sequence: info.stream_sequence,
                };
                let own = subscriber::delivered_in_place(message.headers.as_ref(), &node_id);
                let Some((_, hub)) = shared.names.parse_subject(message.subject.as_str()) else {
                    return Ok(None);
                };
                // A record this node cannot read is skipped alike by the owner's reader.
                let Ok(mut envelope) = codec::decode(hub, &message.payload) else {
                    return Ok(None);
                };
                envelope.cursor = Some(cursor);
                envelope.own = own;
                Ok(Some(envelope))
            })();
            std::future::ready(out.transpose())
        })))
    }
}
