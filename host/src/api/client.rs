//! A small HTTP/1.1 client for the REST API, for the `switchboard send` CLI
//! and tests: `http://` or `https://` (the system's trusted roots, plus a CA
//! given with `--ca-cert` for a private or self-signed certificate),
//! authenticated with an API key or a per-request token.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::auth::{API_KEY_HEADER, mint_api_token};

/// How the client proves it may call the API.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Sent as is in `X-Api-Key`.
    ApiKey(String),
    /// Signs a token per request, with `aud` = the request URL.
    SigningKey(String),
    /// An operator key of the admin API, sent as `Authorization: Bearer`.
    AdminKey(String),
}

/// The answer to a request.
#[derive(Debug)]
pub struct ApiResponse {
    /// The HTTP status code, whatever it is (an error status is not a [`ClientError`]).
    pub status: u16,
    /// The response body as text (invalid UTF-8 replaced).
    pub body: String,
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is neither `http://` nor `https://`.
    #[error("the URL must start with http:// or https:// (got '{0}')")]
    Url(String),
    /// The `--ca-cert` file cannot be read or holds no usable certificate.
    #[error("cannot use the CA certificate {path}: {reason}")]
    CaCert {
        /// The file as given.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A per-request token could not be signed with the signing key.
    #[error("cannot sign a token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// The HTTPS client could not be built, or the request could not be built, sent or its body
    /// read.
    #[error("request failed: {0}")]
    Http(String),
    /// No answer within the client's limit (in milliseconds: a limit under a
    /// second must not read as "0 s").
    #[error("no answer within {0} ms")]
    Timeout(u128),
}

/// Lifetime of the per-request tokens.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// The longest one request may take, unless the client is given another limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Characters escaped in a path segment: all but unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `name` escaped for use as one path segment.
pub fn segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// Where `switchboard send` sends.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Every connection of the hub.
    All,
    /// Every connection of this user id.
    User(String),
    /// Every connection in this group.
    Group(String),
    /// The one connection with this id.
    Connection(String),
    /// Invoke the hub method server-side instead of sending to clients.
    Invoke,
}

/// The request path (with `excluded` query) for a send to `to`.
pub fn send_path(tenant: &str, hub: &str, to: &Destination, excluded: &[String]) -> String {
    let base = format!("/api/v1/tenants/{}/hubs/{}", segment(tenant), segment(hub));
    let mut path = match to {
        Destination::All => format!("{base}/:send"),
        Destination::User(u) => format!("{base}/users/{}/:send", segment(u)),
        Destination::Group(g) => format!("{base}/groups/{}/:send", segment(g)),
        Destination::Connection(c) => format!("{base}/connections/{}/:send", segment(c)),
        Destination::Invoke => format!("{base}/:invoke"),
    };
    for (i, id) in excluded.iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str("excluded=");
        path.push_str(&segment(id));
    }
    path
}

/// An API client for one node (or load balancer) URL.
#[derive(Debug)]
pub struct ApiClient {
    base: String,
    credentials: Credentials,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The longest one request may take.
    timeout: Duration,
}

/// The roots an `https://` URL's certificate is checked against: the
/// system's, and the PEM certificates of `ca_cert` if given.
fn roots(ca_cert: Option<&std::path::Path>) -> Result<rustls::RootCertStore, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let (_, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_cert {
        let error = |reason: String| ClientError::CaCert {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| error(e.to_string()))?;
        if certs.is_empty() {
            return Err(error("no certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| error(e.to_string()))?;
        }
    }
    Ok(roots)
}

impl ApiClient {
    /// A client for `base_url` (`http://` or `https://`, the system's roots) with a 30 s limit per
    /// request.
    pub fn new(base_url: &str, credentials: Credentials) -> Result<ApiClient, ClientError> {
        ApiClient::with_ca_cert(base_url, credentials, None)
    }

    /// A client that also trusts the CA certificate(s) in `ca_cert` (PEM) for `https://`.
    pub fn with_ca_cert(
        base_url: &str,
        credentials: Credentials,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<ApiClient, ClientError> {
        if !base_url.starts_with("http://") && !base_url.starts_with("https://") {
            return Err(ClientError::Url(base_url.to_owned()));
        }
        let http = crate::tenant::jwks::https_client(roots(ca_cert)?)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(ApiClient {
            base: base_url.trim_end_matches('/').to_owned(),
            credentials,
            http,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// The same client with another limit on one request (30 s by default): a deploy waits
    /// while the node compiles the component.
    pub fn with_timeout(self, timeout: Duration) -> ApiClient {
        ApiClient { timeout, ..self }
    }

    /// `method` on `path` (escaped, starting with `/`, query allowed), with a JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> Result<ApiResponse, ClientError> {
        let body = json.map(|j| ("application/json", Bytes::from(j)));
        self.request_body(method, path, body).await
    }

    /// `method` on `path` with a body of the given content type (a plugin upload).
    pub async fn request_body(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<ApiResponse, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        request = match &self.credentials {
            Credentials::ApiKey(key) => request.header(API_KEY_HEADER, key),
            Credentials::SigningKey(key) => {
                let aud = url.split('?').next().unwrap_or_default();
                let token = mint_api_token(key, aud, TOKEN_TTL)?;
                request.header(AUTHORIZATION, format!("Bearer {token}"))
            }
            Credentials::AdminKey(key) => request.header(AUTHORIZATION, format!("Bearer {key}")),
        };
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                ClientError::Http(format!("{url}: {}", crate::error_text::with_causes(&e)))
            })?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            Ok(ApiResponse {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout.as_millis()))?
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_are_escaped() {
        assert_eq!(super::segment("a/b c:ü"), "a%2Fb%20c%3A%C3%BC");
        assert_eq!(super::segment("user-1_x.y~"), "user-1_x.y~");
    }

    #[test]
    fn send_paths() {
        use super::{Destination, send_path};
        assert_eq!(
            send_path(
                "demo",
                "chat",
                &Destination::All,
                &["a b".into(), "c".into()]
            ),
            "/api/v1/tenants/demo/hubs/chat/:send?excluded=a%20b&excluded=c"
        );
        assert_eq!(
            send_path("demo", "chat", &Destination::User("u/1".into()), &[]),
            "/api/v1/tenants/demo/hubs/chat/users/u%2F1/:send"
        );
        assert_eq!(
            send_path("demo", "notify", &Destination::Invoke, &[]),
            "/api/v1/tenants/demo/hubs/notify/:invoke"
        );
    }
}
