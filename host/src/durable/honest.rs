//! The honest failure of a resume: when what the client missed is no longer
//! stored (or cannot be trusted), it is told so in SignalR's own terms, never
//! resumed with a silent gap.
//!
//! The official clients drop everything until a `Sequence` after a
//! reconnect, so the Close follows a `Sequence(1)` (which any client
//! accepts); the Close allows a reconnect, and the client starts a new
//! connection knowing it must catch up by itself.

use crate::protocol::{HubMessage, Protocol, ProtocolError};

/// The Close error of a connection that could not be resumed.
pub const UNRECOVERABLE: &str =
    "The connection could not be resumed: messages sent while it was away are no longer stored.";

/// The error Completion of an invocation that was running on a node that died.
pub const OUTCOME_UNKNOWN: &str = "Invocation outcome unknown: the server running it stopped.";

/// Counts resumes that failed honestly, by `reason`.
pub const METRIC: &str = "switchboard_resume_unrecoverable_total";

/// Why a durable connection could not be resumed; the metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecoverable {
    /// The stream dropped records the client has not seen (age or size limits).
    Retention,
    /// The stream was recreated: its sequences mean something else now.
    Recreated,
    /// The session was written under other numbering rules.
    Version,
    /// No session (never durable, expired, or unreadable).
    Missing,
    /// The connection ended already.
    Ended,
    /// The replay met a record its rules cannot explain.
    Inconsistent,
}

impl Unrecoverable {
    /// The reason as the metric's `reason` label spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unrecoverable::Retention => "retention",
            Unrecoverable::Recreated => "recreated",
            Unrecoverable::Version => "version",
            Unrecoverable::Missing => "missing",
            Unrecoverable::Ended => "ended",
            Unrecoverable::Inconsistent => "inconsistent",
        }
    }
}

/// What the partition stream holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState<'a> {
    /// Its identity (creation time).
    pub identity: &'a str,
    /// The first sequence it still holds; `last + 1` when it holds none.
    pub first: u64,
    /// The last sequence it holds (or held, when it holds none now).
    pub last: u64,
}

/// Whether a replay from the checkpoint at `cursor`, in the stream the session
/// names `identity`, finds every record after it.
pub fn check_stream(
    stream: &StreamState<'_>,
    identity: &str,
    cursor: u64,
) -> Result<(), Unrecoverable> {
    if stream.identity != identity || stream.last < cursor {
        return Err(Unrecoverable::Recreated);
    }
    if stream.first > cursor + 1 {
        return Err(Unrecoverable::Retention);
    }
    Ok(())
}

/// The frames that tell a resuming client it cannot continue: `Sequence(1)`,
/// then a Close that allows a reconnect.
pub fn goodbye(protocol: Protocol) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    protocol.write_message(&HubMessage::Sequence { sequence_id: 1 }, &mut out)?;
    protocol.write_message(
        &HubMessage::Close {
            error: Some(UNRECOVERABLE.to_owned()),
            allow_reconnect: true,
        },
        &mut out,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_must_hold_everything_after_the_checkpoint() {
        let state = |first, last| StreamState {
            identity: "t1",
            first,
            last,
        };
        assert_eq!(check_stream(&state(1, 500), "t1", 100), Ok(()));
        assert_eq!(check_stream(&state(101, 500), "t1", 100), Ok(()));
        assert_eq!(
            check_stream(&state(102, 500), "t1", 100),
            Err(Unrecoverable::Retention)
        );
        // Emptied by age, nothing new since the checkpoint: nothing missed.
        assert_eq!(check_stream(&state(101, 100), "t1", 100), Ok(()));
        assert_eq!(
            check_stream(&state(1, 50), "t1", 100),
            Err(Unrecoverable::Recreated)
        );
        assert_eq!(
            check_stream(&state(1, 500), "t2", 100),
            Err(Unrecoverable::Recreated)
        );
    }

    #[test]
    fn the_goodbye_is_a_sequence_then_a_close_that_allows_a_reconnect() {
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let bytes = goodbye(protocol).expect("encodes");
            let mut buf = bytes::BytesMut::from(&bytes[..]);
            let mut messages = Vec::new();
            protocol
                .parse_messages(&mut buf, 1 << 20, &mut messages)
                .expect("parses");
            assert_eq!(messages.len(), 2, "{protocol:?}");
            assert!(matches!(
                messages[0],
                HubMessage::Sequence { sequence_id: 1 }
            ));
            match &messages[1] {
                HubMessage::Close {
                    error,
                    allow_reconnect,
                } => {
                    assert_eq!(error.as_deref(), Some(UNRECOVERABLE));
                    assert!(allow_reconnect);
                }
                other => panic!("a Close expected, got {other:?}"),
            }
        }
    }
}
