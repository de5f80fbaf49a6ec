//! Reading the change log: consumers, positions and leases (docs/change-log.md).
//!
//! A *consumer* (the webhook sender, later live clients) reads each service's events in `seq`
//! order and keeps its own *position* per service (`log_positions`): every event with
//! `seq <= position` is done for it. To read, a node *claims* one service for a consumer
//! ([`EventStore::claim_log`](crate::store::EventStore::claim_log)): it takes a lease on that
//! (consumer, service) pair, so no other node reads the same events for the same consumer at the
//! same time, and gets the events after the position. When it has handled them it *advances*
//! ([`EventStore::advance_log`](crate::store::EventStore::advance_log)), which moves the position
//! forward and releases the lease. A node that dies keeps its lease until `lease_until`; another
//! node then claims the service and starts again from the last advanced position (so a consumer
//! sees an event at least once; handling must be safe to repeat).
//!
//! Trimming ([`EventStore::trim_events`](crate::store::EventStore::trim_events)) deletes events
//! that every named consumer has passed, once they are older than the retention age.

use crate::event::Event;
use crate::{AccountSid, ServiceSid, Timestamp};

/// One service's events leased to one consumer by [`claim_log`](crate::store::EventStore::claim_log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogClaim {
    /// The consumer the claim is for (e.g. `"webhooks"`).
    pub consumer: String,
    /// The claimed service.
    pub service_sid: ServiceSid,
    /// Its account.
    pub account_sid: AccountSid,
    /// The consumer's position in this service when claimed: `events` all have a greater `seq`.
    pub position: i64,
    /// Until when the lease holds (another owner may claim the service afterwards).
    pub lease_until: Timestamp,
    /// The events after `position`, in `seq` order, at most the claim's `limit`. Empty only when
    /// the service went away between choosing it and reading.
    pub events: Vec<Event>,
}

impl LogClaim {
    /// The `seq` of the last event of the claim (`position` when there is none): what
    /// [`advance_log`](crate::store::EventStore::advance_log) takes once every event is handled.
    pub fn last_seq(&self) -> i64 {
        self.events.last().map_or(self.position, |e| e.seq)
    }
}
