//! Prometheus metrics of webhook calls.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::params::known_event;

/// `parley_webhook_calls_total{event,outcome}` and
/// `parley_webhook_call_duration_seconds{event}`. The `event` label is one of the 23 Twilio event
/// names (anything else counts as `other`), `outcome` one of [`crate::Outcome::label`]'s values,
/// so both label sets are bounded.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    calls: IntCounterVec,
    duration: HistogramVec,
}

impl WebhookMetrics {
    /// Create and register in `registry` (fails if they are registered there already).
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "parley_webhook_calls_total",
                "Webhook call attempts by event and outcome",
            ),
            &["event", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "parley_webhook_call_duration_seconds",
                "Webhook call attempt duration, until the answer is read or the call fails",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
            ]),
            &["event"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { calls, duration })
    }

    /// Count one attempt.
    pub(crate) fn observe(&self, event: &str, outcome: &str, took: Duration) {
        let event = known_event(event).unwrap_or("other");
        self.calls.with_label_values(&[event, outcome]).inc();
        self.duration
            .with_label_values(&[event])
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_counted() {
        let registry = Registry::new();
        let m = WebhookMetrics::register(&registry).unwrap();
        m.observe("onMessageSent", "delivered", Duration::from_millis(20));
        m.observe("onMessageSent", "delivered", Duration::from_millis(30));
        m.observe("made-up", "timeout", Duration::from_secs(5));
        assert_eq!(
            m.calls
                .with_label_values(&["onMessageSent", "delivered"])
                .get(),
            2
        );
        assert_eq!(m.calls.with_label_values(&["other", "timeout"]).get(), 1);
        assert_eq!(
            m.duration
                .with_label_values(&["onMessageSent"])
                .get_sample_count(),
            2
        );
        assert!(
            WebhookMetrics::register(&registry).is_err(),
            "registered once"
        );
    }
}
