//! Structured logs on stderr (stdout is kept for command output and first-start credentials).
//! Filter with `RUST_LOG`; `PARLEY_LOG_FORMAT=json` switches to one JSON object per line.

use std::io::{IsTerminal as _, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
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
/// How long the writer thread, woken by a first line, waits for more before writing them all
/// with one system call. Lines reach stderr at most this late.
const BATCH_DELAY: Duration = Duration::from_millis(5);

/// Install the global subscriber. `default_filter` applies when `RUST_LOG` is unset or invalid.
/// Calling it twice is harmless (the second call does nothing). Keep the returned guard alive
/// until exit: dropping it flushes what is queued.
///
/// Logging never takes the server down: lines are handed to a writer thread through a bounded
/// queue (a stalled reader of stderr makes the server drop lines, not wait), and write errors
/// (a closed pipe, a restarting log shipper) are ignored instead of reported with `eprintln!`,
/// which panics when stderr itself is the broken stream.
///
/// Lines are written in batches ([`LogQueue`]): one wake-up of the writer thread and one
/// `write` per batch, not per line (with a line per request, a wake-up and a write per line
/// cost a sixth of the CPU of a cheap request, measured under `bench/platform.sh`).
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let queue = Arc::new(LogQueue::default());
    let guard = LogGuard::start(Arc::clone(&queue), std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(QueueWriter(queue));
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    guard
}

/// Log lines waiting for the writer thread: one bounded buffer of whole lines, swapped out by
/// the writer in one piece.
#[derive(Default)]
pub struct LogQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct QueueState {
    bytes: Vec<u8>,
    lines: usize,
    /// The writer thread sleeps on `wake` and must be notified of the next line.
    writer_asleep: bool,
    closed: bool,
}

fn lock(m: &Mutex<QueueState>) -> MutexGuard<'_, QueueState> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LogQueue {
    /// Queue one formatted line (dropped when [`QUEUED_LINES`] are already waiting).
    fn push(&self, line: &[u8]) {
        let mut state = lock(&self.state);
        if state.lines >= QUEUED_LINES {
            return;
        }
        state.bytes.extend_from_slice(line);
        state.lines += 1;
        let wake = std::mem::take(&mut state.writer_asleep);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writer thread: wait for a first line, let more gather for [`BATCH_DELAY`], write
    /// them all; until closed and drained.
    fn run(&self, mut out: impl Write) {
        let mut spare = Vec::new();
        loop {
            let mut state = lock(&self.state);
            while state.bytes.is_empty() && !state.closed {
                state.writer_asleep = true;
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.bytes.is_empty() {
                return; // closed and drained
            }
            if !state.closed {
                drop(state);
                std::thread::sleep(BATCH_DELAY);
                state = lock(&self.state);
            }
            std::mem::swap(&mut state.bytes, &mut spare);
            state.lines = 0;
            drop(state);
            // Errors (a closed pipe) are ignored: the lines are dropped.
            let _ = out.write_all(&spare);
            let _ = out.flush();
            spare.clear();
        }
    }
}

/// One line being written by the fmt layer (it formats a whole event, then writes it once).
pub struct LogLine<'a>(&'a LogQueue);

impl Write for LogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fmt layer's writer: each event becomes one [`LogLine`] into the queue.
pub struct QueueWriter(Arc<LogQueue>);

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(&self.0)
    }
}

/// The log writer thread; dropping this writes what is queued and stops it.
pub struct LogGuard {
    queue: Arc<LogQueue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogGuard {
    fn start(queue: Arc<LogQueue>, out: impl Write + Send + 'static) -> LogGuard {
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("parley-log".into())
            .spawn(move || q.run(out))
            .ok();
        LogGuard { queue, thread }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        lock(&self.queue.state).closed = true;
        self.queue.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose output the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn written(sink: &Sink) -> String {
        let bytes = sink
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn lines_reach_the_writer_in_order_soon_and_the_rest_when_the_guard_drops() {
        let queue = Arc::new(LogQueue::default());
        let sink = Sink::default();
        let guard = LogGuard::start(Arc::clone(&queue), sink.clone());
        let queue = QueueWriter(queue);
        queue.make_writer().write_all(b"one\n").expect("write");
        queue.make_writer().write_all(b"two\n").expect("write");
        // Written without any further line or flush (after BATCH_DELAY).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while written(&sink) != "one\ntwo\n" && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(written(&sink), "one\ntwo\n");
        queue.make_writer().write_all(b"three\n").expect("write");
        drop(guard);
        assert_eq!(written(&sink), "one\ntwo\nthree\n");
    }

    #[test]
    fn a_stalled_writer_makes_new_lines_drop_not_wait() {
        // No writer thread: nothing drains the queue.
        let writer = QueueWriter(Arc::new(LogQueue::default()));
        for i in 0..QUEUED_LINES + 10 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .expect("never an error");
        }
        let state = lock(&writer.0.state);
        assert_eq!(state.lines, QUEUED_LINES);
        assert!(String::from_utf8_lossy(&state.bytes)
            .ends_with(&format!("line {}\n", QUEUED_LINES - 1)));
    }
}
