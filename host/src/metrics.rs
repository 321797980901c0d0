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
/// Durable connections this node claimed from an owner that did not answer.
pub const RESUME_TAKEOVERS: &str = "switchboard_resume_takeovers_total";
/// Durable connections this node dropped without a word because another node
/// claimed them (it was paused, or cut off, and woke to a newer claim).
pub const RESUME_FENCED: &str = "switchboard_resume_fenced_total";

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

/// Always 1, labelled with the build: `version`, `os`, `arch`.
pub const BUILD_INFO: &str = "switchboard_build_info";

/// The series without labels, zero until their first event.
const UNLABELLED_COUNTERS: &[&str] = &[
    HTTP_REFUSED,
    HTTP_RESERVED_EVICTED,
    HTTP_HEADER_TIMEOUTS,
    ACCEPT_ERRORS,
];

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histograms are drained and idle series trimmed.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// The `process_*` series (CPU, memory, open files, start time), read on each scrape.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

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
    start_series();
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
    let handle = HANDLE.get().and_then(Option::as_ref)?;
    if let Some(process) = PROCESS.get() {
        process.collect();
    }
    Some(handle.render())
}

/// The series that exist from the start, so that a scrape before the first
/// event shows them (at zero) rather than nothing: the node's own counters,
/// `build_info`, and the `process_*` series.
fn start_series() {
    for name in UNLABELLED_COUNTERS {
        metrics::counter!(*name).increment(0);
    }
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "os" => std::env::consts::OS,
        "arch" => std::env::consts::ARCH
    )
    .set(1.0);
    let process = PROCESS.get_or_init(metrics_process::Collector::default);
    process.describe();
    process.collect();
}

/// The series of a hub, at zero, from when the node first has it: its
/// connections and messages in and out. (Per-method invocation series
/// appear with each method's first call.)
pub fn start_hub_series(tenant: &str, hub: &str) {
    let (tenant, hub) = (tenant.to_owned(), hub.to_owned());
    metrics::gauge!(CONNECTIONS, "tenant" => tenant.clone(), "hub" => hub.clone()).increment(0.0);
    metrics::counter!(MESSAGES_IN, "tenant" => tenant.clone(), "hub" => hub.clone()).increment(0);
    metrics::counter!(MESSAGES_OUT, "tenant" => tenant, "hub" => hub).increment(0);
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
    describe_gauge!(
        BUILD_INFO,
        "Always 1; its labels name the build (version, os, arch)."
    );
    describe_counter!(
        SLOW_CONSUMERS_CLOSED,
        "Connections closed because their client was too slow: queue_bytes (outbound byte budget), queue_records, write_timeout."
    );
}

/// The `q` quantile (0..1) of the observations between two readings of a
/// histogram's cumulative buckets (`(le, count)`, sorted by `le`), by linear
/// interpolation inside the bucket, as Prometheus' `histogram_quantile`.
/// None when nothing was observed in between.
pub fn quantile(q: f64, before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, n)| *n);
            (le, (n - was).max(0.0))
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, n) in &delta {
        if n >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = n - lower.1;
            let share = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, n);
    }
    Some(lower.0)
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

    #[test]
    fn series_exist_before_their_first_event() {
        assert!(install());
        start_hub_series("t2", "h2");
        let text = render().expect("a recorder");
        for line in [
            "switchboard_http_refused_total 0",
            "switchboard_accept_errors_total 0",
            r#"switchboard_connections{tenant="t2",hub="h2"} 0"#,
            r#"switchboard_messages_in_total{tenant="t2",hub="h2"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let build = format!(
            r#"switchboard_build_info{{version="{}","#,
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{text}");
        #[cfg(target_os = "linux")]
        for series in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "no {series} in\n{text}"
            );
        }
    }

    #[test]
    fn quantiles_of_the_observations_in_between() {
        let before = [
            (0.001, 10.0),
            (0.01, 10.0),
            (0.1, 10.0),
            (f64::INFINITY, 10.0),
        ];
        // 100 more, 90 of them under 1 ms, 10 between 1 and 10 ms.
        let after = [
            (0.001, 100.0),
            (0.01, 110.0),
            (0.1, 110.0),
            (f64::INFINITY, 110.0),
        ];
        let p50 = quantile(0.5, &before, &after).expect("observations");
        assert!(p50 > 0.0 && p50 <= 0.001, "{p50}");
        let p99 = quantile(0.99, &before, &after).expect("observations");
        assert!(p99 > 0.001 && p99 <= 0.01, "{p99}");
        assert_eq!(quantile(0.99, &after, &after), None);
        // Everything above the last finite bound: that bound.
        let slow = [(0.001, 0.0), (f64::INFINITY, 5.0)];
        assert_eq!(quantile(0.99, &[], &slow), Some(0.001));
    }
}
