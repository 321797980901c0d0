//! Logs, traces and the access log: the `tracing` subscriber the node runs
//! with, and the spans other modules open.
//!
//! - Logs go to stderr as text (the default) or one JSON object a line
//!   (`--log-format json`), filtered by `RUST_LOG` (default `info`).
//! - With an OTLP endpoint configured, spans are also exported over
//!   OTLP/HTTP ([`otlp`]); an incoming W3C `traceparent` makes the request's
//!   span a child of the caller's ([`context`]).
//! - Every HTTP request gets one line under the `switchboard::access` target
//!   ([`access`]), so it can be filtered on its own.
//!
//! The spans: `http.request` (one per request, the caller's trace joined),
//! `negotiate`, `connection` (a connection's life: tenant, hub, id,
//! transport, protocol), `invoke` (a hub method call: method, plugin,
//! duration, outcome), and `backplane.publish` / `backplane.deliver`.

pub mod access;
pub mod context;
pub mod otlp;

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields, spans.
    Json,
}

/// What the subscriber is built from (the `serve` options).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How log lines are written (`--log-format`).
    pub log_format: LogFormat,
    /// Where spans are exported; `None`: no export.
    pub otlp: Option<otlp::Export>,
}

/// Keeps the exporter running; dropping it flushes the spans not sent yet.
#[must_use = "dropping the guard stops the span export"]
pub struct Guard {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("exporting", &self.tracer.is_some())
            .finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take()
            && let Err(e) = tracer.shutdown()
        {
            eprintln!("warning: flushing the last spans failed: {e}");
        }
    }
}

/// Installs the process's subscriber: the log layer, and the OTLP layer when
/// an endpoint is configured. Fails only when the exporter cannot be built
/// (a malformed endpoint).
pub fn init(options: &Options) -> anyhow::Result<Guard> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let logs = match options.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
    };
    let (traces, tracer) = match &options.otlp {
        Some(export) => {
            let (layer, provider) = otlp::layer(export)?;
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    context::install_propagator();
    Ok(Guard { tracer })
}
