//! Logs and traces.
//!
//! Logs: `RUST_LOG` (default `info`), JSON lines when `LOG_FORMAT=json`. Traces: every command carries a W3C
//! `traceparent` into its event (outbox row, AMQP header), and each side puts its trace id on its log lines.
//! Built with the `otlp` feature and run with `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over
//! OTLP/HTTP, with [`continue_trace`] making the command's handler and the projector's apply children of the
//! `traceparent`: one trace from POST to view in Jaeger or Tempo. Without the feature, or without the variable,
//! nothing is exported and [`continue_trace`] does nothing.

use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once. Later calls (tests starting several services in one process) are no-ops.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // `RUST_LOG` filters the logs only: exported spans do not depend on how much is logged.
    let logs = tracing_subscriber::fmt::layer();
    let logs = if json { logs.json().flatten_event(true).boxed() } else { logs.boxed() };
    let registry = tracing_subscriber::registry().with(logs.with_filter(filter));
    #[cfg(feature = "otlp")]
    let registry = registry.with(otlp::layer().map(|layer| layer.with_filter(otlp::spans())));
    let _ = registry.try_init();
}

/// Makes `span` a child of the remote span in `traceparent` (with the `otlp` feature and an exporter running).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    #[cfg(feature = "otlp")]
    otlp::continue_trace(span, traceparent);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, traceparent);
}

/// Exports the spans still buffered; call before the process exits.
pub fn flush() {
    #[cfg(feature = "otlp")]
    otlp::flush();
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::collections::HashMap;
    use std::sync::OnceLock;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The OTLP layer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads it); the service name is the
    /// binary's.
    pub fn layer<S>() -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let exporter = match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => exporter,
            Err(err) => {
                eprintln!("OTLP export disabled: {err}");
                return None;
            }
        };
        let service = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name().map(|name| name.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "orders".to_owned());
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let tracer = provider.tracer("orders");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    /// Which spans are exported: the platform's own, at info and above.
    pub fn spans() -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::new("warn,command_service=info,query_service=info")
    }

    pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
        if PROVIDER.get().is_none() {
            return;
        }
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
        let _ = span.set_parent(parent);
    }

    pub fn flush() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}
