//! W3C trace context (`traceparent`, `tracestate`) read from incoming
//! requests, so that a request's span joins its caller's trace.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes W3C trace context the global propagator (for anything that asks it).
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Makes `span` a child of the trace the request's headers name, if they
/// name a valid one. Without an OTLP exporter the span has no OpenTelemetry
/// data and this does nothing.
pub fn join_caller(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The trace id of `span` as 32 hex digits, when it is exported.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_traceparent_is_left_alone() {
        let span = tracing::Span::none();
        join_caller(&span, &axum::http::HeaderMap::new());
        assert_eq!(trace_id(&span), None);
    }

    #[test]
    fn traceparent_parses_as_w3c_trace_context() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "traceparent",
            axum::http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let context =
            TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(&headers));
        let span = context.span();
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(span.span_context().is_remote());
    }
}
