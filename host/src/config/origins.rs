//! A tenant's allowed origins and the verdict on one request's `Origin`:
//! pure logic, no I/O.
//!
//! An entry is an exact origin (`https://app.example.com`,
//! `http://127.0.0.1:8080`), a wildcard of subdomains (`https://*.example.com`,
//! which matches `https://a.example.com` and `https://a.b.example.com` but not
//! `https://example.com`), or `*` (any origin, for anonymous tenants only, and
//! then never with credentials).

/// What the server answers a request carrying `Origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not allowed: the request is refused (403) and gets no CORS headers.
    Denied,
    /// Allowed by `*`: CORS headers, but no `Access-Control-Allow-Credentials`.
    Anonymous,
    /// Allowed by an exact or wildcard entry, or the same origin as the
    /// request's `Host`: CORS headers with credentials.
    Credentialed,
}

impl Verdict {
    /// Whether the request may go on (anything but [`Verdict::Denied`]).
    pub fn allowed(self) -> bool {
        self != Verdict::Denied
    }
}

/// Why an `allowed_origins` entry is refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Not `scheme://host[:port]` with `http` or `https`, or it has a path.
    #[error("'{0}' is not an origin: scheme://host[:port] (http or https), no path")]
    NotAnOrigin(String),
    /// A `*` other than one leading `*.` label of the host, as in `https://*.example.com`.
    #[error("'{0}': a wildcard may only stand for subdomains, as in https://*.example.com")]
    BadWildcard(String),
    /// `*` for a tenant without `allow_anonymous`.
    #[error("'*' allows any origin, so it is only for tenants with allow_anonymous = true")]
    AnyNeedsAnonymous,
}

/// One parsed entry.
#[derive(Debug, PartialEq, Eq)]
enum Rule {
    Any,
    /// `scheme://host[:port]`, lowercased, default port removed.
    Exact(String),
    /// `scheme://*.suffix[:port]`: `prefix` is `scheme://`, `suffix` is
    /// `.example.com[:port]`.
    Subdomains {
        prefix: String,
        suffix: String,
    },
}

/// Checks a tenant's `allowed_origins` (config load, admin API).
pub fn validate(entries: &[String], allow_anonymous: bool) -> Result<(), OriginError> {
    for entry in entries {
        if parse_rule(entry)? == Rule::Any && !allow_anonymous {
            return Err(OriginError::AnyNeedsAnonymous);
        }
    }
    Ok(())
}

/// The verdict on `origin` (the request's `Origin` header) for a tenant
/// allowing `entries`; `host` is the request's `Host`, for same-origin
/// requests (allowed whatever the list says).
pub fn verdict(entries: &[String], origin: &str, host: Option<&str>) -> Verdict {
    let Some(origin) = normalize(origin) else {
        // `null` (a sandboxed page, a file://) and anything malformed: only `*`.
        return if entries.iter().any(|e| e.trim() == "*") {
            Verdict::Anonymous
        } else {
            Verdict::Denied
        };
    };
    if host.is_some_and(|host| same_origin(&origin, host)) {
        return Verdict::Credentialed;
    }
    let mut any = false;
    for rule in entries.iter().filter_map(|e| parse_rule(e).ok()) {
        match rule {
            Rule::Any => any = true,
            Rule::Exact(exact) if exact == origin => return Verdict::Credentialed,
            Rule::Subdomains { prefix, suffix }
                if origin.len() > prefix.len() + suffix.len()
                    && origin.starts_with(&prefix)
                    && origin.ends_with(&suffix) =>
            {
                // The part the `*` stands for: at least one label, no port.
                let labels = &origin[prefix.len()..origin.len() - suffix.len()];
                if !labels.contains(':') && !labels.starts_with('.') {
                    return Verdict::Credentialed;
                }
            }
            _ => {}
        }
    }
    if any {
        Verdict::Anonymous
    } else {
        Verdict::Denied
    }
}

/// Whether `origin` (normalized) names the same host and port as the
/// request's `Host` header (the scheme is not known behind a proxy).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    let default = match scheme {
        "https" => ":443",
        _ => ":80",
    };
    authority == host || authority == host.strip_suffix(default).unwrap_or("\0")
}

fn parse_rule(entry: &str) -> Result<Rule, OriginError> {
    let entry = entry.trim();
    if entry == "*" {
        return Ok(Rule::Any);
    }
    if let Some((scheme, rest)) = entry.split_once("://*.") {
        if rest.contains('*') {
            return Err(OriginError::BadWildcard(entry.to_owned()));
        }
        let sample = format!("{scheme}://x.{rest}");
        let normalized =
            normalize(&sample).ok_or_else(|| OriginError::NotAnOrigin(entry.to_owned()))?;
        let (prefix, suffix) = normalized.split_at(normalized.find("://x").unwrap_or(0) + 3);
        return Ok(Rule::Subdomains {
            prefix: prefix.to_owned(),
            suffix: suffix[1..].to_owned(),
        });
    }
    if entry.contains('*') {
        return Err(OriginError::BadWildcard(entry.to_owned()));
    }
    normalize(entry)
        .map(Rule::Exact)
        .ok_or_else(|| OriginError::NotAnOrigin(entry.to_owned()))
}

/// `scheme://host[:port]` lowercased, the scheme's default port removed;
/// None when `origin` is not an http(s) origin (`null`, a path, userinfo).
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    if authority.is_empty()
        || authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b' ' | b'\\'))
    {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() || port.is_some_and(|p| p.is_empty() || p.parse::<u16>().is_err()) {
        return None;
    }
    let authority = authority.strip_suffix(default).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| (*e).to_owned()).collect()
    }

    /// Each origin gets its verdict from `entries` (no Host header).
    fn verdicts(entries: &[&str], cases: &[(&str, Verdict)]) {
        let l = list(entries);
        for (origin, want) in cases {
            assert_eq!(verdict(&l, origin, None), *want, "{origin}");
        }
    }

    #[test]
    fn exact_origins_match_with_credentials() {
        verdicts(
            &["https://app.example.com", "http://127.0.0.1:8080"],
            &[
                ("https://app.example.com", Verdict::Credentialed),
                ("HTTPS://App.Example.com:443", Verdict::Credentialed),
                ("http://127.0.0.1:8080", Verdict::Credentialed),
                ("http://127.0.0.1:8081", Verdict::Denied),
                ("http://app.example.com", Verdict::Denied),
                ("https://app.example.com.evil.io", Verdict::Denied),
            ],
        );
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        verdicts(
            &["https://*.example.com"],
            &[
                ("https://a.example.com", Verdict::Credentialed),
                ("https://a.b.example.com", Verdict::Credentialed),
                ("https://example.com", Verdict::Denied),
                ("https://.example.com", Verdict::Denied),
                ("https://evilexample.com", Verdict::Denied),
                ("http://a.example.com", Verdict::Denied),
                ("https://a.example.com:8443", Verdict::Denied),
            ],
        );
        verdicts(
            &["http://*.example.com:8080"],
            &[
                ("http://a.example.com:8080", Verdict::Credentialed),
                ("http://a.example.com", Verdict::Denied),
            ],
        );
    }

    #[test]
    fn any_is_without_credentials_and_only_for_anonymous_tenants() {
        let l = list(&["*"]);
        assert_eq!(verdict(&l, "https://anything.io", None), Verdict::Anonymous);
        assert_eq!(verdict(&l, "null", None), Verdict::Anonymous);
        assert_eq!(validate(&l, false), Err(OriginError::AnyNeedsAnonymous));
        assert_eq!(validate(&l, true), Ok(()));
        // An exact entry beside `*` still gets credentials.
        let both = list(&["*", "https://app.example.com"]);
        assert_eq!(
            verdict(&both, "https://app.example.com", None),
            Verdict::Credentialed
        );
    }

    #[test]
    fn same_origin_is_always_allowed_and_nothing_else_by_default() {
        for (origin, host, want) in [
            (
                "http://127.0.0.1:5000",
                "127.0.0.1:5000",
                Verdict::Credentialed,
            ),
            ("https://push.io", "push.io:443", Verdict::Credentialed),
            ("http://localhost:5000", "127.0.0.1:5000", Verdict::Denied),
            ("null", "127.0.0.1:5000", Verdict::Denied),
        ] {
            assert_eq!(verdict(&[], origin, Some(host)), want, "{origin}");
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "example.com",
            "https://example.com/",
            "https://example.com/app",
            "ftp://example.com",
            "https://a.*.example.com",
            "https://*",
            "https://user@example.com",
            "https://example.com:99999",
        ] {
            assert!(validate(&list(&[bad]), true).is_err(), "{bad}");
        }
        assert_eq!(
            validate(
                &list(&["https://*.example.com", "http://[::1]:5000"]),
                false
            ),
            Ok(())
        );
    }
}
