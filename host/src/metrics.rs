//! The node's metrics: the Prometheus recorder behind the `metrics` facade,
//! rendered as Prometheus text on `GET /metrics` (see `server`).
//!
//! Every module records through the facade macros (`counter!`, `gauge!`,
//! `histogram!`); this one installs the recorder once per process, without
//! an HTTP listener of its own, and names the series the hub layer records.
//! Labels stay bounded: `tenant`, `hub`, and at most a hub method the plugin
//! declared, an outcome or a limit name; never connection or user ids.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open connections (gauge), by `tenant` and `hub`.
pub const CONNECTIONS: &str = "switchboard_connections";
/// Hub messages received from clients, pings excluded, by `tenant` and `hub`.
pub const MESSAGES_IN: &str = "switchboard_messages_in_total";
/// Hub messages queued for clients: sends, completions, stream items.
pub const MESSAGES_OUT: &str = "switchboard_messages_out_total";
/// Hub method invocations by `tenant`, `hub`, `method` and `outcome`.
pub const INVOCATIONS: &str = "switchboard_invocations_total";
/// Time from dispatch to result of a hub method invocation, in seconds.
pub const INVOCATION_SECONDS: &str = "switchboard_invocation_duration_seconds";
/// Plugin failures by `tenant`, `hub` and `kind` (timeout, memory, trap, instantiate).
pub const PLUGIN_ERRORS: &str = "switchboard_plugin_errors_total";
/// Limits reached by `tenant`, `hub` and `limit`.
pub const LIMIT_HITS: &str = "switchboard_limit_hits_total";
/// Connections closed because their client was too slow, by `tenant`, `hub`
/// and `reason` (queue_bytes, queue_records, write_timeout).
pub const SLOW_CONSUMERS_CLOSED: &str = "switchboard_slow_consumers_closed_total";

// --- The HTTP edge (see `server`) ---
/// TCP connections holding one of the node's connection slots (gauge).
pub const HTTP_CONNECTIONS: &str = "switchboard_http_connections";
/// The node's connection cap, `max_connections` (gauge).
pub const HTTP_CONNECTIONS_MAX: &str = "switchboard_http_connections_max";
/// Requests answered 503 because every connection slot was taken.
pub const HTTP_REFUSED: &str = "switchboard_http_refused_total";
/// Reserved (over-the-cap) connections closed to make room for a newer one.
pub const HTTP_RESERVED_EVICTED: &str = "switchboard_http_reserved_evicted_total";
/// Connections closed because their request head did not arrive in time.
pub const HTTP_HEADER_TIMEOUTS: &str = "switchboard_http_header_timeouts_total";
/// Failed `accept` calls (out of files, out of memory), each followed by a wait.
pub const ACCEPT_ERRORS: &str = "switchboard_accept_errors_total";

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histograms are drained and idle series trimmed.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder, once.
/// False when another recorder was installed first (then `/metrics` is empty).
pub fn install() -> bool {
    HANDLE.get_or_init(build).is_some()
}

fn build() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        // Every `*_seconds` histogram (invocation latency, backplane lag) as a real
        // Prometheus histogram, which sums across nodes, rather than a summary.
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .ok()?;
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
            return None;
        }
    };
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
    }
    Some(handle)
}

/// The current values in Prometheus text format; none without a recorder.
pub fn render() -> Option<String> {
    HANDLE.get().and_then(Option::as_ref).map(|h| h.render())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS, "Open client connections on this node.");
    describe_counter!(
        MESSAGES_IN,
        "Hub messages received from clients (pings excluded)."
    );
    describe_counter!(
        MESSAGES_OUT,
        "Hub messages queued for clients (sends, completions, stream items)."
    );
    describe_counter!(
        INVOCATIONS,
        "Hub method invocations by outcome: ok, error, unknown_method, timeout, memory, trap, rejected."
    );
    describe_histogram!(
        INVOCATION_SECONDS,
        metrics::Unit::Seconds,
        "Hub method invocation latency, from dispatch to result."
    );
    describe_counter!(
        PLUGIN_ERRORS,
        "Plugin failures: timeout (CPU limit), memory (memory limit), trap (trap or panic), instantiate."
    );
    describe_counter!(LIMIT_HITS, "Tenant limits reached, by limit.");
    describe_gauge!(
        HTTP_CONNECTIONS,
        "TCP connections holding a connection slot (HTTP, SSE, long polls, WebSockets)."
    );
    describe_gauge!(
        HTTP_CONNECTIONS_MAX,
        "The node's connection cap (max_connections)."
    );
    describe_counter!(
        HTTP_REFUSED,
        "Requests answered 503 because the node was at its connection cap."
    );
    describe_counter!(
        HTTP_RESERVED_EVICTED,
        "Over-the-cap connections closed to make room for a newer one."
    );
    describe_counter!(
        HTTP_HEADER_TIMEOUTS,
        "Connections closed because their request head did not arrive within request_headers_timeout_secs."
    );
    describe_counter!(
        ACCEPT_ERRORS,
        "Failed accepts (out of files or memory); each waits before the next accept."
    );
    describe_counter!(
        SLOW_CONSUMERS_CLOSED,
        "Connections closed because their client was too slow: queue_bytes (outbound byte budget), queue_records, write_timeout."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_series_with_labels() {
        // Other tests in this process may have installed it already: either way it is ours.
        assert!(install());
        metrics::counter!(LIMIT_HITS, "tenant" => "t1", "hub" => "h1", "limit" => "connections")
            .increment(2);
        metrics::histogram!(INVOCATION_SECONDS, "tenant" => "t1", "hub" => "h1", "method" => "m")
            .record(0.003);
        let text = render().expect("a recorder");
        assert!(
            text.contains(
                r#"switchboard_limit_hits_total{tenant="t1",hub="h1",limit="connections"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"switchboard_invocation_duration_seconds_bucket{tenant="t1",hub="h1",method="m",le="0.005"} 1"#),
            "{text}"
        );
    }
}
