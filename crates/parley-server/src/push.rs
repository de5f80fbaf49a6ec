//! The push engine of a `parley serve` node: the delivery worker (parley-push) over the same
//! store, and the test-notification hook the HTTP layer calls.

use std::sync::Arc;

use parley_core::binding::Binding;
use parley_http::{PushTester, TestVerdict};
use parley_push::{SendOutcome, Worker};

/// Sends test notifications through the node's worker (same senders, same credentials cache).
pub struct WorkerTester(pub Arc<Worker>);

#[async_trait::async_trait]
impl PushTester for WorkerTester {
    async fn send_test(&self, binding: &Binding, text: &str) -> Result<TestVerdict, String> {
        let outcome = self
            .0
            .send_test(binding, text)
            .await
            .map_err(|e| e.to_string())?;
        Ok(verdict(outcome))
    }
}

/// The wire form of a send outcome.
pub fn verdict(outcome: SendOutcome) -> TestVerdict {
    match outcome {
        SendOutcome::Delivered => TestVerdict {
            outcome: "delivered",
            reason: None,
        },
        SendOutcome::InvalidToken { reason } => TestVerdict {
            outcome: "invalid_token",
            reason: Some(reason),
        },
        SendOutcome::Retry { reason, .. } => TestVerdict {
            outcome: "retry",
            reason: Some(reason),
        },
        SendOutcome::CredentialFailed { reason } => TestVerdict {
            outcome: "credential_failed",
            reason: Some(reason),
        },
        SendOutcome::Failed { reason } => TestVerdict {
            outcome: "failed",
            reason: Some(reason),
        },
    }
}
