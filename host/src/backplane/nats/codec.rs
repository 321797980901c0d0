//! Envelopes on the wire: MessagePack (rmp-serde, structs as arrays). The
//! hub is in the subject, so the payload carries only the kind; a send's
//! arguments travel as their JSON text, copied, never re-encoded.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::address::{HubKey, OutboundInvocation, Target};
use crate::backplane::{Envelope, EnvelopeKind, Received};

/// Why an envelope could not be turned into a stream message's payload, or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// MessagePack could not encode the envelope.
    #[error("cannot encode envelope: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The payload does not decode as an envelope.
    #[error("cannot decode envelope: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// A decoded send's arguments are not valid JSON text.
    #[error("envelope arguments are not JSON: {0}")]
    Args(#[from] serde_json::Error),
}

#[derive(Serialize)]
enum Out<'a> {
    Send {
        target: &'a Target,
        method: &'a str,
        args: &'a str,
    },
    GroupAdd {
        connection: &'a str,
        group: &'a str,
    },
    GroupRemove {
        connection: &'a str,
        group: &'a str,
    },
    Close {
        connection: &'a str,
        reason: Option<&'a str>,
    },
    UserGroupAdd {
        user: &'a str,
        group: &'a str,
    },
    UserGroupRemove {
        user: &'a str,
        group: &'a str,
    },
    Direct {
        connection: &'a str,
        epoch: u64,
        record: Bin<'a>,
        completes: Option<&'a str>,
        /// `(up_to, opens)` of a carried receipt.
        received: Option<(u64, &'a [String])>,
    },
    CloseMany {
        target: &'a Target,
        except: &'a [String],
        reason: Option<&'a str>,
    },
    LeaveAllGroups {
        connection: &'a str,
    },
    UserLeaveAllGroups {
        user: &'a str,
    },
    Claim {
        connection: &'a str,
        epoch: u64,
    },
    Receipt {
        connection: &'a str,
        epoch: u64,
        up_to: u64,
        opens: &'a [String],
    },
}

/// Bytes as MessagePack `bin` (serde's default for a slice is an array).
struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Owned bytes read from MessagePack `bin`.
struct BinBuf(Vec<u8>);

impl<'de> Deserialize<'de> for BinBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<BinBuf, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BinBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<BinBuf, E> {
                Ok(BinBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<BinBuf, E> {
                Ok(BinBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

#[derive(Deserialize)]
enum In {
    Send {
        target: Target,
        method: String,
        args: String,
    },
    GroupAdd {
        connection: String,
        group: String,
    },
    GroupRemove {
        connection: String,
        group: String,
    },
    Close {
        connection: String,
        reason: Option<String>,
    },
    UserGroupAdd {
        user: String,
        group: String,
    },
    UserGroupRemove {
        user: String,
        group: String,
    },
    Direct {
        connection: String,
        epoch: u64,
        record: BinBuf,
        #[serde(default)]
        completes: Option<String>,
        #[serde(default)]
        received: Option<(u64, Vec<String>)>,
    },
    CloseMany {
        target: Target,
        except: Vec<String>,
        reason: Option<String>,
    },
    LeaveAllGroups {
        connection: String,
    },
    UserLeaveAllGroups {
        user: String,
    },
    Claim {
        connection: String,
        epoch: u64,
    },
    Receipt {
        connection: String,
        epoch: u64,
        up_to: u64,
        opens: Vec<String>,
    },
}

/// The payload of an envelope (its hub goes in the subject).
pub(super) fn encode(kind: &EnvelopeKind) -> Result<Vec<u8>, CodecError> {
    let out = match kind {
        EnvelopeKind::Send { target, message } => Out::Send {
            target,
            method: &message.method,
            args: message.args.get(),
        },
        EnvelopeKind::GroupAdd { connection, group } => Out::GroupAdd { connection, group },
        EnvelopeKind::GroupRemove { connection, group } => Out::GroupRemove { connection, group },
        EnvelopeKind::Close { connection, reason } => Out::Close {
            connection,
            reason: reason.as_deref(),
        },
        EnvelopeKind::UserGroupAdd { user, group } => Out::UserGroupAdd { user, group },
        EnvelopeKind::UserGroupRemove { user, group } => Out::UserGroupRemove { user, group },
        EnvelopeKind::Direct {
            connection,
            epoch,
            record,
            completes,
            received,
        } => Out::Direct {
            connection,
            epoch: *epoch,
            record: Bin(record),
            completes: completes.as_deref(),
            received: received.as_ref().map(|r| (r.up_to, r.opens.as_slice())),
        },
        EnvelopeKind::CloseMany {
            target,
            except,
            reason,
        } => Out::CloseMany {
            target,
            except,
            reason: reason.as_deref(),
        },
        EnvelopeKind::LeaveAllGroups { connection } => Out::LeaveAllGroups { connection },
        EnvelopeKind::UserLeaveAllGroups { user } => Out::UserLeaveAllGroups { user },
        EnvelopeKind::Claim { connection, epoch } => Out::Claim {
            connection,
            epoch: *epoch,
        },
        EnvelopeKind::Receipt {
            connection,
            epoch,
            up_to,
            opens,
        } => Out::Receipt {
            connection,
            epoch: *epoch,
            up_to: *up_to,
            opens,
        },
    };
    Ok(rmp_serde::to_vec(&out)?)
}

/// The envelope a payload for `hub` holds (without its cursor).
pub(super) fn decode(hub: HubKey, payload: &[u8]) -> Result<Envelope, CodecError> {
    let kind = match rmp_serde::from_slice::<In>(payload)? {
        In::Send {
            target,
            method,
            args,
        } => {
            let args = RawValue::from_string(args)?;
            EnvelopeKind::Send {
                target,
                message: Arc::new(OutboundInvocation::new(method, args)),
            }
        }
        In::GroupAdd { connection, group } => EnvelopeKind::GroupAdd { connection, group },
        In::GroupRemove { connection, group } => EnvelopeKind::GroupRemove { connection, group },
        In::Close { connection, reason } => EnvelopeKind::Close { connection, reason },
        In::UserGroupAdd { user, group } => EnvelopeKind::UserGroupAdd { user, group },
        In::UserGroupRemove { user, group } => EnvelopeKind::UserGroupRemove { user, group },
        In::Direct {
            connection,
            epoch,
            record,
            completes,
            received,
        } => EnvelopeKind::Direct {
            connection,
            epoch,
            record: bytes::Bytes::from(record.0),
            completes,
            received: received.map(|(up_to, opens)| Received { up_to, opens }),
        },
        In::CloseMany {
            target,
            except,
            reason,
        } => EnvelopeKind::CloseMany {
            target,
            except,
            reason,
        },
        In::LeaveAllGroups { connection } => EnvelopeKind::LeaveAllGroups { connection },
        In::UserLeaveAllGroups { user } => EnvelopeKind::UserLeaveAllGroups { user },
        In::Claim { connection, epoch } => EnvelopeKind::Claim { connection, epoch },
        In::Receipt {
            connection,
            epoch,
            up_to,
            opens,
        } => EnvelopeKind::Receipt {
            connection,
            epoch,
            up_to,
            opens,
        },
    };
    Ok(Envelope::new(hub, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let hub = HubKey::new("t", "h");
        let message =
            Arc::new(OutboundInvocation::from_json("m", r#"[1,"two",{"3":[4]}]"#).expect("args"));
        let kinds = [
            EnvelopeKind::Send {
                target: Target::Groups {
                    groups: vec!["g.*>".into(), "ü".into()],
                    except: vec!["c1".into()],
                },
                message: message.clone(),
            },
            EnvelopeKind::Send {
                target: Target::All { except: vec![] },
                message,
            },
            EnvelopeKind::GroupAdd {
                connection: "c".into(),
                group: "g".into(),
            },
            EnvelopeKind::GroupRemove {
                connection: "c".into(),
                group: "x".repeat(1024),
            },
            EnvelopeKind::Close {
                connection: "c".into(),
                reason: Some("maintenance".into()),
            },
            EnvelopeKind::Close {
                connection: "c".into(),
                reason: None,
            },
            EnvelopeKind::UserGroupAdd {
                user: "ü".into(),
                group: "g".into(),
            },
            EnvelopeKind::UserGroupRemove {
                user: "u".into(),
                group: "g".into(),
            },
            EnvelopeKind::Direct {
                connection: "c".into(),
                epoch: 7,
                record: bytes::Bytes::from_static(b"\x00\xff{\"type\":3}\x1e"),
                completes: None,
                received: None,
            },
            EnvelopeKind::Direct {
                connection: "c".into(),
                epoch: 2,
                record: bytes::Bytes::from_static(b"{}\x1e"),
                completes: Some("17".into()),
                received: Some(Received {
                    up_to: 9,
                    opens: vec!["17".into(), "18".into()],
                }),
            },
            EnvelopeKind::Receipt {
                connection: "c".into(),
                epoch: 3,
                up_to: 42,
                opens: vec!["1".into(), "ü".into()],
            },
            EnvelopeKind::Claim {
                connection: "c".into(),
                epoch: 4,
            },
            EnvelopeKind::CloseMany {
                target: Target::Groups {
                    groups: vec!["g".into()],
                    except: vec![],
                },
                except: vec!["c1".into(), "c2".into()],
                reason: Some("maintenance".into()),
            },
            EnvelopeKind::CloseMany {
                target: Target::All { except: vec![] },
                except: vec![],
                reason: None,
            },
            EnvelopeKind::LeaveAllGroups {
                connection: "c".into(),
            },
            EnvelopeKind::UserLeaveAllGroups { user: "ü".into() },
        ];
        for kind in kinds {
            let bytes = encode(&kind).expect("encode");
            let back = decode(hub.clone(), &bytes).expect("decode");
            assert_eq!(back.hub, hub);
            assert_eq!(format!("{:?}", back.kind), format!("{kind:?}"));
        }
    }

    #[test]
    fn rejects_garbage() {
        let hub = HubKey::new("t", "h");
        assert!(decode(hub.clone(), b"\xc1\xff").is_err());
        let bad = rmp_serde::to_vec(&Out::Send {
            target: &Target::Users(vec![]),
            method: "m",
            args: "[not json",
        })
        .expect("encode");
        assert!(matches!(decode(hub, &bad), Err(CodecError::Args(_))));
    }
}
