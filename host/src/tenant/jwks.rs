//! Client-token keys from an identity provider's JWKS URL (`jwks_url`):
//! fetched when first needed, cached, and fetched again
//!
//! - when the cache is stale: after the response's `Cache-Control: max-age`,
//!   kept within [`MIN_TTL`]..=[`MAX_TTL`] ([`DEFAULT_TTL`] without one), in
//!   the background while the cached keys keep verifying;
//! - when a token names a `kid` the cache does not hold (the provider rotated
//!   its key): the request waits for the fetch, at most one fetch per
//!   `jwks_min_refresh_secs`, so tokens with made-up `kid`s cannot turn the
//!   node into a load generator against the provider.
//!
//! A fetch has a deadline ([`FETCH_TIMEOUT`]) and a size bound
//! ([`MAX_BODY_BYTES`]); one that fails (provider down, bad document) keeps
//! the cached keys and is logged. Plain `http://` is accepted only for a
//! loopback host or when the tenant sets `jwks_allow_http`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, CACHE_CONTROL};
use hyper::{StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tracing::{info, warn};

use super::auth::{PublicKey, parse_jwks};

/// How long a fetch (connect, TLS, response and body) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS document accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Keys are kept at least this long, whatever `max-age` says.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// ... and at most this long.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long keys are kept when the response says nothing.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// How long a response's keys are good for, from its `Cache-Control`.
pub fn ttl_of(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else {
        return DEFAULT_TTL;
    };
    let mut ttl = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return MIN_TTL;
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            ttl = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    ttl.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL)
}

/// When the keys were last fetched and tried.
#[derive(Default)]
struct Times {
    /// Until when the cached keys are fresh (None: never fetched).
    fresh_until: Option<Instant>,
    /// The start of the last fetch, successful or not.
    last_attempt: Option<Instant>,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An HTTP/1 client for `http://` and `https://` URLs that trusts `roots`.
pub(crate) fn https_client<B>(
    roots: rustls::RootCertStore,
) -> Result<Client<HttpsConnector<HttpConnector>, B>, rustls::Error>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The keys of one tenant's `jwks_url`.
pub struct JwksSource {
    url: Uri,
    min_refresh: Duration,
    keys: ArcSwap<Vec<PublicKey>>,
    times: Mutex<Times>,
    /// One fetch at a time; requests for an unknown `kid` queue here.
    fetching: tokio::sync::Mutex<()>,
    client: OnceLock<Result<HttpClient, String>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &self.url)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// A source with nothing cached yet, fetching at most once per `min_refresh`.
    pub fn new(url: Uri, min_refresh: Duration) -> JwksSource {
        JwksSource {
            url,
            min_refresh,
            keys: ArcSwap::from_pointee(Vec::new()),
            times: Mutex::new(Times::default()),
            fetching: tokio::sync::Mutex::new(()),
            client: OnceLock::new(),
        }
    }

    /// The cached keys (empty before the first successful fetch). When they
    /// are stale, a fetch starts in the background (at most one per
    /// `min_refresh`); the caller goes on with what is cached.
    pub fn keys(self: &Arc<Self>) -> Arc<Vec<PublicKey>> {
        let keys = self.keys.load_full();
        let now = Instant::now();
        let due = {
            let times = self.times.lock();
            times.fresh_until.is_some_and(|t| now >= t) && self.may_try(&times, now)
        };
        if due && let Ok(handle) = tokio::runtime::Handle::try_current() {
            let source = self.clone();
            handle.spawn(async move { source.refresh(None).await });
        }
        keys
    }

    /// Starts the first fetch in the background (when called on a runtime),
    /// so the first client does not wait for it and a wrong URL shows in the
    /// log at once.
    pub fn warm(self: &Arc<Self>) {
        if self.times.lock().last_attempt.is_some() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let source = self.clone();
            handle.spawn(async move { source.refresh(None).await });
        }
    }

    /// Whether a fetch may start now (the last one began `min_refresh` ago or more).
    fn may_try(&self, times: &Times, now: Instant) -> bool {
        times
            .last_attempt
            .is_none_or(|t| now.duration_since(t) >= self.min_refresh)
    }

    /// Fetches the keys because a token names `kid` (or carries none and no
    /// cached key verifies it), unless another fetch already brought it or
    /// the last fetch was less than `min_refresh` ago. Returns whether the
    /// keys changed.
    pub async fn refresh(&self, kid: Option<&str>) -> bool {
        let _one = self.fetching.lock().await;
        if let Some(kid) = kid
            && self
                .keys
                .load()
                .iter()
                .any(|k| k.kid.as_deref() == Some(kid))
        {
            return true;
        }
        let now = Instant::now();
        {
            let mut times = self.times.lock();
            if !self.may_try(&times, now) {
                return false;
            }
            times.last_attempt = Some(now);
        }
        match self.fetch().await {
            Ok((keys, ttl)) => {
                info!(url = %self.url, keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
                self.keys.store(Arc::new(keys));
                self.times.lock().fresh_until = Some(Instant::now() + ttl);
                true
            }
            Err(e) => {
                warn!(url = %self.url, error = %e, cached_keys = self.keys.load().len(),
                    "JWKS fetch failed; the cached keys stay in use");
                false
            }
        }
    }

    fn client(&self) -> Result<&HttpClient, String> {
        self.client
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                let (_, _) =
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                https_client(roots).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// One GET of the URL: its keys and how long to keep them.
    async fn fetch(&self) -> Result<(Vec<PublicKey>, Duration), String> {
        let client = self.client()?;
        let request = hyper::Request::get(self.url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let work = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| crate::error_text::with_causes(&e))?;
            if response.status() != StatusCode::OK {
                return Err(format!("the server answered {}", response.status()));
            }
            let ttl = ttl_of(
                response
                    .headers()
                    .get(CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok()),
            );
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e} (at most {MAX_BODY_BYTES} bytes)"))?
                .to_bytes();
            let text = std::str::from_utf8(&body).map_err(|_| "the body is not UTF-8")?;
            let keys = parse_jwks(&self.url.to_string(), text, false)?;
            Ok((keys, ttl))
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_honoured_within_bounds() {
        assert_eq!(ttl_of(None), DEFAULT_TTL);
        assert_eq!(
            ttl_of(Some("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(ttl_of(Some("max-age=5")), MIN_TTL);
        assert_eq!(ttl_of(Some("max-age=999999999")), MAX_TTL);
        assert_eq!(ttl_of(Some("no-store")), MIN_TTL);
        assert_eq!(ttl_of(Some("max-age=abc")), DEFAULT_TTL);
        assert_eq!(ttl_of(Some("private")), DEFAULT_TTL);
    }

    const JWKS: &str = include_str!("../../tests/fixtures/auth/jwks.json");

    /// A JWKS endpoint on loopback answering `answers` in turn (then 500s),
    /// one request per connection; returns its URL and the request count.
    async fn endpoint(
        answers: Vec<(u16, &'static str)>,
    ) -> (Uri, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            for i in 0..16 {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                seen.fetch_add(1, Ordering::SeqCst);
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let (status, body) = answers.get(i).copied().unwrap_or((500, "down"));
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncache-control: max-age=600\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        let url = format!("http://{addr}/jwks").parse().expect("uri");
        (url, count)
    }

    #[tokio::test]
    async fn unknown_kids_fetch_at_most_once_per_interval() {
        let (url, count) = endpoint(vec![(200, JWKS)]).await;
        let source = Arc::new(JwksSource::new(url, Duration::from_secs(60)));
        assert!(source.refresh(Some("idp-1")).await, "first fetch");
        assert_eq!(source.keys().len(), 1);
        assert!(!source.refresh(Some("made-up")).await, "rate limited");
        assert!(source.refresh(Some("idp-1")).await, "known: no fetch");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_cached_keys() {
        let (url, count) = endpoint(vec![(200, JWKS), (500, "oops"), (200, "{not json")]).await;
        let source = Arc::new(JwksSource::new(url, Duration::ZERO));
        assert!(source.refresh(None).await);
        assert!(!source.refresh(Some("other")).await, "a 500");
        assert!(!source.refresh(Some("other")).await, "not a JWKS");
        assert_eq!(source.keys().len(), 1, "the cached key stays");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
