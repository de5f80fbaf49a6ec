//! Prometheus metrics of the push engine.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Prometheus metrics of the push engine.
#[derive(Clone)]
pub struct PushMetrics {
    pub(super) sends: IntCounterVec,
    pub(super) send_latency: HistogramVec,
    pub(super) event_to_send: HistogramVec,
    pub(super) pruned: IntCounterVec,
    pub(super) queue: IntGaugeVec,
    pub(super) unhealthy: IntGauge,
    pub(super) given_up: IntCounterVec,
}

impl PushMetrics {
    /// Create and register in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        ];
        let sends = IntCounterVec::new(
            Opts::new(
                "parley_push_sends_total",
                "Push sends by provider and outcome",
            ),
            &["provider", "outcome"],
        )?;
        let send_latency = HistogramVec::new(
            HistogramOpts::new(
                "parley_push_send_duration_seconds",
                "Provider request latency",
            )
            .buckets(buckets.clone()),
            &["provider"],
        )?;
        let event_to_send = HistogramVec::new(
            HistogramOpts::new(
                "parley_push_event_to_send_seconds",
                "From the chat event to the provider's answer",
            )
            .buckets(buckets),
            &["provider"],
        )?;
        let pruned = IntCounterVec::new(
            Opts::new(
                "parley_push_pruned_bindings_total",
                "Bindings deleted on dead-token answers",
            ),
            &["provider"],
        )?;
        let queue = IntGaugeVec::new(
            Opts::new("parley_push_queue_depth", "Push work waiting"),
            &["stage"],
        )?;
        let unhealthy = IntGauge::new(
            "parley_push_unhealthy_credentials",
            "Credentials currently failing",
        )?;
        registry.register(Box::new(sends.clone()))?;
        registry.register(Box::new(send_latency.clone()))?;
        registry.register(Box::new(event_to_send.clone()))?;
        registry.register(Box::new(pruned.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        let given_up = IntCounterVec::new(
            Opts::new(
                "parley_push_given_up_total",
                "Deliveries dropped after the last attempt or past the age bound",
            ),
            &["provider"],
        )?;
        registry.register(Box::new(unhealthy.clone()))?;
        registry.register(Box::new(given_up.clone()))?;
        Ok(Self {
            sends,
            send_latency,
            event_to_send,
            pruned,
            queue,
            unhealthy,
            given_up,
        })
    }
}
