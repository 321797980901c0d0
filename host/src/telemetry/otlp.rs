//! Span export over OTLP/HTTP (protobuf or JSON) to a collector.
//!
//! The endpoint is a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is: spans go
//! to `{endpoint}/v1/traces`. Without `--otlp-endpoint`, the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! turns export on too, and the exporter reads the rest of the standard
//! `OTEL_*` variables (headers, timeout, batch delay, `OTEL_SERVICE_NAME`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// `application/x-protobuf`, what collectors expect by default.
    #[value(name = "http-protobuf")]
    HttpProtobuf,
    /// `application/json`.
    #[value(name = "http-json")]
    HttpJson,
}

/// Where spans are sent.
#[derive(Debug, Clone)]
pub struct Export {
    /// The collector's base URL; none: the standard `OTEL_EXPORTER_OTLP_*` variables say.
    pub endpoint: Option<String>,
    /// How spans are encoded on the wire.
    pub encoding: Encoding,
}

impl Export {
    /// Export when an endpoint is given, or the standard variables name one;
    /// in `encoding`, else as `OTEL_EXPORTER_OTLP_PROTOCOL` says (`http/json`
    /// or `http/protobuf`), else protobuf.
    pub fn configured(
        endpoint: Option<String>,
        encoding: Option<Encoding>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<Export> {
        let standard = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
        .iter()
        .any(|var| env(var).is_some_and(|v| !v.is_empty()));
        let endpoint = endpoint.filter(|e| !e.is_empty());
        let encoding = encoding.unwrap_or_else(|| match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(p) if p.trim().eq_ignore_ascii_case("http/json") => Encoding::HttpJson,
            _ => Encoding::HttpProtobuf,
        });
        (endpoint.is_some() || standard).then_some(Export { endpoint, encoding })
    }

    /// The URL spans are posted to, when one was given here.
    pub fn traces_url(&self) -> Option<String> {
        self.endpoint
            .as_deref()
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }
}

/// The layer that turns `tracing` spans into OpenTelemetry spans, and the
/// provider that batches and exports them. Only this crate's spans are
/// exported, not every dependency's: its spans down to debug (the hot-path
/// ones, `invoke` and `backplane.*`, are debug so that they cost nothing
/// when not exported), and its events at info and above as span events.
pub fn layer<S>(
    export: &Export,
) -> anyhow::Result<(Box<dyn Layer<S> + Send + Sync>, SdkTracerProvider)>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(url) = export.traces_url() {
        builder = builder.with_endpoint(url);
    }
    // Always said: with both encodings built in, the exporter's own default is JSON.
    builder = builder.with_protocol(match export.encoding {
        Encoding::HttpProtobuf => Protocol::HttpBinary,
        Encoding::HttpJson => Protocol::HttpJson,
    });
    let exporter = builder.build()?;
    let resource = Resource::builder()
        .with_service_name(service_name())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("switchboard");
    let only_ours = tracing_subscriber::filter::filter_fn(|meta| {
        let most = if meta.is_span() {
            Level::DEBUG
        } else {
            Level::INFO
        };
        meta.target().starts_with("switchboard") && *meta.level() <= most
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(only_ours)
        .boxed();
    Ok((layer, provider))
}

/// `OTEL_SERVICE_NAME` when set, else `switchboard`.
fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "switchboard".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn export_is_on_with_an_endpoint_or_the_standard_variable() {
        assert!(Export::configured(None, None, no_env).is_none());
        assert!(Export::configured(Some(String::new()), None, no_env).is_none());
        let given = Export::configured(Some("http://c:4318/".into()), None, no_env);
        assert_eq!(
            given.and_then(|e| e.traces_url()).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let standard = Export::configured(None, None, |var| {
            (var == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318".to_owned())
        });
        assert!(standard.is_some_and(|e| e.traces_url().is_none()));
    }

    #[test]
    fn protobuf_unless_json_is_asked_for() {
        let url = || Some("http://c:4318".to_owned());
        let encoding = |given, env: Option<&str>| {
            Export::configured(url(), given, |var| {
                (var == "OTEL_EXPORTER_OTLP_PROTOCOL")
                    .then(|| env.map(str::to_owned))
                    .flatten()
            })
            .map(|e| e.encoding)
        };
        assert_eq!(encoding(None, None), Some(Encoding::HttpProtobuf));
        assert_eq!(encoding(None, Some("http/json")), Some(Encoding::HttpJson));
        assert_eq!(encoding(None, Some("grpc")), Some(Encoding::HttpProtobuf));
        assert_eq!(
            encoding(Some(Encoding::HttpProtobuf), Some("http/json")),
            Some(Encoding::HttpProtobuf)
        );
    }
}
