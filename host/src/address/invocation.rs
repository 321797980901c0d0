//! A server-to-client invocation on its way to many connections: encoded at
//! most once per hub protocol, then shared by every recipient's queue.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::protocol::{HubMessage, Json, Protocol, ProtocolError};

/// `method(args...)` for clients; `args` is a JSON array.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutboundInvocation {
    /// The client method to call, as the client registered its handler.
    pub method: String,
    /// The arguments, as JSON array text.
    pub args: Json,
    #[serde(skip)]
    json: OnceLock<Bytes>,
    #[serde(skip)]
    messagepack: OnceLock<Bytes>,
}

impl OutboundInvocation {
    /// An invocation of `method`; `args` must be a JSON array, which is not
    /// checked here (see [`OutboundInvocation::from_json`]).
    pub fn new(method: String, args: Json) -> OutboundInvocation {
        OutboundInvocation {
            method,
            args,
            json: OnceLock::new(),
            messagepack: OnceLock::new(),
        }
    }

    /// Parses `args_json`, which must be a JSON array (what plugins send).
    pub fn from_json(method: &str, args_json: &str) -> Result<OutboundInvocation, String> {
        let args: Json = serde_json::from_str(args_json)
            .map_err(|e| format!("arguments are not valid JSON: {e}"))?;
        if !args.get().trim_start().starts_with('[') {
            return Err("arguments must be a JSON array".into());
        }
        Ok(OutboundInvocation::new(method.to_owned(), args))
    }

    /// The framed message for `protocol`, encoded on first use.
    pub fn encoded(&self, protocol: Protocol) -> Result<Bytes, ProtocolError> {
        let cell = match protocol {
            Protocol::Json => &self.json,
            Protocol::MessagePack => &self.messagepack,
        };
        if let Some(bytes) = cell.get() {
            return Ok(bytes.clone());
        }
        let message = HubMessage::invocation(None, self.method.clone(), self.args.clone());
        let mut out = Vec::with_capacity(self.method.len() + self.args.get().len() + 40);
        protocol.write_message(&message, &mut out)?;
        Ok(cell.get_or_init(|| Bytes::from(out)).clone())
    }
}
