//! Structured logs on stderr (stdout is kept for command output and first-start credentials).
//! Filter with `RUST_LOG`; `PARLEY_LOG_FORMAT=json` switches to one JSON object per line.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log lines queued for stderr before new ones are dropped (a stalled log reader).
const QUEUED_LINES: usize = 16_384;

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset or invalid.
/// Calling it twice is harmless (the second call does nothing). Keep the returned guard alive
/// until exit: dropping it flushes what is queued.
///
/// Logging never takes the server down: lines are handed to a writer thread through a bounded
/// queue (a stalled reader of stderr makes the server drop lines, not wait), and write errors
/// (a closed pipe, a restarting log shipper) are ignored instead of reported with `eprintln!`,
/// which panics when stderr itself is the broken stream.
pub fn init(
    format: LogFormat,
    default_filter: &str,
) -> tracing_appender::non_blocking::WorkerGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("parley-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    guard
}
