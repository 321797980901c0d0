//! Questions only the other nodes can answer, over core NATS request/reply
//! (an answer is worth nothing later, so not JetStream). Connections and
//! users are in the registry; group memberships change too often to write
//! there, so "does this group have a member anywhere" is asked instead.
//!
//! Every node listens on `{prefix}.ask.group`. A node holding a member of the
//! group answers; the others stay silent, so the first answer is a yes and
//! a no costs [`ASK_TIMEOUT`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

use super::Shared;
use crate::router::{HubKey, Router};

/// How long a question waits for a node that holds a member.
pub const ASK_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("the cluster cannot be asked: {0}")]
    Unavailable(String),
}

fn subject(shared: &Shared) -> String {
    format!("{}.ask.group", shared.names.prefix())
}

fn encode(hub: &HubKey, group: &str) -> Option<Bytes> {
    rmp_serde::to_vec(&(&hub.tenant, &hub.hub, group))
        .ok()
        .map(Bytes::from)
}

/// Answers other nodes' questions until the backplane stops.
pub(super) async fn answer(shared: Arc<Shared>, router: Weak<Router>) {
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
        let Some(router) = router.upgrade() else {
            return;
        };
        let Some(reply) = question.reply else {
            continue;
        };
        let Ok((tenant, hub, group)) =
            rmp_serde::from_slice::<(String, String, String)>(&question.payload)
        else {
            debug!("undecodable group question ignored");
            continue;
        };
        if router.has_local_group(&HubKey::new(&tenant, &hub), &group)
            && let Err(e) = shared.client.publish(reply, Bytes::from_static(b"1")).await
        {
            debug!(error = %e, "cannot answer a group question");
        }
    }
}

/// Whether another node holds a member of `group`.
pub(super) async fn group_elsewhere(
    shared: &Shared,
    hub: &HubKey,
    group: &str,
) -> Result<bool, PresenceError> {
    if !shared.is_connected() {
        return Err(PresenceError::Unavailable("not connected to NATS".into()));
    }
    let Some(payload) = encode(hub, group) else {
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
