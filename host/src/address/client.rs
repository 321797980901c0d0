//! The client of a request: the address `server::client_addr` resolved
//! (the socket's peer, or what a trusted proxy reports), recorded on the
//! request for the transports, the logs and the access log.

use std::net::IpAddr;

/// The resolved address of the client of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client address recorded on a request, if the server recorded one.
pub fn of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0)
}
