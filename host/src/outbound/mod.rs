//! What the rest of the node holds of a connection: its handle (identity,
//! items, client results, the durable stream position), the bounded outbox
//! its writer drains, and what plugins may read of the request that opened
//! it. The `router` indexes handles, `hub` and `plugin` send through them;
//! the `connection` layer runs the transport side.
//!
//! This sits on the backplane's floor rather than below it: a durable
//! connection's handle publishes its direct records and receipts to the
//! backplane and keeps its place in the hub's stream (`durable`).
//!
//! Layout:
//! - `handle`: the connection handle and its durable part.
//! - `outbox`: the bounded outbound queue; closing the connection closes it.
//! - `receipts`: what a durable connection's client sent, until stored.
//! - `request`: the packed, bounded request info plugins may read.

mod handle;
pub mod outbox;
mod receipts;
mod request;

pub use handle::{ConnectionHandle, Detached, ItemsStore, SlowConsumer, TOO_SLOW};
pub use request::{REQUEST_INFO_BYTES, RequestInfo, TransportKind, Visible};
