//! A durable connection's session: what a node needs to take it over, kept in
//! the cluster's KV under a hash of the reconnect token (never the token).
//! Ownership is its `owner` and `epoch`, changed only by a compare-and-set of
//! the entry (the KV revision read), so of two nodes claiming at once exactly
//! one wins; no clock or TTL decides it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Mark;
use super::honest::Unrecoverable;

/// The numbering rules' version: a session written under other rules is not
/// resumed (the ids could differ), it fails honestly.
pub const VERSION: u32 = 2;

/// Most bytes of an encoded session (the request info is capped already):
/// the sessions bucket's own bound on an entry.
pub use crate::backplane::nats::durable::MAX_SESSION_BYTES;

/// One durable connection's session entry, MessagePack-encoded (named fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The numbering rules it was written under; [`VERSION`] when this node wrote it.
    pub version: u32,
    /// The connection's id.
    pub connection: String,
    /// The tenant the connection belongs to.
    pub tenant: String,
    /// The hub within that tenant.
    pub hub: String,
    /// The user the connection authenticated as (None: anonymous); a resume by
    /// another user is refused as an unknown connection.
    pub user: Option<String>,
    /// The hub protocol's name ("json", "messagepack").
    pub protocol: String,
    /// The node serving the connection, and the epoch of its claim.
    pub owner: String,
    /// The epoch of the owner's claim: one more with each takeover.
    pub epoch: u64,
    /// The identity of the partition stream the cursors are in (its creation
    /// time): a recreated stream numbers from 1 again.
    pub stream: String,
    /// Where a node taking over replays from.
    pub checkpoint: Checkpoint,
    /// The connection ended: a late resume is refused.
    pub ended: bool,
    /// What plugins see of the request that opened the connection.
    #[serde(default)]
    pub request: SessionRequest,
    /// The connection's items (SignalR's `Context.Items`) as last stored,
    /// at most [`MAX_ITEMS_BYTES`] of keys and values; an item is stored
    /// before the plugin that set it goes on, so before any Completion of
    /// its invocation.
    #[serde(default)]
    pub items: Vec<(String, String)>,
}

/// The request info of a session: query and header pairs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The query string's pairs.
    pub query: Vec<(String, String)>,
    /// The request headers the connection keeps for plugins.
    pub headers: Vec<(String, String)>,
}

/// Most bytes of keys and values the items of a durable connection may
/// hold: they travel in its session, whose size is bounded.
pub const MAX_ITEMS_BYTES: usize = 16 * 1024;

/// The bytes of keys and values of `items`.
pub fn items_bytes<'a>(items: impl IntoIterator<Item = (&'a String, &'a String)>) -> usize {
    items.into_iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Where a taker starts: the connection's state after `cursor`, whose last
/// record (`id`) the client has acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The id of the last record delivered up to `cursor`, acknowledged by the client.
    pub id: u64,
    /// The stream sequence of the last record applied.
    pub cursor: u64,
    /// The owner's epoch at `cursor`.
    pub epoch: u64,
    /// The client's highest sequence id stored in a receipt.
    pub inbound: u64,
    /// The groups the connection was in.
    pub groups: Vec<String>,
    /// Client invocations stored but not completed.
    pub open: Vec<String>,
}

impl From<&Mark> for Checkpoint {
    fn from(mark: &Mark) -> Checkpoint {
        Checkpoint {
            id: mark.id,
            cursor: mark.cursor,
            epoch: mark.epoch,
            inbound: mark.inbound,
            groups: mark.groups.iter().cloned().collect(),
            open: mark.open.iter().cloned().collect(),
        }
    }
}

impl Checkpoint {
    /// The checkpoint as a [`Mark`] a [`Track`](super::Track) resumes from.
    pub fn to_mark(&self) -> Mark {
        Mark {
            id: self.id,
            cursor: self.cursor,
            epoch: self.epoch,
            inbound: self.inbound,
            groups: std::sync::Arc::new(self.groups.iter().cloned().collect()),
            open: std::sync::Arc::new(self.open.iter().cloned().collect()),
        }
    }
}

/// Why a session could not be written or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// The encoded session is larger than [`MAX_SESSION_BYTES`] (its size).
    #[error("the session is {0} bytes, more than {MAX_SESSION_BYTES}")]
    TooLarge(usize),
    /// The bytes are not a session (or a session could not be encoded).
    #[error("the session cannot be read: {0}")]
    Malformed(String),
    /// Written under another numbering version (carried) than [`VERSION`].
    #[error("the session was written under numbering version {0}, this node uses {VERSION}")]
    Version(u32),
}

impl SessionError {
    /// Why a resume of this session fails.
    pub fn unrecoverable(&self) -> Unrecoverable {
        match self {
            SessionError::Version(_) => Unrecoverable::Version,
            SessionError::TooLarge(_) | SessionError::Malformed(_) => Unrecoverable::Missing,
        }
    }
}

/// The KV key of the session a reconnect token resumes: base64url of its
/// SHA-256, so neither the key nor the entry lets anyone resume.
pub fn key(token: &str) -> String {
    use base64::Engine as _;
    let digest = Sha256::digest(token.as_bytes());
    format!(
        "s.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// The session as its KV entry's bytes: MessagePack with named fields, at most
/// [`MAX_SESSION_BYTES`].
pub fn encode(session: &Session) -> Result<Vec<u8>, SessionError> {
    let bytes =
        rmp_serde::to_vec_named(session).map_err(|e| SessionError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_SESSION_BYTES {
        return Err(SessionError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// A session from its KV entry's bytes; one of another [`VERSION`] is refused
/// before the rest is read.
pub fn decode(bytes: &[u8]) -> Result<Session, SessionError> {
    if bytes.len() > MAX_SESSION_BYTES {
        return Err(SessionError::TooLarge(bytes.len()));
    }
    /// Only the version first: a later version may have changed the rest.
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned =
        rmp_serde::from_slice(bytes).map_err(|e| SessionError::Malformed(e.to_string()))?;
    if versioned.version != VERSION {
        return Err(SessionError::Version(versioned.version));
    }
    rmp_serde::from_slice(bytes).map_err(|e| SessionError::Malformed(e.to_string()))
}

/// What a node does with a resuming request for a durable connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// This node owns it: resume on the live connection, as without durability.
    Local,
    /// Another node owns it and answers: forward the request there.
    Forward {
        /// The owner's node id.
        owner: String,
    },
    /// Its owner is gone: claim it with this epoch (compare-and-set against
    /// the revision read), then replay from the checkpoint.
    Claim {
        /// The session's epoch plus one.
        epoch: u64,
    },
    /// The request's user is not the connection's: refused as an unknown
    /// connection, telling nothing about it.
    NotFound,
    /// It cannot be resumed: the client is told so.
    Fail(Unrecoverable),
}

/// Decides a resume from the session read (None: no entry), this node's id,
/// the request's user and whether the owner answered.
pub fn decide(
    session: Result<Option<&Session>, &SessionError>,
    me: &str,
    user: Option<&str>,
    owner_answers: bool,
) -> Resume {
    let session = match session {
        Ok(Some(session)) => session,
        Ok(None) => return Resume::Fail(Unrecoverable::Missing),
        Err(e) => return Resume::Fail(e.unrecoverable()),
    };
    if session.user.as_deref() != user {
        return Resume::NotFound;
    }
    if session.ended {
        return Resume::Fail(Unrecoverable::Ended);
    }
    if session.owner == me {
        Resume::Local
    } else if owner_answers {
        Resume::Forward {
            owner: session.owner.clone(),
        }
    } else {
        Resume::Claim {
            epoch: session.epoch + 1,
        }
    }
}

impl Session {
    /// The session as this node's claim with `epoch` writes it.
    pub fn claimed(&self, me: &str, epoch: u64) -> Session {
        Session {
            owner: me.to_owned(),
            epoch,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            version: VERSION,
            connection: "c1".into(),
            tenant: "demo".into(),
            hub: "chat".into(),
            user: Some("ann".into()),
            protocol: "json".into(),
            owner: "node-a".into(),
            epoch: 3,
            stream: "2026-12-06T04:00:00Z".into(),
            checkpoint: Checkpoint {
                id: 7,
                cursor: 120,
                epoch: 3,
                inbound: 4,
                groups: vec!["g".into()],
                open: vec!["2".into()],
            },
            ended: false,
            request: SessionRequest {
                query: vec![("room".into(), "7".into())],
                headers: vec![("user-agent".into(), "test".into())],
            },
            items: vec![("nick".into(), "ann".into())],
        }
    }

    #[test]
    fn a_session_without_request_or_items_still_decodes() {
        /// A session as nodes wrote it before request info and items.
        #[derive(Serialize)]
        struct Older {
            version: u32,
            connection: String,
            tenant: String,
            hub: String,
            user: Option<String>,
            protocol: String,
            owner: String,
            epoch: u64,
            stream: String,
            checkpoint: Checkpoint,
            ended: bool,
        }
        let s = session();
        let older = Older {
            version: VERSION,
            connection: s.connection.clone(),
            tenant: s.tenant.clone(),
            hub: s.hub.clone(),
            user: s.user.clone(),
            protocol: s.protocol.clone(),
            owner: s.owner.clone(),
            epoch: s.epoch,
            stream: s.stream.clone(),
            checkpoint: s.checkpoint.clone(),
            ended: false,
        };
        let bytes = rmp_serde::to_vec_named(&older).expect("encodes");
        let back = decode(&bytes).expect("decodes");
        assert!(back.items.is_empty() && back.request == SessionRequest::default());
        assert_eq!(back.checkpoint, s.checkpoint);
    }

    #[test]
    fn a_session_survives_encoding_and_its_checkpoint_its_mark() {
        let s = session();
        let back = decode(&encode(&s).expect("encodes")).expect("decodes");
        assert_eq!(back, s);
        assert_eq!(Checkpoint::from(&s.checkpoint.to_mark()), s.checkpoint);
    }

    #[test]
    fn another_version_or_garbage_is_refused_with_its_reason() {
        let mut s = session();
        s.version = VERSION + 1;
        let bytes = encode(&s).expect("encodes");
        assert_eq!(decode(&bytes), Err(SessionError::Version(VERSION + 1)));
        assert_eq!(
            SessionError::Version(2).unrecoverable(),
            Unrecoverable::Version
        );
        assert!(matches!(decode(b"\xc1"), Err(SessionError::Malformed(_))));
        let big = vec![0u8; MAX_SESSION_BYTES + 1];
        assert_eq!(
            decode(&big),
            Err(SessionError::TooLarge(MAX_SESSION_BYTES + 1))
        );
    }

    /// Each part of a session is bounded so that the whole always fits:
    /// a full membership, full items and a full request info still encode.
    #[test]
    fn a_session_at_every_bound_still_fits() {
        let mut s = session();
        let group = |i: usize| format!("{i:04}{}", "g".repeat(1020));
        s.checkpoint.groups = (0..super::super::MAX_GROUPS_BYTES / 1024)
            .map(group)
            .collect();
        let item = |i: usize| (format!("{i:03}"), "v".repeat(1021));
        s.items = (0..MAX_ITEMS_BYTES / 1024).map(item).collect();
        let half = crate::outbound::REQUEST_INFO_BYTES / 2;
        s.request = SessionRequest {
            query: vec![("q".into(), "q".repeat(half - 1))],
            headers: vec![("h".into(), "h".repeat(half - 1))],
        };
        s.checkpoint.open = (0..200).map(|i| i.to_string()).collect();
        let bytes = encode(&s).expect("fits");
        assert!(bytes.len() <= MAX_SESSION_BYTES, "{}", bytes.len());
        assert_eq!(decode(&bytes).expect("decodes"), s);
    }

    #[test]
    fn the_key_hides_the_token_and_is_a_valid_kv_key() {
        let k = key("secret-token.node1");
        assert!(!k.contains("secret"));
        assert_eq!(k, key("secret-token.node1"));
        assert_ne!(k, key("secret-token.node2"));
        assert!(
            k.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        );
    }

    #[test]
    fn a_resume_goes_to_the_owner_or_claims_the_next_epoch() {
        let s = session();
        let ann = Some("ann");
        assert_eq!(decide(Ok(Some(&s)), "node-a", ann, true), Resume::Local);
        assert_eq!(
            decide(Ok(Some(&s)), "node-b", ann, true),
            Resume::Forward {
                owner: "node-a".into()
            }
        );
        assert_eq!(
            decide(Ok(Some(&s)), "node-b", ann, false),
            Resume::Claim { epoch: 4 }
        );
        assert_eq!(
            decide(Ok(Some(&s)), "node-b", Some("bob"), false),
            Resume::NotFound
        );
        assert_eq!(
            decide(Ok(Some(&s)), "node-b", None, false),
            Resume::NotFound
        );
        let ended = Session {
            ended: true,
            ..s.clone()
        };
        assert_eq!(
            decide(Ok(Some(&ended)), "node-b", ann, false),
            Resume::Fail(Unrecoverable::Ended)
        );
        assert_eq!(
            decide(Ok(None), "node-b", ann, false),
            Resume::Fail(Unrecoverable::Missing)
        );
        assert_eq!(
            decide(Err(&SessionError::Version(9)), "node-b", ann, false),
            Resume::Fail(Unrecoverable::Version)
        );
        let claimed = s.claimed("node-b", 4);
        assert_eq!((claimed.owner.as_str(), claimed.epoch), ("node-b", 4));
        assert_eq!(claimed.checkpoint, s.checkpoint);
    }
}
