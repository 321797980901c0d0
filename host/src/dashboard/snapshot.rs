//! One second of the node as the dashboard shows it, computed from two
//! readings of its metrics and what it knows of its hubs. Pure: the
//! [`Sampler`] keeps the previous reading and the recent events; the caller
//! gathers the inputs (see `feed`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use serde_json::{Value, json};

use super::prom::Sample;
use crate::backplane::nats::registry::NodeRecord;
use crate::metrics::quantile;
use crate::plugin::registry::HubListing;

/// Events kept for the page, newest last.
pub const MAX_EVENTS: usize = 100;

/// What the node says of itself this second.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFacts {
    /// The node id in the cluster; `single` for a node alone.
    pub id: String,
    /// The switchboard version, from the crate.
    pub version: &'static str,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Whether the node's readiness check passes (not draining, and its cluster ready if any).
    pub ready: bool,
    /// Whether the node is draining (shutting down).
    pub draining: bool,
    /// Whether the node is part of a cluster (NATS backplane).
    pub cluster: bool,
    /// Whether the backplane's NATS connection is up; `None` for a node alone.
    pub nats_connected: Option<bool>,
    /// Client connections open on this node.
    pub connections: usize,
}

/// One node of the cluster as the page lists it: the record it writes (for
/// this node, what it would write), its fields at the top of the node's JSON
/// object, and how this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterNode {
    /// What the node says of itself; for this node, its URL is left out.
    #[serde(flatten)]
    pub record: NodeRecord,
    /// Its record has not been rewritten for a while: it stopped, or lost NATS.
    pub down: bool,
    /// The node serving this dashboard.
    pub this: bool,
    /// Seconds since the node last wrote its record (0 for this node).
    pub seen_secs_ago: u64,
}

/// Connections of one hub on this node, by transport and protocol.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HubConnections {
    /// Connections of the hub on this node.
    pub total: usize,
    /// Connections by transport (`WebSockets`, `ServerSentEvents`, `LongPolling`).
    pub transports: BTreeMap<&'static str, usize>,
    /// Connections by hub protocol (`json`, `messagepack`).
    pub protocols: BTreeMap<&'static str, usize>,
}

/// Everything one snapshot is made of.
#[derive(Debug)]
pub struct Inputs {
    /// When the reading was taken, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// What the node says of itself.
    pub node: NodeFacts,
    /// This node's metrics, read back from its Prometheus text.
    pub samples: Vec<Sample>,
    /// Connections on this node by (tenant, hub).
    pub connections: BTreeMap<(String, String), HubConnections>,
    /// Each tenant's hubs, with their plugin versions.
    pub plugins: Vec<(String, Vec<HubListing>)>,
    /// The other nodes of the cluster, as the registry lists them, or why
    /// it could not be read (alone: none).
    pub others: Result<Vec<ClusterNode>, String>,
}

/// Counters of one hub, summed over methods and outcomes.
#[derive(Debug, Clone, Default)]
struct HubTotals {
    messages_in: f64,
    messages_out: f64,
    invocations: f64,
    errors: f64,
    limit_hits: f64,
    /// Cumulative latency buckets (`le` seconds, count), sorted by `le`.
    buckets: Vec<(f64, f64)>,
    /// Plugin failures by kind (trap, timeout, memory, instantiate).
    plugin_errors: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default)]
struct Totals {
    hubs: BTreeMap<(String, String), HubTotals>,
    lost: f64,
    late: f64,
    disconnects: f64,
    lag_buckets: Vec<(f64, f64)>,
}

fn add_bucket(buckets: &mut Vec<(f64, f64)>, le: f64, n: f64) {
    match buckets.iter_mut().find(|(b, _)| *b == le) {
        Some(entry) => entry.1 += n,
        None => {
            buckets.push((le, n));
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
}

fn le_of(sample: &Sample) -> Option<f64> {
    match sample.label("le") {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

impl Totals {
    fn from_samples(samples: &[Sample]) -> Totals {
        use crate::metrics as m;
        let mut t = Totals::default();
        for s in samples {
            let key = || (s.label("tenant").to_owned(), s.label("hub").to_owned());
            match s.name.as_str() {
                n if n == m::MESSAGES_IN => t.hubs.entry(key()).or_default().messages_in += s.value,
                n if n == m::MESSAGES_OUT => {
                    t.hubs.entry(key()).or_default().messages_out += s.value
                }
                n if n == m::INVOCATIONS => {
                    let hub = t.hubs.entry(key()).or_default();
                    hub.invocations += s.value;
                    if s.label("outcome") != "ok" {
                        hub.errors += s.value;
                    }
                }
                n if n == m::LIMIT_HITS => t.hubs.entry(key()).or_default().limit_hits += s.value,
                n if n == m::PLUGIN_ERRORS => {
                    *t.hubs
                        .entry(key())
                        .or_default()
                        .plugin_errors
                        .entry(s.label("kind").to_owned())
                        .or_default() += s.value;
                }
                n if n.strip_suffix("_bucket") == Some(m::INVOCATION_SECONDS) => {
                    if let Some(le) = le_of(s) {
                        add_bucket(&mut t.hubs.entry(key()).or_default().buckets, le, s.value);
                    }
                }
                "switchboard_backplane_lost_messages_total" => t.lost += s.value,
                "switchboard_backplane_published_late_total" => t.late += s.value,
                "switchboard_backplane_disconnects_total" => t.disconnects += s.value,
                "switchboard_backplane_lag_seconds_bucket" => {
                    if let Some(le) = le_of(s) {
                        add_bucket(&mut t.lag_buckets, le, s.value);
                    }
                }
                _ => {}
            }
        }
        t
    }
}

/// One event the page lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When it happened (when the sampler saw it), in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `deploy`, `rollback`, `trap`, `cpu_limit`, `memory_limit`, `instantiate`, `nats`.
    pub kind: &'static str,
    /// What happened, for a person.
    pub text: String,
}

/// Turns readings into snapshots; keeps what the next one compares with.
#[derive(Debug, Default)]
pub struct Sampler {
    prev: Option<(u64, Totals)>,
    /// The serving version of each hub at the last reading.
    current: HashMap<(String, String), u64>,
    ready: Option<bool>,
    events: VecDeque<Event>,
}

fn per_sec(now: f64, before: Option<f64>, secs: f64) -> f64 {
    match before {
        Some(b) if secs > 0.0 => ((now - b).max(0.0) / secs * 10.0).round() / 10.0,
        _ => 0.0,
    }
}

impl Sampler {
    fn note(&mut self, at_ms: u64, kind: &'static str, text: String) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event { at_ms, kind, text });
    }

    /// The snapshot of `inputs`, as the JSON the page renders.
    pub fn snapshot(&mut self, inputs: Inputs) -> Value {
        let now = inputs.now_ms;
        let totals = Totals::from_samples(&inputs.samples);
        let prev = self.prev.take();
        let secs = prev
            .as_ref()
            .map_or(0.0, |(at, _)| now.saturating_sub(*at) as f64 / 1000.0);
        let before = prev.as_ref().map(|(_, t)| t);
        self.note_changes(now, &inputs, &totals, before);

        let mut keys: Vec<(String, String)> = totals.hubs.keys().cloned().collect();
        keys.extend(inputs.connections.keys().cloned());
        for (tenant, hubs) in &inputs.plugins {
            keys.extend(hubs.iter().map(|h| (tenant.clone(), h.hub.clone())));
        }
        keys.sort();
        keys.dedup();
        let empty = HubTotals::default();
        let hubs: Vec<Value> = keys
            .iter()
            .filter(|(t, h)| !t.is_empty() && !h.is_empty())
            .map(|key| {
                let t = totals.hubs.get(key).unwrap_or(&empty);
                let b = before.and_then(|b| b.hubs.get(key));
                let p99 = b
                    .map(|b| b.buckets.as_slice())
                    .or(before.map(|_| &[][..]))
                    .and_then(|bb| quantile(0.99, bb, &t.buckets))
                    .map(|s| (s * 1e5).round() / 100.0);
                let connections = inputs.connections.get(key).cloned().unwrap_or_default();
                json!({
                    "tenant": key.0,
                    "hub": key.1,
                    "connections": connections,
                    "in_per_sec": per_sec(t.messages_in, b.map(|b| b.messages_in).or(before.map(|_| 0.0)), secs),
                    "out_per_sec": per_sec(t.messages_out, b.map(|b| b.messages_out).or(before.map(|_| 0.0)), secs),
                    "invocations_per_sec": per_sec(t.invocations, b.map(|b| b.invocations).or(before.map(|_| 0.0)), secs),
                    "p99_ms": p99,
                    "errors_total": t.errors,
                    "limit_hits_total": t.limit_hits,
                    "plugin_errors_total": t.plugin_errors.values().sum::<f64>(),
                })
            })
            .collect();
        let lag_p99 = before
            .and_then(|b| quantile(0.99, &b.lag_buckets, &totals.lag_buckets))
            .map(|s| (s * 1e5).round() / 100.0);
        let plugins: Vec<Value> = inputs
            .plugins
            .iter()
            .flat_map(|(tenant, hubs)| {
                hubs.iter().map(move |h| {
                    let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
                    v["tenant"] = Value::String(tenant.clone());
                    v
                })
            })
            .collect();
        let own = ClusterNode {
            record: NodeRecord {
                id: inputs.node.id.clone(),
                version: inputs.node.version.to_owned(),
                url: None,
                uptime_secs: inputs.node.uptime_secs,
                ready: inputs.node.ready,
                draining: inputs.node.draining,
                connections: inputs.node.connections as u64,
                lag_p99_ms: lag_p99,
                lost: totals.lost as u64,
                late: totals.late as u64,
            },
            down: false,
            this: true,
            seen_secs_ago: 0,
        };
        let (mut nodes, cluster_error) = match &inputs.others {
            Ok(others) => (others.clone(), None),
            Err(e) => (Vec::new(), Some(e.clone())),
        };
        nodes.retain(|n| n.record.id != own.record.id);
        nodes.insert(0, own);
        let snapshot = json!({
            "at_ms": now,
            "node": inputs.node,
            "nodes": nodes,
            "cluster_error": cluster_error,
            "backplane": {
                "lost_total": totals.lost,
                "late_total": totals.late,
                "disconnects_total": totals.disconnects,
                "lag_p99_ms": lag_p99,
            },
            "hubs": hubs,
            "plugins": plugins,
            "events": self.events,
        });
        self.prev = Some((now, totals));
        snapshot
    }

    /// Records deploys, rollbacks, plugin failures and NATS changes seen
    /// since the previous reading.
    fn note_changes(
        &mut self,
        now: u64,
        inputs: &Inputs,
        totals: &Totals,
        before: Option<&Totals>,
    ) {
        let first = self.ready.is_none();
        if let Some(connected) = inputs.node.nats_connected
            && self.ready.is_some_and(|was| was != connected)
        {
            let text = if connected {
                "NATS connection restored".to_owned()
            } else {
                "NATS disconnected".to_owned()
            };
            self.note(now, "nats", text);
        }
        self.ready = Some(inputs.node.nats_connected.unwrap_or(true));
        if let Some(before) = before {
            if totals.disconnects > before.disconnects {
                self.note(now, "nats", "the backplane lost its NATS connection".into());
            }
            for (key, t) in &totals.hubs {
                for (kind, n) in &t.plugin_errors {
                    let was = before
                        .hubs
                        .get(key)
                        .and_then(|b| b.plugin_errors.get(kind))
                        .copied()
                        .unwrap_or(0.0);
                    if *n > was {
                        let (label, what) = match kind.as_str() {
                            "timeout" => ("cpu_limit", "stopped at its CPU limit"),
                            "memory" => ("memory_limit", "stopped at its memory limit"),
                            "instantiate" => ("instantiate", "could not be instantiated"),
                            _ => ("trap", "trapped"),
                        };
                        let times = n - was;
                        self.note(
                            now,
                            label,
                            format!("{}/{}: plugin {what} ({times} times)", key.0, key.1),
                        );
                    }
                }
            }
        }
        for (tenant, hubs) in &inputs.plugins {
            for h in hubs {
                let key = (tenant.clone(), h.hub.clone());
                let was = self.current.insert(key, h.current);
                if first || h.current == 0 {
                    continue;
                }
                let newest = h.versions.iter().map(|v| v.info.version).max();
                let size = h
                    .versions
                    .iter()
                    .find(|v| v.current)
                    .map_or(0, |v| v.info.size);
                if was == Some(h.current) {
                    continue;
                }
                if newest == Some(h.current) && was.is_none_or(|w| w < h.current) {
                    self.note(
                        now,
                        "deploy",
                        format!(
                            "{tenant}/{}: version {} deployed ({size} bytes)",
                            h.hub, h.current
                        ),
                    );
                } else {
                    self.note(
                        now,
                        "rollback",
                        format!("{tenant}/{}: rolled back to version {}", h.hub, h.current),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::prom::parse;
    use crate::plugin::registry::VersionListing;
    use crate::plugin::versions::{Source, VersionInfo};

    fn node() -> NodeFacts {
        NodeFacts {
            id: "n1".into(),
            version: "0.1.0",
            uptime_secs: 5,
            ready: true,
            draining: false,
            cluster: false,
            nats_connected: None,
            connections: 1,
        }
    }

    fn listing(current: u64, versions: &[u64]) -> HubListing {
        HubListing {
            hub: "chat".into(),
            current,
            sha256: "ab".into(),
            methods: vec!["send".into()],
            versions: versions
                .iter()
                .map(|&v| VersionListing {
                    info: VersionInfo {
                        version: v,
                        sha256: format!("{v}"),
                        size: 100 * v,
                        deployed_at_ms: v,
                        source: Source::Api,
                    },
                    deployed_at: String::new(),
                    current: v == current,
                })
                .collect(),
        }
    }

    fn inputs(now_ms: u64, text: &str, plugins: HubListing) -> Inputs {
        Inputs {
            now_ms,
            node: node(),
            samples: parse(text, "switchboard_"),
            connections: BTreeMap::new(),
            plugins: vec![("demo".into(), vec![plugins])],
            others: Ok(Vec::new()),
        }
    }

    #[test]
    fn rates_p99_and_events_between_readings() {
        let mut sampler = Sampler::default();
        let first = sampler.snapshot(inputs(
            1_000,
            "switchboard_messages_in_total{tenant=\"demo\",hub=\"chat\"} 10\n",
            listing(1, &[1]),
        ));
        assert_eq!(
            first["hubs"][0]["in_per_sec"], 0.0,
            "no rate from one reading"
        );
        assert_eq!(first["events"].as_array().map(Vec::len), Some(0));
        let text = "switchboard_messages_in_total{tenant=\"demo\",hub=\"chat\"} 30\n\
switchboard_invocations_total{tenant=\"demo\",hub=\"chat\",method=\"send\",outcome=\"ok\"} 4\n\
switchboard_invocations_total{tenant=\"demo\",hub=\"chat\",method=\"send\",outcome=\"trap\"} 1\n\
switchboard_plugin_errors_total{tenant=\"demo\",hub=\"chat\",kind=\"timeout\"} 1\n\
switchboard_invocation_duration_seconds_bucket{tenant=\"demo\",hub=\"chat\",method=\"send\",le=\"0.001\"} 4\n\
switchboard_invocation_duration_seconds_bucket{tenant=\"demo\",hub=\"chat\",method=\"send\",le=\"0.01\"} 5\n\
switchboard_invocation_duration_seconds_bucket{tenant=\"demo\",hub=\"chat\",method=\"send\",le=\"+Inf\"} 5\n";
        let second = sampler.snapshot(inputs(3_000, text, listing(2, &[1, 2])));
        let hub = &second["hubs"][0];
        assert_eq!(hub["in_per_sec"], 10.0);
        assert_eq!(hub["invocations_per_sec"], 2.5);
        assert_eq!(hub["errors_total"], 1.0);
        let p99 = hub["p99_ms"].as_f64().expect("p99");
        assert!(p99 > 1.0 && p99 <= 10.0, "{p99}");
        let kinds: Vec<&str> = second["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["cpu_limit", "deploy"]);
        let third = sampler.snapshot(inputs(4_000, text, listing(1, &[1, 2])));
        let last = third["events"].as_array().and_then(|e| e.last()).cloned();
        assert_eq!(last.map(|e| e["kind"].clone()), Some(json!("rollback")));
    }

    #[test]
    fn events_are_bounded() {
        let mut sampler = Sampler::default();
        for i in 0..(MAX_EVENTS as u64 + 10) {
            sampler.note(i, "nats", format!("{i}"));
        }
        assert_eq!(sampler.events.len(), MAX_EVENTS);
        assert_eq!(sampler.events.front().map(|e| e.at_ms), Some(10));
    }
}
