//! Durable resume: a stateful-reconnect connection that survives the death of
//! its node. The client's single resume attempt may land on any node, which
//! takes the connection over with the same sequence ids, nothing lost and
//! nothing sent twice.
//!
//! # The idea
//!
//! The SignalR client drops what it receives by *implicit* sequence id, and
//! its position is only known to the node that got its Acks. So a node that
//! takes over must number the connection's records exactly as the dead owner
//! did. That holds when every trackable record of a durable connection comes
//! out of its hub's partition stream S, applied in stream order by one task:
//! the numbering is then a pure function of S filtered by the connection's
//! membership ([`Track`]), and any node that replays S from a checkpoint
//! computes the same ids.
//!
//! - **No local shortcut.** A send that may reach a durable connection is
//!   published, and applied to it on read-back (the node's own envelopes
//!   included), never delivered in place. Group changes touching one take
//!   effect on read-back, so its membership only changes at a cursor.
//! - **Direct records** (Completions, StreamItems, client-result
//!   Invocations) are published as envelopes of the hub's subject and pushed
//!   to the outbox when read back; publish order within a partition keeps a
//!   send an invocation made before its Completion.
//! - **Inbound receipts**: the trackable messages of one socket read are
//!   covered by one receipt, carrying the open invocation ids; an Ack goes
//!   out only for what is stored. Uploads, cancellations and client results
//!   run once their receipt is stored. Method invocations run at once, and
//!   their receipt rides on their first effect: in the Completion or stream
//!   item record itself, or, before a send, group change or KV write,
//!   published and read back first (`connection::receipts`). A call that
//!   died before any effect left no trace, so the client's resend runs it on
//!   the new owner, once as far as anyone can tell.
//! - **Live reads**: a durable connection's own records go to a subject of
//!   its owner node (`backplane::nats::subject`), so only the owner reads
//!   them live; a taker replays the whole partition.
//! - **Ownership** ([`session`]): a KV entry per connection, keyed by a hash
//!   of its reconnect token, holds the owner node and an epoch. A takeover is
//!   a compare-and-set of that entry, then a `Claim` envelope in S that
//!   fences: direct records and receipts of an older epoch that come after
//!   it are ignored by every node, and an owner that reads a newer claim
//!   drops the connection without writing to it. An owner reads its own
//!   receipt back before any effect of a call, so a claim stored before the
//!   receipt stops the effect; and every write of an owner is stored only
//!   while its own claim is the connection's last (a JetStream condition,
//!   see `crate::backplane::Fence`), so a claim stored later stops it too,
//!   whatever the owner has read. No clock decides ownership.
//! - **Checkpoints** ([`Ring`]): the owner keeps a few (id, cursor,
//!   membership) marks and stores the newest one at or below the client's
//!   Ack, so a taker replays from a point the client has seen.
//! - **Honest failure** ([`honest`]): when the stream no longer holds what
//!   the client missed, the client gets `Sequence(1)` and a Close with an
//!   error and `allowReconnect`, never a silent gap.
//!
//! This module holds the pure parts: the numbering and fence rules shared by
//! a live owner and a taker, the checkpoint ring, the session record and the
//! resume decision. None of them does I/O.

pub mod honest;
mod ring;
pub mod session;
mod track;

pub use ring::{Mark, Ring};
pub use track::{JoinRefused, MAX_GROUPS_BYTES, Membership, Record, Step, Track};

/// Longest invocation id a durable connection takes: the ids of its running
/// invocations travel in its session, whose size is bounded (the official
/// clients number their calls; the Python ones use 36-byte UUIDs).
pub const MAX_INVOCATION_ID_BYTES: usize = 64;
