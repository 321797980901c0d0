//! Encoding a [`HubMessage`] as one JSON object, written straight into the output buffer.
//!
//! [`Json`](super::super::Json) values are copied verbatim; strings go through the shared escaper
//! (byte-identical to serde_json). What is written, per HubProtocol.md:
//! - Invocation always carries `"arguments"`; `invocationId` only when set and non-empty (an
//!   empty id means non-blocking, as in ASP.NET); `streamIds` and `headers` only when non-empty.
//! - Completion carries `result` or `error`, never both, and neither for `Void`.
//! - Ping is exactly `{"type":6}`; Close is `{"type":7}` plus `error` when set and
//!   `"allowReconnect":true` only when true; Ack/Sequence are `{"type":8,"sequenceId":N}`.

use super::super::escape::{push_json_string, push_u64};
use super::super::{CallRef, CompletionOutcome, Headers, HubMessage, ProtocolError, marked};

/// Appends the JSON object for `msg` (without the 0x1E) to `out`. On error, `out` may hold a
/// partial object; [`super::write_message`] truncates it.
pub fn write_record(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
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
            out.extend_from_slice(b"{\"type\":2");
            write_invocation_id(out, invocation_id);
            out.extend_from_slice(b",\"item\":");
            marked::push_json(out, item.get());
            write_headers(out, headers);
            out.push(b'}');
        }
        HubMessage::Completion {
            invocation_id,
            outcome,
            headers,
        } => {
            out.extend_from_slice(b"{\"type\":3");
            write_invocation_id(out, invocation_id);
            match outcome {
                CompletionOutcome::Void => {}
                CompletionOutcome::Result(result) => {
                    out.extend_from_slice(b",\"result\":");
                    marked::push_json(out, result.get());
                }
                CompletionOutcome::Error(error) => {
                    out.extend_from_slice(b",\"error\":");
                    push_json_string(out, error);
                }
            }
            write_headers(out, headers);
            out.push(b'}');
        }
        HubMessage::CancelInvocation {
            invocation_id,
            headers,
        } => {
            out.extend_from_slice(b"{\"type\":5");
            write_invocation_id(out, invocation_id);
            write_headers(out, headers);
            out.push(b'}');
        }
        HubMessage::Ping => out.extend_from_slice(b"{\"type\":6}"),
        HubMessage::Close {
            error,
            allow_reconnect,
        } => {
            out.extend_from_slice(b"{\"type\":7");
            if let Some(error) = error {
                out.extend_from_slice(b",\"error\":");
                push_json_string(out, error);
            }
            if *allow_reconnect {
                out.extend_from_slice(b",\"allowReconnect\":true");
            }
            out.push(b'}');
        }
        HubMessage::Ack { sequence_id } => write_sequence(out, 8, *sequence_id),
        HubMessage::Sequence { sequence_id } => write_sequence(out, 9, *sequence_id),
    }
    Ok(())
}

/// Invocation (1) and StreamInvocation (4).
fn write_call(out: &mut Vec<u8>, call: &CallRef<'_>) -> Result<(), ProtocolError> {
    let CallRef {
        kind,
        target,
        arguments,
        stream_ids,
        headers,
        ..
    } = *call;
    if !arguments.get().starts_with('[') {
        return Err(ProtocolError::invalid(
            "Invocation arguments must be a JSON array.",
        ));
    }
    out.extend_from_slice(b"{\"type\":");
    push_u64(out, u64::from(kind));
    if let Some(id) = call.wire_id() {
        write_invocation_id(out, id);
    }
    out.extend_from_slice(b",\"target\":");
    push_json_string(out, target);
    out.extend_from_slice(b",\"arguments\":");
    marked::push_json(out, arguments.get());
    if !stream_ids.is_empty() {
        out.extend_from_slice(b",\"streamIds\":[");
        push_separated(out, stream_ids, |out, id| push_json_string(out, id));
        out.push(b']');
    }
    write_headers(out, headers);
    out.push(b'}');
    Ok(())
}

fn write_invocation_id(out: &mut Vec<u8>, id: &str) {
    out.extend_from_slice(b",\"invocationId\":");
    push_json_string(out, id);
}

fn write_headers(out: &mut Vec<u8>, headers: &Headers) {
    if headers.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"headers\":{");
    push_separated(out, headers, |out, (name, value)| {
        push_json_string(out, name);
        out.push(b':');
        push_json_string(out, value);
    });
    out.push(b'}');
}

/// Writes each of `items` with `push`, comma-separated.
fn push_separated<T>(out: &mut Vec<u8>, items: &[T], mut push: impl FnMut(&mut Vec<u8>, &T)) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push(out, item);
    }
}

fn write_sequence(out: &mut Vec<u8>, kind: u8, sequence_id: u64) {
    out.extend_from_slice(b"{\"type\":");
    push_u64(out, u64::from(kind));
    out.extend_from_slice(b",\"sequenceId\":");
    push_u64(out, sequence_id);
    out.push(b'}');
}
