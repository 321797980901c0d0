//! How nodes reach each other's connections. One trait, two implementations:
//! `memory` (one node, or several nodes inside one process for tests) and,
//! in a cluster, NATS JetStream.
//!
//! A backplane carries what a node cannot do alone: sends whose recipients
//! may be elsewhere, and group changes for connections another node holds.
//! It never echoes a node's own envelopes back to it.

pub mod kv;
pub mod memory;
pub mod nats;
mod receipt;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::address::{HubKey, OutboundInvocation, Target};

/// What the backplane asks of this node's own connections: the cluster
/// registry lists them, and other nodes ask whether a group has a member
/// here. The router implements it, so the backplane never names the router.
pub trait LocalIndex: Send + Sync {
    /// How many connections this node holds.
    fn connection_count(&self) -> usize;
    /// Calls `visit` with the hub, id and user of every connection this node holds.
    fn each_connection(&self, visit: &mut dyn FnMut(&HubKey, &str, Option<&str>));
    /// Whether this node holds a member of `group`.
    fn has_group(&self, hub: &HubKey, group: &str) -> bool;
    /// Whether a connection of `user` this node holds is in `group`.
    fn has_user_in_group(&self, hub: &HubKey, user: &str, group: &str) -> bool;
    /// Applies an envelope read from the cluster to this node's connections.
    /// Called on the task that read it, in its partition's order: it must not
    /// block (connections that cannot take more are closed, not waited for).
    fn apply(&self, envelope: Envelope);
}

/// One message between nodes, scoped to a tenant's hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The tenant and hub it is for; in NATS this also picks the partition and subject.
    pub hub: HubKey,
    /// What the envelope asks of the nodes that read it.
    pub kind: EnvelopeKind,
    /// Where the envelope sits in the cluster's streams: set on envelopes read
    /// from NATS, None on the memory backplane and on the way out.
    #[serde(skip)]
    pub cursor: Option<Cursor>,
    /// Published by this node: read back only for its durable connections,
    /// which get everything in stream order (see `crate::durable`).
    #[serde(skip)]
    pub own: bool,
    /// The stream lost records just before this one (they expired before
    /// this node read them, or the stream was recreated): what durable
    /// connections of its partition got can no longer be told by the stream.
    #[serde(skip)]
    pub broken: bool,
    /// Written on behalf of a durable connection by its owner: stored only
    /// while no other node has claimed the connection (None: unconditional).
    #[serde(skip)]
    pub fence: Option<Fence>,
}

impl Envelope {
    /// An envelope on its way out (it gets its cursor once stored).
    pub fn new(hub: HubKey, kind: EnvelopeKind) -> Envelope {
        Envelope {
            hub,
            kind,
            cursor: None,
            own: false,
            broken: false,
            fence: None,
        }
    }

    /// The envelope, stored only under `fence`.
    pub fn fenced(mut self, fence: Option<Fence>) -> Envelope {
        self.fence = fence;
        self
    }
}

/// The condition under which an owner of a durable connection writes: no
/// claim of `connection` stored in its hub's stream after sequence `after`
/// (0: none at all, the first owner's). A takeover stores a claim, so the
/// store refuses the old owner's writes from then on (a paused owner that
/// wakes has no effect), whatever the owner itself has read yet. A fenced
/// write is also delivered to the writing node's own connections only when
/// read back from the stream, never in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Id of the durable connection the owner writes for.
    pub connection: String,
    /// Stream sequence of this owner's latest claim of the connection (0: it stored none).
    pub after: ClaimMark,
}

/// The stream sequence of an owner's latest claim of a durable connection,
/// shared by the connection and every write it makes. A publisher reads it
/// when it sends a write, not when the write was made, and advances it when
/// the owner's renewed claim is stored, before it sends anything more: so a
/// write made while a renewal is on its way is stored under the renewed
/// claim, not refused as if another node had claimed the connection.
#[derive(Debug, Clone, Default)]
pub struct ClaimMark(Arc<std::sync::atomic::AtomicU64>);

impl ClaimMark {
    /// A mark at the claim stored at `sequence` (0: none, the first owner's).
    pub fn new(sequence: u64) -> ClaimMark {
        ClaimMark(Arc::new(std::sync::atomic::AtomicU64::new(sequence)))
    }

    /// The sequence of the latest claim.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The owner's claim was renewed at `sequence` (never moves back).
    pub fn advance(&self, sequence: u64) {
        self.0
            .fetch_max(sequence, std::sync::atomic::Ordering::AcqRel);
    }
}

impl PartialEq for ClaimMark {
    fn eq(&self, other: &ClaimMark) -> bool {
        self.get() == other.get()
    }
}

impl Eq for ClaimMark {}

/// A message's place in the cluster: its partition and stream sequence. The
/// same message has the same cursor on every node, so a position one node
/// hands out means the same on any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Which of the backplane's partition streams holds the message (chosen by hub).
    pub partition: u32,
    /// The message's sequence in that partition's stream.
    pub sequence: u64,
}

/// What an [`Envelope`] asks of the nodes: a send, a membership change, a
/// close, or a record of a durable connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EnvelopeKind {
    /// Delivers an invocation to every connection `target` reaches, on whichever node holds it.
    Send {
        /// Which connections of the hub get it.
        target: Target,
        /// The invocation they get, encoded per connection's protocol on the node that holds it.
        message: Arc<OutboundInvocation>,
    },
    /// Adds a connection to a group on the node that holds it.
    GroupAdd {
        /// Id of the connection.
        connection: String,
        /// Name of the group.
        group: String,
    },
    /// Removes a connection from a group on the node that holds it.
    GroupRemove {
        /// Id of the connection.
        connection: String,
        /// Name of the group.
        group: String,
    },
    /// Closes a connection on the node that holds it; `reason` becomes the
    /// error of the client's Close message.
    Close {
        /// Id of the connection to close.
        connection: String,
        /// Error text for the client's Close message (None or empty: a clean close).
        reason: Option<String>,
    },
    /// Closes every connection `target` reaches but those in `except`, on
    /// every node; `reason` as for [`EnvelopeKind::Close`].
    CloseMany {
        /// The connections to close.
        target: Target,
        /// Ids of connections left open.
        except: Vec<String>,
        /// Error text for each client's Close message (None or empty: a clean close).
        reason: Option<String>,
    },
    /// Removes a connection from every group it is in.
    LeaveAllGroups {
        /// Id of the connection.
        connection: String,
    },
    /// Removes every connection of a user, on every node, from every group.
    UserLeaveAllGroups {
        /// The user id, as the connection's authentication set it.
        user: String,
    },
    /// Adds every connection a user has now, on every node, to a group.
    UserGroupAdd {
        /// The user id, as the connection's authentication set it.
        user: String,
        /// Name of the group.
        group: String,
    },
    /// Removes every connection of a user, on every node, from a group.
    UserGroupRemove {
        /// The user id, as the connection's authentication set it.
        user: String,
        /// Name of the group.
        group: String,
    },
    /// One encoded record (a Completion, StreamItem or client invocation) for
    /// a durable connection, from its owner of `epoch`: it reaches the
    /// connection in stream order, so its sequence id is the same on any node.
    /// `completes`: the client invocation a Completion ends.
    Direct {
        /// Id of the durable connection.
        connection: String,
        /// Ownership epoch of the node that wrote it (see [`EnvelopeKind::Claim`]).
        epoch: u64,
        /// The message as the client gets it: one frame, already encoded in the
        /// connection's protocol.
        record: bytes::Bytes,
        /// Invocation id of the client invocation a Completion ends (None for other records).
        completes: Option<String>,
        /// What the client sent before this record and no receipt stored
        /// yet: stored with it, as a [`EnvelopeKind::Receipt`] just before
        /// it would have been (one publish instead of two for a call).
        received: Option<Received>,
    },
    /// The owner of `epoch` of a durable connection stored what its client
    /// sent up to sequence id `up_to` before handling it; `opens` are the
    /// invocations among it that expect a Completion. A node taking the
    /// connection over knows from these what ran already and what was
    /// running when the owner died.
    Receipt {
        /// Id of the durable connection.
        connection: String,
        /// Ownership epoch of the node that wrote it.
        epoch: u64,
        /// Highest sequence id of the client's messages stored so far.
        up_to: u64,
        /// Invocation ids among those messages that expect a Completion.
        opens: Vec<String>,
    },
    /// A node took a durable connection over with `epoch`: from here on in
    /// the stream, only that owner speaks for it, and an older owner that
    /// reads this drops the connection without writing to it.
    Claim {
        /// Id of the durable connection.
        connection: String,
        /// The new owner's epoch: one above the one it took the connection from.
        epoch: u64,
    },
}

/// A receipt carried by a [`EnvelopeKind::Direct`] record: the client's
/// messages up to sequence id `up_to` are stored, `opens` being the
/// invocations among them that expect a Completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// Highest sequence id of the client's messages stored.
    pub up_to: u64,
    /// Invocation ids among them that expect a Completion.
    pub opens: Vec<String>,
}

/// Publishes envelopes to the other nodes. Publishing never blocks the
/// caller: an implementation queues and sends in the background, and the
/// [`Receipt`] says when the envelope is safely with the cluster (or why it
/// never will be). A caller that promises delivery awaits it; others drop it.
pub trait Backplane: Send + Sync + 'static {
    /// Queues `envelope` for the other nodes; the receipt resolves once the cluster
    /// stored it or refused it.
    fn publish(&self, envelope: Envelope) -> Receipt;
}

pub use receipt::{PublishError, Receipt, Receipts};
/// Envelopes from other nodes, for this node's router.
pub type Inbox = mpsc::UnboundedReceiver<Envelope>;
