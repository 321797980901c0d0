//! The negotiate response body and the `negotiateVersion` rules (TransportProtocols.md).
//!
//! Field names as ASP.NET's NegotiateProtocol writes them. Version 0 has no `connectionToken`
//! (old clients put the `connectionId` in `id=`), `useStatefulReconnect` appears only when true,
//! and there is never a `ProtocolVersion` field (clients would take the server for ASP.NET
//! SignalR 2.x and abort).

use super::escape::{push_json_string, push_u64};

#[cfg(test)]
mod tests;

/// The highest negotiate version the server speaks.
pub const MAX_NEGOTIATE_VERSION: u32 = 1;

/// One entry of `availableTransports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportInfo {
    /// `"WebSockets"`, `"ServerSentEvents"` or `"LongPolling"`.
    pub transport: &'static str,
    /// `"Text"` and/or `"Binary"`.
    pub transfer_formats: &'static [&'static str],
}

impl TransportInfo {
    /// WebSockets carries both formats (text frames for JSON, binary for MessagePack).
    pub const WEB_SOCKETS: TransportInfo = TransportInfo {
        transport: "WebSockets",
        transfer_formats: &["Text", "Binary"],
    };
    /// SSE is text only, so MessagePack never uses it.
    pub const SERVER_SENT_EVENTS: TransportInfo = TransportInfo {
        transport: "ServerSentEvents",
        transfer_formats: &["Text"],
    };
    /// Long polling carries both formats.
    pub const LONG_POLLING: TransportInfo = TransportInfo {
        transport: "LongPolling",
        transfer_formats: &["Text", "Binary"],
    };
}

/// The JSON body of a successful negotiate. `transports` are listed in the given order, which
/// is the order the JS client tries them in (ASP.NET: WebSockets, ServerSentEvents,
/// LongPolling).
pub fn negotiate_response(
    version: u32,
    connection_id: &str,
    connection_token: &str,
    transports: &[TransportInfo],
    use_stateful_reconnect: bool,
) -> String {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"negotiateVersion\":");
    push_u64(&mut out, u64::from(version));
    out.extend_from_slice(b",\"connectionId\":");
    push_json_string(&mut out, connection_id);
    if version > 0 {
        out.extend_from_slice(b",\"connectionToken\":");
        push_json_string(&mut out, connection_token);
    }
    out.extend_from_slice(b",\"availableTransports\":[");
    for (i, transport) in transports.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"transport\":");
        push_json_string(&mut out, transport.transport);
        out.extend_from_slice(b",\"transferFormats\":[");
        for (j, format) in transport.transfer_formats.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            push_json_string(&mut out, format);
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    if use_stateful_reconnect {
        out.extend_from_slice(b",\"useStatefulReconnect\":true");
    }
    out.push(b'}');
    text(out)
}

/// A refusal: `{"error":"..."}`, sent with status 200; the client fails with exactly that text.
pub fn negotiate_error(msg: &str) -> String {
    let mut out = Vec::with_capacity(msg.len() + 12);
    out.extend_from_slice(b"{\"error\":");
    push_json_string(&mut out, msg);
    out.push(b'}');
    text(out)
}

/// The body as text: it is UTF-8 by construction (ASCII, `&str` pieces and serde_json's output).
fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The version to answer with, from the `negotiateVersion` query value.
///
/// Absent means 0; a value that is not an integer (`int.TryParse` rules: optional sign and
/// surrounding whitespace, 32-bit range) or is negative is an error with ASP.NET's text; above
/// [`MAX_NEGOTIATE_VERSION`] it is lowered to it.
pub fn parse_negotiate_version(query_value: Option<&str>) -> Result<u32, String> {
    let Some(text) = query_value else {
        return Ok(0);
    };
    let Ok(requested) = text.trim().parse::<i32>() else {
        return Err(format!(
            "The client requested an invalid protocol version '{text}'"
        ));
    };
    let Ok(requested) = u32::try_from(requested) else {
        return Err(format!(
            "The client requested version '{requested}', but the server does not support this version."
        ));
    };
    Ok(requested.min(MAX_NEGOTIATE_VERSION))
}
