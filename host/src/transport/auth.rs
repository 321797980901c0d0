//! Where a request carries its bearer token: the `Authorization` header
//! first, then the `access_token` query (browsers' WebSocket and every
//! EventSource cannot set headers).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::query_param;

/// The bearer token of a client request: from `Authorization: Bearer`, else the `access_token`
/// query.
pub fn bearer_token(headers: &HeaderMap, query: &[(String, String)]) -> Option<String> {
    let from_header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty());
    from_header.or_else(|| query_param(query, "access_token").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_first_then_query() {
        let mut headers = HeaderMap::new();
        let query = vec![("access_token".to_owned(), "q".to_owned())];
        assert_eq!(bearer_token(&headers, &query).as_deref(), Some("q"));
        headers.insert(AUTHORIZATION, "Bearer h".parse().expect("header"));
        assert_eq!(bearer_token(&headers, &query).as_deref(), Some("h"));
        headers.insert(AUTHORIZATION, "Basic x".parse().expect("header"));
        assert_eq!(bearer_token(&headers, &[]), None);
    }
}
