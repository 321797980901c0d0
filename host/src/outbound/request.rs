//! What plugins may read of the request that opened a connection: the
//! query, the tenant's allowed cookies and headers, packed and bounded.

/// What plugins may read of the request that opened a connection.
///
/// Every live connection keeps one, so it is packed: all names and values
/// back to back in one string, rather than two allocations per header (about
/// 1 KiB of every idle connection, measured with the idle bench). And it is
/// bounded: at most [`REQUEST_INFO_BYTES`] of names and values, whatever the
/// request carried (a request head may be 64 KiB); pairs that do not fit in
/// what is left are dropped (a plugin finds them absent), in the order query
/// parameters, the tenant's allowed cookies, then its allowed headers.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    text: Box<str>,
    /// Where each pair's name and value end in `text`: query pairs first,
    /// then cookies, then headers.
    ends: Box<[(u32, u32)]>,
    queries: usize,
    /// Cookie pairs after the query pairs (at most [`MAX_REQUEST_ITEMS`]).
    cookies: u16,
    /// The transport that carries the connection, once one does.
    transport: Option<TransportKind>,
    /// The client's address (see `server::client_addr`), when known.
    client_addr: Option<std::net::IpAddr>,
}

/// Which transport carries a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// A WebSocket.
    WebSockets,
    /// Server-Sent Events down, HTTP POSTs up.
    ServerSentEvents,
    /// HTTP long polling: a GET per batch down, POSTs up.
    LongPolling,
}

impl TransportKind {
    /// The name ASP.NET gives it (`HttpTransportType`), as plugins see it.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::WebSockets => "WebSockets",
            TransportKind::ServerSentEvents => "ServerSentEvents",
            TransportKind::LongPolling => "LongPolling",
        }
    }
}

/// Which headers and cookies of a request a tenant's plugins may see
/// (`plugin_headers`, `plugin_cookies` of its config).
#[derive(Debug, Clone, Copy)]
pub struct Visible<'a> {
    /// Allowed header names (any case); none: every header but credentials.
    pub headers: Option<&'a [String]>,
    /// Allowed cookie names (exact).
    pub cookies: &'a [String],
}

impl Visible<'_> {
    /// Every header but credentials, and no cookie (a tenant that sets neither).
    pub const DEFAULT: Visible<'static> = Visible {
        headers: None,
        cookies: &[],
    };

    /// What `config` lets its plugins see.
    pub fn of(config: &crate::config::TenantConfig) -> Visible<'_> {
        Visible {
            headers: config.plugin_headers.as_deref(),
            cookies: &config.plugin_cookies,
        }
    }

    fn header(&self, name: &str) -> bool {
        !HIDDEN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
            && self
                .headers
                .is_none_or(|allowed| allowed.iter().any(|a| a.eq_ignore_ascii_case(name)))
    }
}

/// Headers never shown to plugins: they carry credentials.
const HIDDEN_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];
/// Query parameters never shown to plugins.
const HIDDEN_QUERY: &[&str] = &["access_token", "id"];
const MAX_REQUEST_ITEMS: usize = 64;
/// Bytes of names and values a connection keeps of its request.
pub const REQUEST_INFO_BYTES: usize = 4096;
/// The header name under which a stored session keeps the allowed cookies
/// (one `name=value` pair each); never a header plugins see.
const STORED_COOKIE: &str = "cookie";

/// The `name=value` pairs of `Cookie` header values (RFC 6265 5.4: separated
/// by `;`); values keep any quotes they were sent with.
fn cookie_pairs<'a>(
    values: impl Iterator<Item = &'a str>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    values
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| !k.is_empty())
}

impl RequestInfo {
    /// With the client's address (for logs; see `server::client_addr`).
    pub fn with_client_addr(mut self, addr: Option<std::net::IpAddr>) -> RequestInfo {
        self.client_addr = addr;
        self
    }

    /// The client's address, when the request that opened the connection had one.
    pub fn client_addr(&self) -> Option<std::net::IpAddr> {
        self.client_addr
    }

    /// Notes the transport that carries the connection.
    pub fn set_transport(&mut self, transport: TransportKind) {
        self.transport = Some(transport);
    }

    /// The transport that carries the connection; none before one does.
    pub fn transport(&self) -> Option<TransportKind> {
        self.transport
    }

    /// The query, cookies and headers of `request` that `visible` allows,
    /// never credentials; header names lowercased.
    pub fn capture(
        query: &[(String, String)],
        headers: &axum::http::HeaderMap,
        visible: Visible<'_>,
    ) -> RequestInfo {
        let query = query
            .iter()
            .filter(|(k, _)| !HIDDEN_QUERY.iter().any(|h| k.eq_ignore_ascii_case(h)))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let cookies = cookie_pairs(
            headers
                .get_all(axum::http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
        .filter(|(k, _)| visible.cookies.iter().any(|c| c == k));
        let headers = headers
            .iter()
            .filter(|(name, _)| visible.header(name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        RequestInfo::new(query, cookies, headers)
    }

    /// Request info kept elsewhere as its query and header pairs (a durable
    /// connection's session, written with [`RequestInfo::stored_headers`]),
    /// bounded as when captured.
    pub fn from_pairs(query: &[(String, String)], headers: &[(String, String)]) -> RequestInfo {
        fn pair((k, v): &(String, String)) -> (&str, &str) {
            (k.as_str(), v.as_str())
        }
        let cookies = headers
            .iter()
            .filter(|(k, _)| k == STORED_COOKIE)
            .filter_map(|(_, v)| v.split_once('='));
        let headers = headers.iter().filter(|(k, _)| k != STORED_COOKIE).map(pair);
        RequestInfo::new(query.iter().map(pair), cookies, headers)
    }

    fn new<'a>(
        mut query: impl Iterator<Item = (&'a str, &'a str)>,
        mut cookies: impl Iterator<Item = (&'a str, &'a str)>,
        mut headers: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> RequestInfo {
        let mut text = String::new();
        let mut ends = Vec::new();
        let mut dropped = 0usize;
        let mut push = |pairs: &mut dyn Iterator<Item = (&'a str, &'a str)>| {
            let mut count = 0;
            for (name, value) in pairs {
                if ends.len() == MAX_REQUEST_ITEMS
                    || text.len() + name.len() + value.len() > REQUEST_INFO_BYTES
                {
                    dropped += 1;
                    continue;
                }
                text.push_str(name);
                let name_end = text.len();
                text.push_str(value);
                // At most REQUEST_INFO_BYTES: far below u32::MAX.
                ends.push((name_end as u32, text.len() as u32));
                count += 1;
            }
            count
        };
        let queries = push(&mut query);
        let cookies = push(&mut cookies);
        push(&mut headers);
        if dropped > 0 {
            tracing::debug!(
                dropped,
                budget = REQUEST_INFO_BYTES,
                "request pairs over the byte budget plugins may see were dropped"
            );
        }
        RequestInfo {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            queries,
            // At most MAX_REQUEST_ITEMS.
            cookies: cookies as u16,
            transport: None,
            client_addr: None,
        }
    }

    /// The query parameters, in order, without `id` and `access_token`.
    pub fn query(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().take(self.queries)
    }

    /// The allowed cookies, in order.
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs()
            .skip(self.queries)
            .take(usize::from(self.cookies))
    }

    /// The allowed headers, names lowercased, never credentials.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().skip(self.queries + usize::from(self.cookies))
    }

    /// The first allowed header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first allowed cookie named `name` (exactly).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The headers and cookies as a session stores them: the headers, then
    /// each cookie as a `cookie: name=value` pair ([`RequestInfo::from_pairs`]
    /// reads them back as cookies).
    pub fn stored_headers(&self) -> impl Iterator<Item = (String, String)> {
        self.headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain(
                self.cookies()
                    .map(|(k, v)| (STORED_COOKIE.to_owned(), format!("{k}={v}"))),
            )
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let name = self.text.get(start..name_end).unwrap_or_default();
            let value = self.text.get(name_end..value_end).unwrap_or_default();
            start = value_end;
            (name, value)
        })
    }
}

impl RequestInfo {
    /// Bytes this holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.text.len() + std::mem::size_of_val(&*self.ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's headers, in order (a repeated name is appended).
    fn headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().expect("header value"));
        }
        headers
    }

    /// A request's query pairs, in order.
    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn capture_hides_credentials() {
        let headers = headers(&[
            ("authorization", "Bearer secret"),
            ("cookie", "s=1"),
            ("user-agent", "test"),
        ]);
        let query = query(&[
            ("access_token", "secret"),
            ("id", "token"),
            ("room", "blue"),
        ]);
        let info = RequestInfo::capture(&query, &headers, Visible::DEFAULT);
        assert_eq!(info.query().collect::<Vec<_>>(), vec![("room", "blue")]);
        assert_eq!(
            info.headers().collect::<Vec<_>>(),
            vec![("user-agent", "test")]
        );
        assert_eq!(info.header("User-Agent"), Some("test"));
        assert_eq!(info.header("authorization"), None);
        assert_eq!(info.header("cookie"), None);
    }

    #[test]
    fn a_fixed_byte_budget_whatever_the_request_carries() {
        // 60 headers of 4 KB, as a hostile negotiate may send: a few KiB are kept.
        let mut headers = axum::http::HeaderMap::new();
        let big = "v".repeat(4000);
        for i in 0..60 {
            headers.insert(
                axum::http::HeaderName::from_bytes(format!("x-big-{i}").as_bytes()).expect("name"),
                big.parse().expect("value"),
            );
        }
        headers.insert("user-agent", "test".parse().expect("h"));
        let query: Vec<(String, String)> = (0..200)
            .map(|i| (format!("q{i}"), "x".repeat(30)))
            .collect();
        let info = RequestInfo::capture(&query, &headers, Visible::DEFAULT);
        let kept: usize = info
            .query()
            .chain(info.headers())
            .map(|(k, v)| k.len() + v.len())
            .sum();
        assert!(kept <= REQUEST_INFO_BYTES, "{kept}");
        assert!(info.query().count() + info.headers().count() <= MAX_REQUEST_ITEMS);
        assert!(info.text.len() + info.ends.len() * 8 <= REQUEST_INFO_BYTES + 512);
        // A pair too big for what is left does not keep out the small ones after it.
        let query = vec![("q".to_owned(), "1".to_owned())];
        let info = RequestInfo::capture(&query, &headers, Visible::DEFAULT);
        assert_eq!(info.header("user-agent"), Some("test"));
        assert_eq!(info.query().collect::<Vec<_>>(), vec![("q", "1")]);
        assert_eq!(
            info.headers().count(),
            2,
            "one big header fits, then the small one"
        );
    }

    #[test]
    fn packed_pairs_keep_their_order_and_empty_values() {
        let headers = headers(&[("x-a", "1"), ("x-empty", ""), ("x-b", "22")]);
        let query = query(&[("a", ""), ("b", "2"), ("a", "3")]);
        let info = RequestInfo::capture(&query, &headers, Visible::DEFAULT);
        assert_eq!(
            info.query().collect::<Vec<_>>(),
            vec![("a", ""), ("b", "2"), ("a", "3")]
        );
        assert_eq!(
            info.headers().collect::<Vec<_>>(),
            vec![("x-a", "1"), ("x-empty", ""), ("x-b", "22")]
        );
        assert_eq!(info.header("X-B"), Some("22"));
        assert_eq!(RequestInfo::default().query().count(), 0);
    }

    fn request_with_cookies() -> axum::http::HeaderMap {
        headers(&[
            ("x-allowed", "yes"),
            ("x-other", "no"),
            ("authorization", "Bearer secret"),
            ("cookie", "theme=dark; session=s3cret"),
            // HTTP/2 clients may split cookies over several headers.
            ("cookie", "lang=en"),
        ])
    }

    #[test]
    fn only_the_tenants_headers_and_cookies_are_kept() {
        let allowed_headers = vec!["X-Allowed".to_owned(), "Authorization".to_owned()];
        let cookies = vec!["theme".to_owned(), "lang".to_owned()];
        let visible = Visible {
            headers: Some(&allowed_headers),
            cookies: &cookies,
        };
        let info = RequestInfo::capture(&[], &request_with_cookies(), visible);
        assert_eq!(
            info.headers().collect::<Vec<_>>(),
            vec![("x-allowed", "yes")],
            "listed headers only, never credentials"
        );
        assert_eq!(
            info.cookies().collect::<Vec<_>>(),
            vec![("theme", "dark"), ("lang", "en")]
        );
        assert_eq!(info.cookie("session"), None);
        assert_eq!(info.cookie("Theme"), None, "cookie names are exact");
        assert_eq!(info.header("cookie"), None);

        let info = RequestInfo::capture(&[], &request_with_cookies(), Visible::DEFAULT);
        assert_eq!(info.cookies().count(), 0, "no cookie unless listed");
        assert_eq!(
            info.headers().collect::<Vec<_>>(),
            vec![("x-allowed", "yes"), ("x-other", "no")]
        );
    }

    #[test]
    fn a_stored_session_keeps_cookies_apart_from_headers() {
        let cookies = vec!["theme".to_owned()];
        let visible = Visible {
            headers: None,
            cookies: &cookies,
        };
        let mut info =
            RequestInfo::capture(&query(&[("room", "1")]), &request_with_cookies(), visible);
        info.set_transport(TransportKind::ServerSentEvents);
        assert_eq!(info.transport(), Some(TransportKind::ServerSentEvents));
        let query: Vec<(String, String)> = info
            .query()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let headers: Vec<(String, String)> = info.stored_headers().collect();
        let back = RequestInfo::from_pairs(&query, &headers);
        assert_eq!(back.query().collect::<Vec<_>>(), vec![("room", "1")]);
        assert_eq!(back.cookie("theme"), Some("dark"));
        assert_eq!(back.header("cookie"), None);
        assert_eq!(
            back.headers().collect::<Vec<_>>(),
            info.headers().collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_allowed_cookie_over_the_budget_is_dropped() {
        let big = format!("big={}; small=1", "v".repeat(REQUEST_INFO_BYTES));
        let headers = headers(&[("cookie", &big)]);
        let cookies = vec!["big".to_owned(), "small".to_owned()];
        let visible = Visible {
            headers: None,
            cookies: &cookies,
        };
        let info = RequestInfo::capture(&[], &headers, visible);
        assert_eq!(info.cookie("big"), None);
        assert_eq!(info.cookie("small"), Some("1"));
    }
}
