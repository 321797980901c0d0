//! Encoding a [`HubMessage`] as one MessagePack body, laid out as ASP.NET's
//! `MessagePackHubProtocolWorker` writes it:
//! - Invocation / StreamInvocation: `[type, headers, id|nil, target, [args], [streamIds]]`, always
//!   6 items (an empty streamIds array when there are none; nil for a missing or empty id);
//! - StreamItem `[2, headers, id, item]`; Cancel `[5, headers, id]`;
//! - Completion `[3, headers, id, 2]` for void, `[3, headers, id, 1, error]`, `[3, headers, id, 3,
//!   result]`;
//! - Ping exactly `[6]` (`0x91 0x06`); Close `[7, error|nil, allowReconnect]`;
//!   Ack `[8, seq]`, Sequence `[9, seq]`.
//!
//! JSON values (arguments, items, results) are converted with [`json_to_msgpack`].

use super::super::{CallRef, CompletionOutcome, Headers, HubMessage, ProtocolError, message_type};
use super::encode::{write_array_len, write_bool, write_map_len, write_nil, write_str, write_uint};
use super::from_json::json_to_msgpack;
use super::read::{ERROR_RESULT, NON_VOID_RESULT, VOID_RESULT};

/// Appends the body for `msg` (without the length prefix). On error, `out` may hold a partial
/// body; [`super::write_message`] truncates it.
pub fn write_body(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    if let Some(call) = msg.as_call() {
        return write_call(out, &call);
    }
    match msg {
        HubMessage::Invocation { .. } | HubMessage::StreamInvocation { .. } => {
            unreachable!("written as a call above")
        }
        HubMessage::StreamItem {
            invocation_id,
            item,
            headers,
        } => {
            begin(out, 4, message_type::STREAM_ITEM)?;
            write_headers(out, headers)?;
            write_str(out, invocation_id)?;
            json_to_msgpack(item, out)
        }
        HubMessage::Completion {
            invocation_id,
            outcome,
            headers,
        } => {
            let items = if matches!(outcome, CompletionOutcome::Void) {
                4
            } else {
                5
            };
            begin(out, items, message_type::COMPLETION)?;
            write_headers(out, headers)?;
            write_str(out, invocation_id)?;
            match outcome {
                CompletionOutcome::Void => {
                    write_uint(out, u64::from(VOID_RESULT));
                    Ok(())
                }
                CompletionOutcome::Error(error) => {
                    write_uint(out, u64::from(ERROR_RESULT));
                    write_str(out, error)
                }
                CompletionOutcome::Result(result) => {
                    write_uint(out, u64::from(NON_VOID_RESULT));
                    json_to_msgpack(result, out)
                }
            }
        }
        HubMessage::CancelInvocation {
            invocation_id,
            headers,
        } => {
            begin(out, 3, message_type::CANCEL_INVOCATION)?;
            write_headers(out, headers)?;
            write_str(out, invocation_id)
        }
        HubMessage::Ping => begin(out, 1, message_type::PING),
        HubMessage::Close {
            error,
            allow_reconnect,
        } => {
            begin(out, 3, message_type::CLOSE)?;
            match error {
                Some(error) => write_str(out, error)?,
                None => write_nil(out),
            }
            write_bool(out, *allow_reconnect);
            Ok(())
        }
        HubMessage::Ack { sequence_id } => {
            begin(out, 2, message_type::ACK)?;
            write_uint(out, *sequence_id);
            Ok(())
        }
        HubMessage::Sequence { sequence_id } => {
            begin(out, 2, message_type::SEQUENCE)?;
            write_uint(out, *sequence_id);
            Ok(())
        }
    }
}

/// The array header and the type number.
fn begin(out: &mut Vec<u8>, items: usize, kind: u8) -> Result<(), ProtocolError> {
    write_array_len(out, items)?;
    write_uint(out, u64::from(kind));
    Ok(())
}

fn write_call(out: &mut Vec<u8>, call: &CallRef<'_>) -> Result<(), ProtocolError> {
    if !call.arguments.get().starts_with('[') {
        return Err(ProtocolError::invalid(
            "Invocation arguments must be a JSON array.",
        ));
    }
    begin(out, 6, call.kind)?;
    write_headers(out, call.headers)?;
    match call.wire_id() {
        Some(id) => write_str(out, id)?,
        None => write_nil(out),
    }
    write_str(out, call.target)?;
    json_to_msgpack(call.arguments, out)?;
    write_array_len(out, call.stream_ids.len())?;
    for id in call.stream_ids {
        write_str(out, id)?;
    }
    Ok(())
}

fn write_headers(out: &mut Vec<u8>, headers: &Headers) -> Result<(), ProtocolError> {
    write_map_len(out, headers.len())?;
    for (name, value) in headers {
        write_str(out, name)?;
        write_str(out, value)?;
    }
    Ok(())
}
