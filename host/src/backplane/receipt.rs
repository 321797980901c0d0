//! What a publish promises: a [`Receipt`] resolves once the cluster stored
//! the envelope, or with the reason it never will be. A receipt that is
//! ready at once (the memory backplane, a refusal) costs no allocation, so
//! single-node runs pay nothing for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

/// Why an envelope did not reach the cluster. The sender is told, so that
/// nothing is reported as sent and then lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The partition's publish queue holds `nats.publish_queue` envelopes or
    /// `nats.queue_max_bytes` bytes already.
    #[error(
        "the cluster's publish queue is full ({envelopes} of at most {max_envelopes} messages, {queued} of at most {max} bytes waiting for NATS); try again later"
    )]
    QueueFull {
        /// Envelopes waiting in the queue.
        envelopes: usize,
        /// The queue's envelope limit, `nats.publish_queue`.
        max_envelopes: usize,
        /// Bytes waiting in the queue.
        queued: usize,
        /// The queue's byte limit, `nats.queue_max_bytes`.
        max: usize,
    },
    /// Queued longer than `nats.queue_max_age_ms` (the limit, in ms) without NATS
    /// storing it, or its receipt waited that long.
    #[error(
        "NATS did not store the message within {0} ms (the cluster's messaging is unavailable)"
    )]
    Expired(u64),
    /// NATS had been disconnected longer than `nats.queue_max_age_ms` (the limit,
    /// in ms) when the envelope was published.
    #[error("the cluster's messaging (NATS) has been unavailable for more than {0} ms")]
    Unavailable(u64),
    /// The envelope could not be encoded (the encoder's reason).
    #[error("the message cannot be encoded for the cluster: {0}")]
    Encode(String),
    /// The node is shutting down: its publisher stopped before the envelope was stored.
    #[error("the node is shutting down; the message was not stored")]
    Stopped,
    /// Written for a durable connection that another node has claimed
    /// since: JetStream refused it (see [`super::Fence`]).
    #[error("another node took the connection over; the message was not stored")]
    Fenced,
}

/// The outcome of one publish, ready now or later.
#[derive(Debug)]
#[must_use = "a receipt says whether other nodes will get the envelope"]
pub struct Receipt(State);

#[derive(Debug)]
enum State {
    Ready(Result<(), PublishError>),
    Pending {
        outcome: oneshot::Receiver<Result<(), PublishError>>,
        /// A backstop: the publisher settles every receipt before this.
        deadline: Instant,
        max_wait: Duration,
    },
}

/// Where a publisher settles a pending receipt.
pub(super) type Settle = oneshot::Sender<Result<(), PublishError>>;

impl Receipt {
    /// Nothing to wait for: stored, or nobody else to reach.
    pub fn done() -> Receipt {
        Receipt(State::Ready(Ok(())))
    }

    /// Refused at once.
    pub fn refused(error: PublishError) -> Receipt {
        Receipt(State::Ready(Err(error)))
    }

    /// Settled later through the returned sender, at the latest after `max_wait`.
    pub fn pending(max_wait: Duration) -> (Receipt, Settle) {
        let (tx, rx) = oneshot::channel();
        let receipt = Receipt(State::Pending {
            outcome: rx,
            deadline: Instant::now() + max_wait,
            max_wait,
        });
        (receipt, tx)
    }

    /// The outcome if it is known without waiting.
    pub fn ready(&self) -> Option<&Result<(), PublishError>> {
        match &self.0 {
            State::Ready(outcome) => Some(outcome),
            State::Pending { .. } => None,
        }
    }

    /// Waits for the outcome (bounded by the receipt's deadline).
    pub async fn wait(self) -> Result<(), PublishError> {
        match self.0 {
            State::Ready(outcome) => outcome,
            State::Pending {
                outcome,
                deadline,
                max_wait,
            } => match tokio::time::timeout_at(deadline, outcome).await {
                Ok(Ok(outcome)) => outcome,
                // The publisher is gone: the node is stopping.
                Ok(Err(_)) => Err(PublishError::Stopped),
                Err(_) => Err(PublishError::Expired(max_wait.as_millis() as u64)),
            },
        }
    }
}

/// The receipts of everything one call sent (a hub invocation), awaited
/// before the call reports success. Only pending receipts are kept.
#[derive(Debug, Clone, Default)]
pub struct Receipts(Arc<parking_lot::Mutex<Collected>>);

#[derive(Debug, Default)]
struct Collected {
    pending: Vec<Receipt>,
    refused: Option<PublishError>,
}

impl Receipts {
    /// A collector of its own (clones share it).
    pub fn new() -> Receipts {
        Receipts::default()
    }

    /// Adds one publish's receipt: kept if pending, its refusal noted if refused.
    pub fn push(&self, receipt: Receipt) {
        match receipt.ready() {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                let mut collected = self.0.lock();
                if collected.refused.is_none() {
                    collected.refused = Some(e.clone());
                }
            }
            None => self.0.lock().pending.push(receipt),
        }
    }

    /// Waits for every receipt pushed so far; the first refusal, if any.
    pub async fn settle(&self) -> Result<(), PublishError> {
        let (pending, refused) = {
            let mut collected = self.0.lock();
            (
                std::mem::take(&mut collected.pending),
                collected.refused.take(),
            )
        };
        let mut first = refused;
        for receipt in pending {
            if let Err(e) = receipt.wait().await
                && first.is_none()
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_receipts_need_no_wait() {
        assert_eq!(Receipt::done().wait().await, Ok(()));
        let refused = Receipt::refused(PublishError::Stopped);
        assert_eq!(refused.ready(), Some(&Err(PublishError::Stopped)));
    }

    #[tokio::test]
    async fn a_pending_receipt_resolves_when_settled() {
        let (receipt, settle) = Receipt::pending(Duration::from_secs(5));
        assert!(receipt.ready().is_none());
        settle.send(Ok(())).expect("receiver alive");
        assert_eq!(receipt.wait().await, Ok(()));
    }

    #[tokio::test]
    async fn an_unsettled_receipt_expires_at_its_deadline() {
        let (receipt, _settle) = Receipt::pending(Duration::from_millis(30));
        assert_eq!(receipt.wait().await, Err(PublishError::Expired(30)));
    }

    #[tokio::test]
    async fn a_dropped_publisher_means_stopped() {
        let (receipt, settle) = Receipt::pending(Duration::from_secs(5));
        drop(settle);
        assert_eq!(receipt.wait().await, Err(PublishError::Stopped));
    }

    #[tokio::test]
    async fn receipts_report_the_first_refusal_after_waiting_for_all() {
        let receipts = Receipts::new();
        receipts.push(Receipt::done());
        let (a, settle_a) = Receipt::pending(Duration::from_secs(5));
        let (b, settle_b) = Receipt::pending(Duration::from_secs(5));
        receipts.push(a);
        receipts.push(b);
        settle_a.send(Ok(())).expect("alive");
        settle_b
            .send(Err(PublishError::Expired(10)))
            .expect("alive");
        assert_eq!(receipts.settle().await, Err(PublishError::Expired(10)));
        assert_eq!(receipts.settle().await, Ok(()), "settled receipts are gone");
        receipts.push(Receipt::refused(PublishError::Stopped));
        assert_eq!(receipts.settle().await, Err(PublishError::Stopped));
    }
}
