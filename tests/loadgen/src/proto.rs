//! The three wire protocols the load generator speaks, reduced to what the scenarios need:
//! a handshake, a fire-and-forget `send(name, message)`, an `echo(value)` with an answer, and a
//! cheap test for "this frame holds the answer to my echo".
//!
//! - SignalR JSON: records end with 0x1E, text frames.
//! - SignalR MessagePack: VarInt length prefix, binary frames, handshake still JSON + 0x1E.
//! - Engine.IO v4 + Socket.IO v5 over WebSocket: `0{..}` open, `40` connect, `42[..]` events,
//!   `43<id>[..]` acks, `2`/`3` ping/pong.

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// Record separator of the SignalR JSON protocol.
pub const RS: u8 = 0x1e;

/// Which protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// SignalR JSON hub protocol (also what the floor server speaks).
    Json,
    /// SignalR MessagePack hub protocol.
    Msgpack,
    /// Socket.IO v5 over Engine.IO v4, WebSocket transport only.
    Socketio,
}

impl Proto {
    /// Name used in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Json => "signalr-json",
            Proto::Msgpack => "signalr-msgpack",
            Proto::Socketio => "socketio",
        }
    }

    /// WebSocket URL for a base URL given on the command line.
    ///
    /// `http://host:port/hubs/demo/chat` becomes `ws://host:port/hubs/demo/chat`; for Socket.IO
    /// a URL without a path gets `/socket.io/?EIO=4&transport=websocket`.
    pub fn ws_url(self, base: &str) -> String {
        let url = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if base.starts_with("ws://") {
            base.to_string()
        } else {
            format!("ws://{base}")
        };
        if self == Proto::Socketio {
            let after_scheme = &url["ws://".len()..];
            if !after_scheme.contains('/') || after_scheme.ends_with('/') {
                let trimmed = url.trim_end_matches('/');
                return format!("{trimmed}/socket.io/?EIO=4&transport=websocket");
            }
        }
        url
    }

    /// The first frame the client sends (Socket.IO sends `40` only after the open packet).
    pub fn handshake(self) -> Option<Message> {
        match self {
            Proto::Json => Some(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}")),
            Proto::Msgpack => Some(Message::binary(
                &b"{\"protocol\":\"messagepack\",\"version\":1}\x1e"[..],
            )),
            Proto::Socketio => None,
        }
    }

    /// A non-blocking `send(name, message)` invocation.
    pub fn send(self, name: &str, message: &str) -> Message {
        match self {
            Proto::Json => Message::text(format!(
                "{{\"type\":1,\"target\":\"send\",\"arguments\":[{},{}]}}\u{1e}",
                json_str(name),
                json_str(message)
            )),
            Proto::Msgpack => {
                let mut body = Vec::with_capacity(message.len() + 32);
                // [1, {}, nil, "send", [name, message], []]
                write_array_len(&mut body, 6);
                rmp::encode::write_uint(&mut body, 1).ok();
                rmp::encode::write_map_len(&mut body, 0).ok();
                rmp::encode::write_nil(&mut body).ok();
                rmp::encode::write_str(&mut body, "send").ok();
                write_array_len(&mut body, 2);
                rmp::encode::write_str(&mut body, name).ok();
                rmp::encode::write_str(&mut body, message).ok();
                write_array_len(&mut body, 0);
                Message::binary(varint_frame(&body))
            }
            Proto::Socketio => Message::text(format!(
                "42[\"send\",{},{}]",
                json_str(name),
                json_str(message)
            )),
        }
    }

    /// An `echo(value)` invocation with id `id`; `value_json` is the value as JSON.
    pub fn echo(self, id: u64, value_json: &str) -> Result<Message> {
        Ok(match self {
            Proto::Json => Message::text(format!(
                "{{\"type\":1,\"invocationId\":\"{id}\",\"target\":\"echo\",\"arguments\":[{value_json}]}}\u{1e}"
            )),
            Proto::Msgpack => {
                let value: serde_json::Value = serde_json::from_str(value_json)?;
                let mut body = Vec::with_capacity(64);
                // [1, {}, "id", "echo", [value], []]
                write_array_len(&mut body, 6);
                rmp::encode::write_uint(&mut body, 1).ok();
                rmp::encode::write_map_len(&mut body, 0).ok();
                rmp::encode::write_str(&mut body, &id.to_string()).ok();
                rmp::encode::write_str(&mut body, "echo").ok();
                write_array_len(&mut body, 1);
                rmpv::encode::write_value(&mut body, &json_to_rmpv(&value))?;
                write_array_len(&mut body, 0);
                Message::binary(varint_frame(&body))
            }
            Proto::Socketio => Message::text(format!("42{id}[\"echo\",{value_json}]")),
        })
    }

    /// Whether a frame holds a Completion (SignalR) or an ack (Socket.IO).
    pub fn is_completion(self, frame: &[u8]) -> bool {
        match self {
            Proto::Json => contains(frame, b"\"type\":3"),
            Proto::Msgpack => {
                let mut rest = frame;
                while let Some((len, used)) = read_varint(rest) {
                    let body = rest.get(used..used + len).unwrap_or(&[]);
                    // fixarray header, then the message type
                    if body.len() >= 2 && body[0] & 0xf0 == 0x90 && body[1] == 3 {
                        return true;
                    }
                    rest = rest.get(used + len..).unwrap_or(&[]);
                }
                false
            }
            Proto::Socketio => frame.starts_with(b"43"),
        }
    }

    /// The answer a control frame needs (Engine.IO ping `2` wants pong `3`), if any.
    pub fn control_reply(self, frame: &[u8]) -> Option<Message> {
        (self == Proto::Socketio && frame == b"2").then(|| Message::text("3"))
    }
}

/// Payload bytes of a data frame (text or binary); `None` for control frames.
pub fn frame_bytes(msg: &Message) -> Option<&[u8]> {
    match msg {
        Message::Text(t) => Some(t.as_bytes()),
        Message::Binary(b) => Some(b.as_ref()),
        _ => None,
    }
}

/// Checks that a handshake answer is a success; returns what followed it in the same frame.
pub fn check_signalr_handshake(frame: &[u8]) -> Result<&[u8]> {
    let end = frame
        .iter()
        .position(|&b| b == RS)
        .context("handshake answer without 0x1E")?;
    let answer = &frame[..end];
    if answer != b"{}" {
        bail!(
            "handshake refused: {}",
            String::from_utf8_lossy(answer).into_owned()
        );
    }
    Ok(&frame[end + 1..])
}

fn write_array_len(buf: &mut Vec<u8>, len: u32) {
    rmp::encode::write_array_len(buf, len).ok();
}

/// Prefixes a MessagePack body with its VarInt length.
pub fn varint_frame(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 5);
    let mut len = body.len();
    loop {
        let mut byte = (len & 0x7f) as u8;
        len >>= 7;
        if len != 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// Reads a VarInt length; returns (length, bytes used).
pub fn read_varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for (i, &b) in buf.iter().take(5).enumerate() {
        len |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Some((len, i + 1));
        }
    }
    None
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn json_to_rmpv(v: &serde_json::Value) -> rmpv::Value {
    use serde_json::Value as J;
    match v {
        J::Null => rmpv::Value::Nil,
        J::Bool(b) => rmpv::Value::Boolean(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => rmpv::Value::from(i),
            (None, Some(f)) => rmpv::Value::F64(f),
            _ => rmpv::Value::Nil,
        },
        J::String(s) => rmpv::Value::from(s.as_str()),
        J::Array(a) => rmpv::Value::Array(a.iter().map(json_to_rmpv).collect()),
        J::Object(o) => rmpv::Value::Map(
            o.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), json_to_rmpv(v)))
                .collect(),
        ),
    }
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Proto::Json.ws_url("http://127.0.0.1:1/hubs/demo/chat"),
            "ws://127.0.0.1:1/hubs/demo/chat"
        );
        assert_eq!(
            Proto::Socketio.ws_url("http://127.0.0.1:1"),
            "ws://127.0.0.1:1/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn msgpack_send_is_framed() {
        let msg = Proto::Msgpack.send("pub", "hello");
        let bytes = frame_bytes(&msg).unwrap_or_default();
        let (len, used) = read_varint(bytes).unwrap_or((0, 0));
        assert_eq!(len + used, bytes.len());
        assert_eq!(bytes[used], 0x96);
    }

    #[test]
    fn completions() {
        assert!(Proto::Json.is_completion(b"{\"type\":3,\"invocationId\":\"1\",\"result\":1}\x1e"));
        assert!(!Proto::Json.is_completion(b"{\"type\":6}\x1e"));
        assert!(Proto::Msgpack.is_completion(&[0x05, 0x95, 0x03, 0x80, 0xa1, b'1']));
        assert!(Proto::Socketio.is_completion(b"431[{}]"));
    }
}
