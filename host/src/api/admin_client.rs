//! Where the `switchboard deploy`, `rollback`, `plugins` and `dev` commands
//! reach the admin API, what they send to it, and how they print its answers.
//! No I/O but reading `--ca-cert` for a client.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::client::{ApiClient, ClientError, Credentials, segment};

/// The longest a deploy or rollback may take: the node compiles the component first, which for
/// a JavaScript or Python one (megabytes, an embedded engine) takes tens of seconds, more on a
/// busy machine.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the admin API is, and the operator key for it (the command line's options).
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The node (or load balancer) URL.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// One of the config's `[admin] keys`.
    #[arg(long, env = "SWITCHBOARD_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,
    /// Also trust this CA certificate (PEM) for an https:// URL (a self-signed or private CA).
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

// The key is a secret.
debug_fields!(AdminArgs { url, ca_cert });

impl AdminArgs {
    /// A client of the admin API that waits for an answer up to [`DEPLOY_TIMEOUT`].
    pub fn client(&self) -> Result<ApiClient, ClientError> {
        let credentials = Credentials::AdminKey(self.admin_key.clone());
        let client = ApiClient::with_ca_cert(&self.url, credentials, self.ca_cert.as_deref())?;
        Ok(client.with_timeout(DEPLOY_TIMEOUT))
    }
}

/// `/admin/v1/tenants/{t}/hubs/{h}/{action}`.
pub fn hub_path(tenant: &str, hub: &str, action: &str) -> String {
    format!(
        "/admin/v1/tenants/{}/hubs/{}/{action}",
        segment(tenant),
        segment(hub)
    )
}

/// `/admin/v1/tenants/{t}/plugins`.
pub fn plugins_path(tenant: &str) -> String {
    format!("/admin/v1/tenants/{}/plugins", segment(tenant))
}

/// One line for a deployed or restored version.
pub fn format_version(answer: &Value) -> String {
    let changed = match answer.get("changed") {
        Some(Value::Bool(false)) => " (unchanged: these bytes already serve)",
        _ => "",
    };
    format!(
        "{}/{} version {} sha256 {} ({} bytes, {}, {}){changed}",
        text(&answer["tenant"]),
        text(&answer["hub"]),
        answer["version"],
        short(&answer["sha256"]),
        answer["size"],
        text(&answer["source"]),
        text(&answer["deployed_at"]),
    )
}

/// The `plugins` answer as a table: each hub, then its versions, the
/// current one marked with `*`.
pub fn format_plugins(answer: &Value) -> String {
    let mut out = String::new();
    let hubs = answer["hubs"].as_array().cloned().unwrap_or_default();
    if hubs.is_empty() {
        out.push_str(&format!("tenant {} has no hubs\n", text(&answer["tenant"])));
        return out;
    }
    for hub in hubs {
        let methods: Vec<String> = hub["methods"]
            .as_array()
            .map(|m| m.iter().map(text).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  (current: version {}; methods: {})\n",
            text(&hub["hub"]),
            hub["current"],
            methods.join(", ")
        ));
        for v in hub["versions"].as_array().cloned().unwrap_or_default() {
            let mark = if v["current"] == Value::Bool(true) {
                '*'
            } else {
                ' '
            };
            out.push_str(&format!(
                "  {mark} v{:<4} {}  {:>9} B  {:<8} {}\n",
                text(&v["version"]),
                short(&v["sha256"]),
                text(&v["size"]),
                text(&v["source"]),
                text(&v["deployed_at"]),
            ));
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first 12 hex digits of a hash, as `git` shows them.
fn short(v: &Value) -> String {
    text(v).chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_escape_names() {
        assert_eq!(
            hub_path("acme", "chat", "deploy"),
            "/admin/v1/tenants/acme/hubs/chat/deploy"
        );
        assert_eq!(plugins_path("a b"), "/admin/v1/tenants/a%20b/plugins");
    }

    #[test]
    fn tables() {
        let answer = json!({"tenant": "demo", "hubs": [{
        "hub": "chat", "current": 2, "methods": ["echo", "send"],
        "versions": [
            {"version": 1, "sha256": "aaaaaaaaaaaaaaaa", "size": 10, "source": "bundled", "deployed_at": "t1", "current": false},
            {"version": 2, "sha256": "bbbbbbbbbbbbbbbb", "size": 20, "source": "api", "deployed_at": "t2", "current": true}
        ]}]});
        let table = format_plugins(&answer);
        assert!(
            table.starts_with("chat  (current: version 2; methods: echo, send)\n"),
            "{table}"
        );
        assert!(table.contains("* v2    bbbbbbbbbbbb"), "{table}");
        assert!(table.contains("  v1    aaaaaaaaaaaa"), "{table}");
        assert_eq!(
            format_plugins(&json!({"tenant": "x", "hubs": []})),
            "tenant x has no hubs\n"
        );
        let line = format_version(&json!({"tenant": "demo", "hub": "chat", "version": 3,
            "sha256": "cccccccccccccccc", "size": 5, "source": "api", "deployed_at": "t", "changed": false}));
        assert!(
            line.contains("version 3 sha256 cccccccccccc") && line.contains("unchanged"),
            "{line}"
        );
    }
}
