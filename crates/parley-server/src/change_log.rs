//! Change-log upkeep on every node: the trimming task (docs/change-log.md, "Trimming").
//!
//! Every `--change-log-trim-interval-secs` (default a minute) the node deletes events that every registered consumer has passed
//! and that are older than `--change-log-retention-secs`, in batches of [`TRIM_BATCH`]. Running
//! it on several nodes at once is safe (each batch is a plain conditional delete).

use std::sync::Arc;
use std::time::Duration;

use parley_core::store::{Store, StoreResult};
use parley_core::Timestamp;
use prometheus::{IntCounter, Registry};

/// Events deleted per trim call (short transactions; writers interleave).
pub const TRIM_BATCH: u32 = 1000;
/// The webhook sender's consumer name (its positions are in `log_positions`).
pub const WEBHOOKS_CONSUMER: &str = "webhooks";

/// The consumers whose positions trimming waits for: an event goes only once each of them has
/// passed it. A consumer that exists but is not listed here may lose events it has not read.
pub fn registered_consumers() -> Vec<String> {
    vec![WEBHOOKS_CONSUMER.to_owned()]
}

/// `parley_change_log_trimmed_total`: change-log events deleted by trimming on this node.
pub fn register_trimmed_counter(registry: &Registry) -> Result<IntCounter, prometheus::Error> {
    let counter = IntCounter::new(
        "parley_change_log_trimmed_total",
        "Change-log events deleted by trimming (passed by every consumer and past retention)",
    )?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

/// Trim once: delete events older than `now - retention` that every consumer in `consumers`
/// has passed, in batches of [`TRIM_BATCH`] until a batch comes back short. Returns how many
/// were deleted.
pub async fn trim_change_log(
    store: &dyn Store,
    consumers: &[String],
    retention: Duration,
    now: Timestamp,
) -> StoreResult<u64> {
    let cutoff = now.plus_secs(-i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    let consumers: Vec<&str> = consumers.iter().map(String::as_str).collect();
    let mut total = 0;
    loop {
        let deleted = store.trim_events(&consumers, cutoff, TRIM_BATCH).await?;
        total += deleted;
        if deleted < u64::from(TRIM_BATCH) {
            return Ok(total);
        }
    }
}

/// Trim every `interval` (the first pass at once) until the task is aborted.
pub async fn trim_forever(
    store: Arc<dyn Store>,
    consumers: Vec<String>,
    retention: Duration,
    interval: Duration,
    trimmed: Option<IntCounter>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match trim_change_log(store.as_ref(), &consumers, retention, Timestamp::now()).await {
            Ok(0) => tracing::debug!("change-log trim: nothing to delete"),
            Ok(n) => {
                if let Some(counter) = &trimmed {
                    counter.inc_by(n);
                }
                tracing::info!(
                    deleted = n,
                    retention_secs = retention.as_secs(),
                    "change-log trim: deleted events every consumer has passed"
                );
            }
            Err(e) => tracing::warn!(error = %e, "change-log trim failed; retrying next round"),
        }
    }
}
