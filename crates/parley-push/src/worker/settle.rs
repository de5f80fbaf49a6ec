//! The settler: stores send outcomes, many per transaction.

use std::sync::Arc;

use parley_core::push::Settle;
use parley_core::store::PushStore;
use tokio::sync::{mpsc, oneshot};

use super::Worker;

/// A settlement for the settler task, acknowledged once it is stored (or failed to be).
pub(super) struct Settlement {
    id: String,
    settle: Settle,
    done: oneshot::Sender<()>,
}

/// Write settlements as they come, many per transaction: every send's outcome is one write,
/// and on SQLite's single writer (or a PostgreSQL round trip each) writing them one by one
/// costs more than the sends themselves. A batch that fails is retried one by one, so one bad
/// row cannot keep the others unsettled.
async fn settle_loop(
    push: Arc<dyn PushStore>,
    mut rx: mpsc::UnboundedReceiver<Settlement>,
    max: usize,
) {
    let mut buf = Vec::with_capacity(max);
    while rx.recv_many(&mut buf, max).await > 0 {
        let (batch, done): (Vec<(String, Settle)>, Vec<oneshot::Sender<()>>) =
            buf.drain(..).map(|s| ((s.id, s.settle), s.done)).unzip();
        if let Err(e) = push.settle_deliveries(&batch).await {
            tracing::warn!(error = %e, n = batch.len(), "batch settle failed; settling one by one");
            for (id, settle) in &batch {
                if let Err(e) = push.settle_delivery(id, settle).await {
                    // The lease expires and another round retries; a repeat keeps its apns-id.
                    tracing::warn!(delivery = %id, error = %e, "cannot settle delivery");
                }
            }
        }
        for d in done {
            let _ = d.send(());
        }
    }
}

impl Worker {
    /// Store `settle` for delivery `id` through the settler task; returns once it is written.
    pub(super) async fn settle(&self, id: &str, settle: Settle) {
        let tx = self.settler.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(settle_loop(
                self.push.clone(),
                rx,
                self.config.settle_batch.max(1),
            ));
            tx
        });
        let (done, wait) = oneshot::channel();
        let item = Settlement {
            id: id.to_owned(),
            settle,
            done,
        };
        match tx.send(item) {
            Ok(()) => {
                let _ = wait.await;
            }
            Err(mpsc::error::SendError(item)) => {
                if let Err(e) = self.push.settle_delivery(&item.id, &item.settle).await {
                    tracing::warn!(delivery = %item.id, error = %e, "cannot settle delivery");
                }
            }
        }
    }
}
