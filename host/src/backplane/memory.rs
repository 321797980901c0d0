//! The in-memory backplane: nodes in one process share a bus. A node alone
//! on its bus publishes to nobody, which is the single-node case.

use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::{Backplane, Envelope, Inbox, Receipt};

/// A node on the bus: its id and its inbox.
type Member = (u64, mpsc::UnboundedSender<Envelope>);

/// The bus the nodes of one process share.
#[derive(Debug, Default, Clone)]
pub struct MemoryBus {
    nodes: Arc<RwLock<Vec<Member>>>,
}

impl MemoryBus {
    /// An empty bus; each [`MemoryBus::join`] adds a node.
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }

    /// Joins the bus as a new node; returns its backplane and its inbox.
    pub fn join(&self) -> (Arc<MemoryBackplane>, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut nodes = self.nodes.write();
        let id = nodes.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
        nodes.push((id, tx));
        (
            Arc::new(MemoryBackplane {
                bus: self.clone(),
                node: id,
            }),
            rx,
        )
    }
}

/// One node's side of a [`MemoryBus`]: publishing hands each envelope to every
/// other node's inbox at once.
#[derive(Debug)]
pub struct MemoryBackplane {
    bus: MemoryBus,
    node: u64,
}

impl Backplane for MemoryBackplane {
    /// Delivered to the other nodes' inboxes at once: the receipt is ready.
    fn publish(&self, envelope: Envelope) -> Receipt {
        let mut nodes = self.bus.nodes.write();
        // A node whose inbox is gone has stopped: forget it.
        nodes.retain(|(id, tx)| *id == self.node || !tx.is_closed());
        for (id, tx) in nodes.iter() {
            if *id != self.node {
                let _ = tx.send(envelope.clone());
            }
        }
        Receipt::done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::HubKey;
    use crate::backplane::EnvelopeKind;

    fn group_add(c: &str) -> Envelope {
        Envelope::new(
            HubKey::new("t", "h"),
            EnvelopeKind::GroupAdd {
                connection: c.into(),
                group: "g".into(),
            },
        )
    }

    #[tokio::test]
    async fn reaches_other_nodes_not_itself() {
        let bus = MemoryBus::new();
        let (a, mut a_in) = bus.join();
        let (_b, mut b_in) = bus.join();
        let _ = a.publish(group_add("x"));
        let got = b_in.recv().await.expect("b receives");
        assert!(
            matches!(got.kind, EnvelopeKind::GroupAdd { ref connection, .. } if connection == "x")
        );
        assert!(a_in.try_recv().is_err(), "no echo to the sender");
    }

    #[tokio::test]
    async fn single_node_publishes_to_nobody() {
        let bus = MemoryBus::new();
        let (a, mut a_in) = bus.join();
        let _ = a.publish(group_add("x"));
        assert!(a_in.try_recv().is_err());
    }
}
