//! A small runtime for background sends (post-event webhook calls) whose threads run at a
//! lower scheduling priority than request handling.
//!
//! On a machine short of CPU the kernel then runs requests first and the sends in what is
//! left: posting with webhooks on keeps its pace, and calls catch up as soon as there is room
//! (`docs/WEBHOOK-DELIVERY.md`). Only the HTTP calls run here; the store is used from the main
//! runtime, so no database lock is ever held by a low-priority thread.

use std::time::Duration;

use tokio::runtime::Handle;

/// The niceness (`nice`, 0–19) of the background threads: 10 gives them about a tenth of the
/// CPU share of a request thread when both want it.
pub const NICE: i32 = 10;

/// A running background runtime; dropping it stops the runtime after the sends in flight
/// finish (at most `grace`).
pub struct Background {
    handle: Handle,
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Background {
    /// Start `threads` worker threads named `name`, each lowered to [`NICE`] (where the system
    /// refuses, the thread keeps its priority and a warning is logged once per thread).
    pub fn start(name: &str, threads: usize, grace: Duration) -> std::io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(format!("{name}-owner"))
            .spawn(move || {
                // Returns when the sender is dropped (or sends).
                let _ = stopped.recv();
                runtime.shutdown_timeout(grace);
            })?;
        Ok(Background {
            handle,
            stop: Some(stop),
        })
    }

    /// Where to spawn background work.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// Lower the calling thread's priority to [`NICE`] (Linux: niceness is per thread); one
/// already lower keeps its own.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if now >= NICE {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::warn!(error = %e, "cannot lower the priority of a background thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    #[test]
    fn background_threads_run_at_the_lower_priority_and_stop_when_dropped() {
        let base = nice_of_this_thread();
        let bg = Background::start("parley-bg-test", 1, Duration::from_secs(1)).unwrap();
        let handle = bg.handle();
        let nice = handle
            .block_on(handle.spawn(async { nice_of_this_thread() }))
            .unwrap();
        assert_eq!(nice, base.max(NICE));
        // The thread that started it keeps its priority.
        assert_eq!(nice_of_this_thread(), base);
        drop(bg);
        // Once stopped, whatever is spawned there is cancelled.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let task = handle.spawn(async { 1 });
            if handle.block_on(task).is_err() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "runtime still running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
