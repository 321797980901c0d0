//! The `jwks_url` rule, checked when the config loads: the URL is https, or
//! plain http to a loopback host (or where the tenant allows it).

use std::net::IpAddr;

use hyper::Uri;

/// Why a `jwks_url` is refused at config load.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    /// Not an absolute `http`/`https` URL.
    #[error("'{0}' is not an absolute http(s) URL")]
    NotAUrl(String),
    #[error(
        "'{0}' is plain http to a host that is not loopback: use https, or set jwks_allow_http = true"
    )]
    /// Plain `http` to a host that is not loopback, without `jwks_allow_http`.
    PlainHttp(String),
}

/// Checks a `jwks_url`: https, or http to a loopback host (or with `allow_http`).
pub fn check_url(url: &str, allow_http: bool) -> Result<Uri, UrlError> {
    let uri: Uri = url.parse().map_err(|_| UrlError::NotAUrl(url.to_owned()))?;
    let host = uri
        .host()
        .ok_or_else(|| UrlError::NotAUrl(url.to_owned()))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http || is_loopback(host) => Ok(uri),
        Some("http") => Err(UrlError::PlainHttp(url.to_owned())),
        _ => Err(UrlError::NotAUrl(url.to_owned())),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_https_or_loopback_http() {
        assert!(check_url("https://idp.example/.well-known/jwks.json", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks", false).is_ok());
        assert!(check_url("http://[::1]:8080/jwks", false).is_ok());
        assert!(check_url("http://localhost/jwks", false).is_ok());
        assert_eq!(
            check_url("http://idp.internal/jwks", false).map(|_| ()),
            Err(UrlError::PlainHttp("http://idp.internal/jwks".into()))
        );
        assert!(check_url("http://idp.internal/jwks", true).is_ok());
        for bad in ["idp.example/jwks", "ftp://idp/jwks", "/jwks", ""] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }
}
