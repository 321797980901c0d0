//! Questions only the other nodes can answer, over core NATS request/reply
//! (an answer is worth nothing later, so not JetStream). Connections and
//! users are in the registry; group memberships change too often to write
//! there, so "does this group have a member anywhere" is asked instead.
//!
//! Every node listens on `{prefix}.ask.group`. The question names a group
//! and, optionally, a user ("is one of this user's connections in it"). A
//! node holding such a member answers; the others stay silent, so the first
//! answer is a yes and a no costs [`ASK_TIMEOUT`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

use super::Shared;
use crate::address::HubKey;
use crate::backplane::LocalIndex;

/// How long a question waits for a node that holds a member.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(300);

/// Why another node could not be asked whether it holds a group member.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// This node is not connected to NATS, or the request failed (the reason).
    #[error("the cluster cannot be asked: {0}")]
    Unavailable(String),
}

fn subject(shared: &Shared) -> String {
    format!("{}.ask.group", shared.names.prefix())
}

/// A question: `[tenant, hub, group]` or `[tenant, hub, group, user]`.
fn encode(hub: &HubKey, group: &str, user: Option<&str>) -> Option<Bytes> {
    let mut question = vec![&*hub.tenant, &*hub.hub, group];
    question.extend(user);
    rmp_serde::to_vec(&question).ok().map(Bytes::from)
}

/// Whether this node can say yes to a question.
fn holds(local: &dyn LocalIndex, question: &[u8]) -> Option<bool> {
    let fields = rmp_serde::from_slice::<Vec<String>>(question).ok()?;
    match fields.as_slice() {
        [tenant, hub, group] => Some(local.has_group(&HubKey::new(tenant, hub), group)),
        [tenant, hub, group, user] => {
            Some(local.has_user_in_group(&HubKey::new(tenant, hub), user, group))
        }
        _ => None,
    }
}

/// Answers other nodes' questions until the backplane stops.
pub(super) async fn answer(shared: Arc<Shared>, local: Weak<dyn LocalIndex>) {
    let mut questions = match shared.client.subscribe(subject(&shared)).await {
        Ok(subscriber) => subscriber,
        Err(e) => {
            warn!(error = %e, "cannot answer the cluster's group questions");
            return;
        }
    };
    loop {
        let question = tokio::select! {
            () = shared.cancel.cancelled() => return,
            question = questions.next() => question,
        };
        let Some(question) = question else { return };
        let Some(index) = local.upgrade() else {
            return;
        };
        let Some(reply) = question.reply else {
            continue;
        };
        let Some(yes) = holds(&*index, &question.payload) else {
            debug!("undecodable group question ignored");
            continue;
        };
        if yes && let Err(e) = shared.client.publish(reply, Bytes::from_static(b"1")).await {
            debug!(error = %e, "cannot answer a group question");
        }
    }
}

/// Whether another node holds a member of `group` (one of `user`'s
/// connections, when a user is named).
pub(super) async fn group_elsewhere(
    shared: &Shared,
    hub: &HubKey,
    group: &str,
    user: Option<&str>,
) -> Result<bool, PresenceError> {
    if !shared.is_connected() {
        return Err(PresenceError::Unavailable("not connected to NATS".into()));
    }
    let Some(payload) = encode(hub, group, user) else {
        return Err(PresenceError::Unavailable(
            "cannot encode the question".into(),
        ));
    };
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(ASK_TIMEOUT));
    match shared.client.send_request(subject(shared), request).await {
        Ok(_) => Ok(true),
        Err(e) => match e.kind() {
            async_nats::RequestErrorKind::TimedOut | async_nats::RequestErrorKind::NoResponders => {
                Ok(false)
            }
            _ => Err(PresenceError::Unavailable(e.to_string())),
        },
    }
}
