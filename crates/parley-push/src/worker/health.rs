//! Credential health: pausing a failing credential, and the bad-token count that stops pruning
//! for a credential that looks misconfigured.

use std::collections::HashSet;
use std::time::Instant;

use super::{lock, Worker};

/// Distinct bad-token answers of one credential since its last successful send.
#[derive(Default)]
pub(super) struct BadTokens {
    tokens: HashSet<String>,
    /// Past the threshold: pruning stopped until a send succeeds.
    suspended: bool,
}

impl Worker {
    pub(super) fn unhealthy_until(&self, sid: &str) -> Option<(Instant, String)> {
        let mut map = lock(&self.unhealthy);
        match map.get(sid) {
            Some((until, reason)) if *until > Instant::now() => Some((*until, reason.clone())),
            Some(_) => {
                map.remove(sid);
                if let Some(m) = &self.metrics {
                    m.unhealthy.set(i64::try_from(map.len()).unwrap_or(0));
                }
                None
            }
            None => None,
        }
    }

    /// A send with credential `sid` succeeded: its bad-token count starts over, and pruning
    /// resumes if it was stopped.
    pub(super) fn send_succeeded(&self, sid: &str) {
        let mut map = lock(&self.bad_tokens);
        if let Some(state) = map.remove(sid) {
            if state.suspended {
                tracing::info!(
                    credential.sid = sid,
                    "push credential delivered again; dead-token pruning resumes"
                );
            }
        }
    }

    /// Count a bad-token answer of credential `sid` for `address`; `true` when the credential
    /// is (now) past the threshold, so the binding must be kept.
    pub(super) fn bad_token_suspends(&self, sid: &str, address: &str) -> bool {
        let mut map = lock(&self.bad_tokens);
        let state = map.entry(sid.to_owned()).or_default();
        if !state.suspended {
            state.tokens.insert(address.to_owned());
            if state.tokens.len() >= self.config.bad_token_threshold.max(1) {
                state.suspended = true;
                state.tokens = HashSet::new();
            }
        }
        state.suspended
    }

    pub(super) fn mark_unhealthy(&self, sid: &str, reason: &str) {
        let mut map = lock(&self.unhealthy);
        map.insert(
            sid.to_owned(),
            (
                Instant::now() + self.config.unhealthy_for,
                reason.to_owned(),
            ),
        );
        if let Some(m) = &self.metrics {
            m.unhealthy.set(i64::try_from(map.len()).unwrap_or(0));
        }
        tracing::error!(
            credential.sid = sid,
            reason,
            "push credential failing; its deliveries are paused"
        );
    }
}
