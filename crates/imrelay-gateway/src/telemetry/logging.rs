//! Log set-up: `tracing` to stderr, as JSON (one object per line, for log
//! shippers; the default for `imrelay serve` when stderr is not a terminal)
//! or human-readable text.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with the current span's fields
    /// (`message_id`, `trace_id`) on every line.
    Json,
    /// Text for a terminal.
    Human,
}

impl LogFormat {
    /// `IMRELAY_LOG_FORMAT` (`json` or `human`) if set; else JSON for a server
    /// whose stderr is not a terminal, human otherwise.
    pub fn from_env(server: bool) -> LogFormat {
        match std::env::var("IMRELAY_LOG_FORMAT").ok().as_deref() {
            Some("json") => LogFormat::Json,
            Some("human") | Some("text") => LogFormat::Human,
            Some(other) => {
                eprintln!(
                    "imrelay: IMRELAY_LOG_FORMAT=`{other}` is not `json` or `human`; using human"
                );
                LogFormat::Human
            }
            None => {
                use std::io::IsTerminal;
                if server && !std::io::stderr().is_terminal() {
                    LogFormat::Json
                } else {
                    LogFormat::Human
                }
            }
        }
    }
}

/// Install the global subscriber (no-op if one is installed). `filter` is an
/// `EnvFilter` directive (`info`, `imrelay_gateway=debug`); `RUST_LOG` wins.
pub fn init_logs(filter: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    init_with_writer(&filter, format, std::io::stderr);
}

/// [`init_logs`] writing to `writer` and ignoring `RUST_LOG` (tests capture
/// log lines in a buffer this way, in the production format).
pub fn init_with_writer<W>(filter: &str, format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    type Base = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;

    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
    let mut layers: Vec<Box<dyn Layer<Base> + Send + Sync>> = vec![match format {
        // The span list puts the delivery span's `message_id` and `trace_id`
        // on every line logged while a message is being sent.
        LogFormat::Json => fmt
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
        LogFormat::Human => fmt.boxed(),
    }];
    #[cfg(feature = "otlp")]
    if let Some(endpoint) = super::otlp::endpoint_from_env() {
        match super::otlp::layer(&endpoint) {
            Ok(l) => layers.push(l.boxed()),
            Err(e) => eprintln!("imrelay: OTLP export disabled: {e}"),
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
}
