//! The REST API's route table and the pure function that matches a request
//! line against it. Paths are matched segment by segment on the raw
//! (still percent-encoded) path, so a user id or group name may contain any
//! character, `/` included, when the caller encodes it.
//!
//! Every route lives under a hub, in either of two path styles: ours,
//! `/api/v1/tenants/{tenant}/hubs/{hub}`, and Azure SignalR Service's,
//! `/api/hubs/{hub}` (the tenant then comes from the `application` query or
//! from the key). The table holds the rest of the path, the same for both.
//! `openapi.json` documents exactly this table under both styles, plus
//! `HEAD /api/health` (tested).

use axum::http::Method;
use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::address::MAX_NAME_LEN;

/// Where every route of our path style starts.
pub const PREFIX: &str = "/api/v1/tenants/";

/// Where every route of Azure's path style starts.
pub const AZURE_PREFIX: &str = "/api/hubs/";

/// Azure's health check (`HEAD`), outside any hub.
pub const HEALTH_PATH: &str = "/api/health";

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `POST /:send`: to every connection of the hub.
    SendAll,
    /// `POST /users/{user}/:send`.
    SendUser,
    /// `POST /groups/{group}/:send`.
    SendGroup,
    /// `POST /connections/{connection}/:send`.
    SendConnection,
    /// `POST /:invoke`: runs a hub method server-side and answers its result.
    Invoke,
    /// `HEAD /connections/{connection}`.
    ConnectionExists,
    /// `DELETE /connections/{connection}`.
    CloseConnection,
    /// `HEAD /users/{user}`.
    UserExists,
    /// `HEAD /groups/{group}`.
    GroupExists,
    /// `PUT /groups/{group}/connections/{connection}`.
    AddConnectionToGroup,
    /// `DELETE /groups/{group}/connections/{connection}`.
    RemoveConnectionFromGroup,
    /// `PUT /users/{user}/groups/{group}`.
    AddUserToGroup,
    /// `DELETE /users/{user}/groups/{group}`.
    RemoveUserFromGroup,
    /// `POST /:closeConnections`.
    CloseAll,
    /// `POST /groups/{group}/:closeConnections`.
    CloseGroup,
    /// `POST /users/{user}/:closeConnections`.
    CloseUser,
    /// `DELETE /connections/{connection}/groups`.
    ConnectionLeaveAll,
    /// `DELETE /users/{user}/groups`.
    UserLeaveAll,
    /// `HEAD /users/{user}/groups/{group}`.
    UserInGroup,
}

/// One route: a method and a path below the hub, with `{name}` captures.
#[derive(Debug)]
pub struct Route {
    /// The HTTP method it answers.
    pub method: Method,
    /// The path below the hub, e.g. `/users/{user}/:send`.
    pub pattern: &'static str,
    /// What a request matching it asks for.
    pub action: Action,
}

const fn route(method: Method, pattern: &'static str, action: Action) -> Route {
    Route {
        method,
        pattern,
        action,
    }
}

/// Every route of the API, below `/api/v1/tenants/{tenant}/hubs/{hub}`.
pub const ROUTES: &[Route] = &[
    route(Method::POST, "/:send", Action::SendAll),
    route(Method::POST, "/:invoke", Action::Invoke),
    route(Method::POST, "/users/{user}/:send", Action::SendUser),
    route(Method::POST, "/groups/{group}/:send", Action::SendGroup),
    route(
        Method::POST,
        "/connections/{connection}/:send",
        Action::SendConnection,
    ),
    route(
        Method::HEAD,
        "/connections/{connection}",
        Action::ConnectionExists,
    ),
    route(
        Method::DELETE,
        "/connections/{connection}",
        Action::CloseConnection,
    ),
    route(Method::HEAD, "/users/{user}", Action::UserExists),
    route(Method::HEAD, "/groups/{group}", Action::GroupExists),
    route(
        Method::PUT,
        "/groups/{group}/connections/{connection}",
        Action::AddConnectionToGroup,
    ),
    route(
        Method::DELETE,
        "/groups/{group}/connections/{connection}",
        Action::RemoveConnectionFromGroup,
    ),
    route(
        Method::PUT,
        "/users/{user}/groups/{group}",
        Action::AddUserToGroup,
    ),
    route(
        Method::DELETE,
        "/users/{user}/groups/{group}",
        Action::RemoveUserFromGroup,
    ),
    route(
        Method::HEAD,
        "/users/{user}/groups/{group}",
        Action::UserInGroup,
    ),
    route(Method::POST, "/:closeConnections", Action::CloseAll),
    route(
        Method::POST,
        "/groups/{group}/:closeConnections",
        Action::CloseGroup,
    ),
    route(
        Method::POST,
        "/users/{user}/:closeConnections",
        Action::CloseUser,
    ),
    route(
        Method::DELETE,
        "/connections/{connection}/groups",
        Action::ConnectionLeaveAll,
    ),
    route(Method::DELETE, "/users/{user}/groups", Action::UserLeaveAll),
];

/// A request matched against the table, with its names decoded.
#[derive(Debug, PartialEq)]
pub struct Matched {
    /// The tenant named in the path; none in Azure's style, where the
    /// `application` query or the key tells it.
    pub tenant: Option<String>,
    /// The hub named in the path, lowercased.
    pub hub: String,
    /// What the matched route asks for.
    pub action: Action,
    params: Vec<(&'static str, String)>,
}

impl Matched {
    /// A captured name (`user`, `group`, `connection`); empty if the route has none.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
}

/// Matches `method` and the raw `path`, in either path style, against [`ROUTES`].
pub fn parse(method: &Method, path: &str) -> Result<Matched, ApiError> {
    let no_route = || ApiError::NoRoute(path.to_owned());
    let (tenant, rest) = if let Some(rest) = path.strip_prefix(PREFIX) {
        let (tenant, rest) = rest.split_once('/').ok_or_else(no_route)?;
        let rest = rest.strip_prefix("hubs/").ok_or_else(no_route)?;
        if tenant.is_empty() {
            return Err(no_route());
        }
        (Some(decode(tenant)?.to_ascii_lowercase()), rest)
    } else if let Some(rest) = path.strip_prefix(AZURE_PREFIX) {
        (None, rest)
    } else {
        return Err(no_route());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let [hub, below @ ..] = segments.as_slice() else {
        return Err(no_route());
    };
    if hub.is_empty() {
        return Err(no_route());
    }
    let hub = decode(hub)?.to_ascii_lowercase();
    let mut allowed: Vec<&Method> = Vec::new();
    for route in ROUTES {
        let Some(params) = match_pattern(route.pattern, below)? else {
            continue;
        };
        if route.method == *method {
            return Ok(Matched {
                tenant,
                hub,
                action: route.action,
                params,
            });
        }
        allowed.push(&route.method);
    }
    if allowed.is_empty() {
        return Err(no_route());
    }
    Err(ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow: allowed
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The captures of `pattern` if `segments` match it.
fn match_pattern(
    pattern: &'static str,
    segments: &[&str],
) -> Result<Option<Vec<(&'static str, String)>>, ApiError> {
    let parts: Vec<&'static str> = pattern.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return Ok(None);
    }
    let mut params = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return Ok(None);
            }
            params.push((name, String::new()));
        } else if decode(segment)? != *part {
            return Ok(None);
        }
    }
    // Decode captures only once the literal parts matched.
    let mut captured = params.iter_mut();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            let Some((name, value)) = captured.next() else {
                break;
            };
            *value = decode(segment)?;
            if value.len() > MAX_NAME_LEN {
                return Err(ApiError::BadRequest(format!(
                    "the {name} is longer than {MAX_NAME_LEN} bytes"
                )));
            }
        }
    }
    Ok(Some(params))
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::BadRequest("a path segment is not valid UTF-8".into()))
}

/// The OpenAPI paths of a route, one per path style.
pub fn full_patterns(route: &Route) -> [String; 2] {
    [
        format!("/api/v1/tenants/{{tenant}}/hubs/{{hub}}{}", route.pattern),
        format!("/api/hubs/{{hub}}{}", route.pattern),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/api/v1/tenants/acme/hubs/Orders";

    fn ok(method: Method, rest: &str) -> Matched {
        parse(&method, &format!("{BASE}{rest}")).expect("route")
    }

    #[test]
    fn matches_every_route_and_decodes_names() {
        let m = ok(Method::POST, "/:send");
        assert_eq!(
            (m.tenant.as_deref(), m.hub.as_str()),
            (Some("acme"), "orders")
        );
        assert_eq!(m.action, Action::SendAll);
        let m = ok(Method::POST, "/users/a%2Fb%20c/:send");
        assert_eq!(m.action, Action::SendUser);
        assert_eq!(m.param("user"), "a/b c");
        let m = ok(Method::PUT, "/users/u1/groups/g%C3%BC");
        assert_eq!(m.action, Action::AddUserToGroup);
        assert_eq!((m.param("user"), m.param("group")), ("u1", "gü"));
        let m = ok(Method::DELETE, "/groups/g/connections/c");
        assert_eq!(m.action, Action::RemoveConnectionFromGroup);
        assert_eq!(
            ok(Method::HEAD, "/connections/c").action,
            Action::ConnectionExists
        );
        assert_eq!(
            ok(Method::DELETE, "/connections/c/").action,
            Action::CloseConnection
        );
        assert_eq!(ok(Method::POST, "/%3Asend").action, Action::SendAll);
        assert_eq!(ok(Method::POST, "/:invoke").action, Action::Invoke);
    }

    #[test]
    fn azure_paths_name_no_tenant() {
        let m = parse(&Method::POST, "/api/hubs/Chat/users/a%2Fb/:send").expect("route");
        assert_eq!((m.tenant.as_deref(), m.hub.as_str()), (None, "chat"));
        assert_eq!((m.action, m.param("user")), (Action::SendUser, "a/b"));
        for (method, rest, action) in [
            (Method::POST, "/:closeConnections", Action::CloseAll),
            (
                Method::POST,
                "/groups/g/:closeConnections",
                Action::CloseGroup,
            ),
            (
                Method::POST,
                "/users/u/:closeConnections",
                Action::CloseUser,
            ),
            (
                Method::DELETE,
                "/connections/c/groups",
                Action::ConnectionLeaveAll,
            ),
            (Method::DELETE, "/users/u/groups", Action::UserLeaveAll),
            (Method::HEAD, "/users/u/groups/g", Action::UserInGroup),
            (Method::DELETE, "/connections/c", Action::CloseConnection),
        ] {
            assert_eq!(ok(method.clone(), rest).action, action, "{rest}");
            let azure = parse(&method, &format!("/api/hubs/h{rest}")).expect("azure route");
            assert_eq!(azure.action, action, "{rest}");
        }
        for path in ["/api/hubs/", "/api/hubs//:send", "/api/hubsx/h/:send"] {
            assert!(
                matches!(parse(&Method::POST, path), Err(ApiError::NoRoute(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn unknown_paths_and_methods() {
        for path in [
            "/api/v1/tenants/acme",
            "/api/v1/tenants/acme/hubs",
            "/api/v1/tenants/acme/rooms/x/:send",
            "/api/v2/tenants/acme/hubs/h/:send",
        ] {
            assert!(
                matches!(parse(&Method::POST, path), Err(ApiError::NoRoute(_))),
                "{path}"
            );
        }
        for rest in ["/:sendx", "/users//:send", "/users/u/:send/x", "/groups"] {
            assert!(
                matches!(
                    parse(&Method::POST, &format!("{BASE}{rest}")),
                    Err(ApiError::NoRoute(_))
                ),
                "{rest}"
            );
        }
        let err = parse(&Method::GET, &format!("{BASE}/connections/c")).expect_err("405");
        assert_eq!(
            err,
            ApiError::MethodNotAllowed {
                method: "GET".into(),
                allow: "HEAD, DELETE".into()
            }
        );
        let err = parse(&Method::GET, &format!("{BASE}/:send")).expect_err("405");
        assert!(matches!(err, ApiError::MethodNotAllowed { .. }));
    }

    #[test]
    fn bad_names() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            parse(&Method::POST, &format!("{BASE}/groups/{long}/:send")),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse(&Method::POST, &format!("{BASE}/users/%FF/:send")),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn openapi_documents_exactly_these_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(super::super::OPENAPI_JSON).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if !path.starts_with("/api/") || path == "/api/openapi.json" {
                continue;
            }
            for method in item.as_object().expect("path item").keys() {
                if method != "parameters" {
                    documented.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .flat_map(|r| full_patterns(r).map(|p| (r.method.to_string(), p)))
            .collect();
        routed.push(("HEAD".into(), HEALTH_PATH.into()));
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
