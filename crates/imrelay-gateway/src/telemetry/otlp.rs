//! OTLP trace export (cargo feature `otlp`), so teams with Jaeger, SkyWalking
//! or an OpenTelemetry collector see a message's spans: the API request that
//! accepted it (`request`), each delivery attempt (`delivery`) and each
//! platform call (`platform_call`), all in one trace: imrelay's trace id is
//! the W3C trace id when the producer sent a `traceparent`, and stored ids
//! link the dispatcher's spans back to it.
//!
//! Enabled when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; OTLP over HTTP/protobuf.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The tracer provider, to flush at exit.
pub static PROVIDER: std::sync::OnceLock<SdkTracerProvider> = std::sync::OnceLock::new();

/// The OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for `{endpoint}`: {source}")]
pub struct ExporterError {
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// A tracing layer exporting spans to `endpoint` (e.g.
/// `http://jaeger:4318/v1/traces`).
pub fn layer<S>(endpoint: &str) -> Result<impl tracing_subscriber::Layer<S>, ExporterError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // reqwest is built without a default TLS crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| ExporterError {
            endpoint: endpoint.to_string(),
            source,
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("imrelay").build())
        .build();
    let tracer = provider.tracer("imrelay");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// The endpoint from the standard environment variables, if any.
pub fn endpoint_from_env() -> Option<String> {
    let traces = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok();
    traces
        .or_else(|| {
            std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
        .filter(|e| !e.is_empty())
}

/// Make `span` a child of W3C trace `trace_id` (32 hex digits), so spans made
/// later (the dispatcher's) join the producer's trace. Other ids are left alone.
pub fn join_trace(span: &tracing::Span, trace_id: &str) {
    let Ok(tid) = TraceId::from_hex(trace_id) else {
        return;
    };
    if trace_id.len() != 32 || tid == TraceId::INVALID {
        return;
    }
    // A synthetic remote parent: the trace is what links the spans.
    let sid = SpanId::from_bytes(rand::random::<[u8; 8]>());
    let parent = SpanContext::new(tid, sid, TraceFlags::SAMPLED, true, TraceState::default());
    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
}

/// Export what is buffered (at shutdown, and in tests).
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}
