//! The client's address: the socket's peer, or, when that peer is a trusted
//! proxy (`trusted_proxies`), the address the proxy reports in `Forwarded`
//! (RFC 7239) or, without one, `X-Forwarded-For`.
//!
//! The hops are read from the right (the one the nearest proxy added) while
//! the address reached so far is trusted, as ASP.NET Core's
//! `ForwardedHeadersMiddleware` does with its `KnownProxies`/`KnownNetworks`:
//! a client cannot choose its address by sending the header itself, since
//! what it sent is only reached through proxies that are trusted. A hop that
//! is not an address (`unknown`, an obfuscated `_name`) ends the walk at the
//! last address known.
//!
//! [`layer`] records the result on every request as a [`ClientAddr`]
//! extension (beside axum's `ConnectInfo` with the socket's peer), for the
//! transports, the logs and the access log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::address::client::ClientAddr;
use crate::config::proxies::TrustedProxies;
use crate::node::Node;

/// At most this many hops of a header are looked at.
const MAX_HOPS: usize = 32;

/// The client of a request that came from `peer` with `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut current = peer.to_canonical();
    if !trusted.contains(current) {
        return current;
    }
    let hops = if headers.contains_key("forwarded") {
        header_hops(headers, "forwarded", forwarded_for)
    } else {
        header_hops(headers, "x-forwarded-for", |hop| Some(hop.trim()))
    };
    for hop in hops.iter().rev() {
        match hop {
            Some(addr) => current = *addr,
            None => break,
        }
        if !trusted.contains(current) {
            break;
        }
    }
    current
}

/// The hops of every `name` header, in order (at most the last [`MAX_HOPS`]):
/// each an address, or None for one that is not (`unknown`, `_hidden`).
fn header_hops(
    headers: &HeaderMap,
    name: &str,
    node_of: impl Fn(&str) -> Option<&str>,
) -> Vec<Option<IpAddr>> {
    let mut hops: Vec<Option<IpAddr>> = headers
        .get_all(name)
        .iter()
        .flat_map(|value| {
            let text = value.to_str().unwrap_or("unknown");
            text.split(',').map(|hop| node_of(hop).and_then(parse_node))
        })
        .collect();
    if hops.len() > MAX_HOPS {
        hops.drain(..hops.len() - MAX_HOPS);
    }
    hops
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address from a node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(addr.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let bracketed = node.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// Records the request's [`ClientAddr`], when the server gave it the socket's peer.
pub async fn layer(State(node): State<Arc<Node>>, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let trusted = &node.live_config().trusted_proxies;
        let client = resolve(peer.ip(), request.headers(), trusted);
        request.extensions_mut().insert(ClientAddr(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::try_from(nets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header value"));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn parses_cidrs_and_bare_addresses() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.7", "::1", "fd00::/8"]);
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("::1")));
        assert!(t.contains(ip("fd12::5")));
        assert!(
            t.contains(ip("::ffff:10.0.0.1")),
            "v4-mapped v6 is the v4 address"
        );
        let err = TrustedProxies::try_from(vec!["10.0.0.0/33".to_owned()]).expect_err("bad");
        assert!(err.contains("'10.0.0.0/33'"), "{err}");
        assert!(TrustedProxies::try_from(vec!["proxy.local".to_owned()]).is_err());
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let t = trusted(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(resolve(ip("198.51.100.4"), &h, &t), ip("198.51.100.4"));
        assert_eq!(
            resolve(ip("198.51.100.4"), &h, &TrustedProxies::default()),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client spoofs a first hop; the trusted proxy appends the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("203.0.113.9"));
        // Several headers count as one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9:5555"),
        ]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("203.0.113.9"));
        // Every hop trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.2")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(
            resolve(ip("127.0.0.1"), &HeaderMap::new(), &t),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let t = trusted(&["127.0.0.1/32"]);
        let h = headers(&[
            (
                "forwarded",
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711""#,
            ),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "For=\"192.0.2.60:80\"")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("192.0.2.60"));
    }

    #[test]
    fn a_hop_that_is_not_an_address_ends_the_walk() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        let h = headers(&[("forwarded", "for=203.0.113.9, for=unknown, for=10.0.0.3")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("10.0.0.3"));
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("127.0.0.1"));
    }
}
