//! `EventStore` and the write side of the change log: [`append`] runs inside the transaction of
//! the change it records, as its last statement; the `events_to_push_outbox` trigger queues the
//! push kinds for the push engine in the same statement (migrations/0005_change_log.sql).
//!
//! `seq` comes from `event_seqs` (one row per service, `last_seq` + 1): SQLite has one writer
//! at a time, so transactions commit in the order they take their seq — seq order is commit
//! order, without gaps.

use parley_core::event::Event;
use parley_core::store::{EventStore, StoreResult};
use parley_core::ServiceSid;

use crate::lite::{lite_err, q};
use crate::rows::{convert_all, EventRow};
use crate::SqliteStore;

pub(crate) use parley_core::store::rows::NewEvent;

const NEXT_SEQ: &str = "insert into event_seqs (service_sid, last_seq) values (?, 1)
     on conflict (service_sid) do update set last_seq = last_seq + 1
     returning last_seq";

const INSERT_EVENT: &str =
    "insert into events (seq, kind, account_sid, service_sid, channel_sid, channel_unique_name,
                         channel_friendly_name, message_sid, message_index, body,
                         member_sid, invite_sid, identity, actor, source, webhooks, state,
                         changed, date_created, channel_webhooks, channel_identities)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

thread_local! {
    /// The services whose log the write transaction running on this thread appended to
    /// ([`crate::SqliteStore::write`] runs the whole transaction on one thread, synchronously,
    /// clears this before and takes it after, to publish `Signal::Changed` once it committed).
    static APPENDED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Take (and clear) the services appended to on this thread since the last call.
pub(crate) fn take_appended() -> Vec<String> {
    APPENDED.with(|a| std::mem::take(&mut *a.borrow_mut()))
}

/// Append `event` inside the caller's write transaction (call it last, right before commit).
pub(crate) fn append(c: &rusqlite::Connection, event: &NewEvent<'_>) -> StoreResult<()> {
    APPENDED.with(|a| {
        let mut a = a.borrow_mut();
        if !a.iter().any(|s| s == event.service_sid) {
            a.push(event.service_sid.to_owned());
        }
    });
    let seq: i64 = q(NEXT_SEQ)
        .bind(event.service_sid)
        .one(c)
        .map_err(lite_err)?;
    q(INSERT_EVENT)
        .bind(seq)
        .bind(event.kind.as_str())
        .bind(event.account_sid)
        .bind(event.service_sid)
        .bind(event.channel_sid)
        .bind(event.channel_unique_name)
        .bind(event.channel_friendly_name)
        .bind(event.message_sid)
        .bind(event.message_index)
        .bind(event.body)
        .bind(event.member_sid)
        .bind(event.invite_sid)
        .bind(event.identity)
        .bind(event.actor)
        .bind(event.origin.source.as_str())
        .bind(event.origin.webhooks)
        .bind(event.state_json()?)
        .bind(event.changed_json()?)
        .bind(event.now.unix_micros())
        .bind(event.channel_webhooks_json()?)
        .bind(event.channel_identities_json()?)
        .execute(c)
        .map_err(lite_err)?;
    if event.kind.is_push() && !event.origin.push {
        // The `events_to_push_outbox` trigger queued it; an import queues no push. (After the
        // statement, `last_insert_rowid` is the event's id again, not the trigger's insert.)
        q("delete from push_outbox where event_id = ?")
            .bind(c.last_insert_rowid())
            .execute(c)
            .map_err(lite_err)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn list_events(
        &self,
        service: &ServiceSid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let rows: Vec<EventRow> = self.read_all(
            &q("select * from events where service_sid = ? and seq > ? order by seq limit ?")
                .bind(service.as_str())
                .bind(after_seq)
                .bind(i64::from(limit)),
        )?;
        convert_all(rows)
    }

    async fn last_seq(&self, service: &ServiceSid) -> StoreResult<i64> {
        let seqs: Vec<i64> = self.read_all(
            &q("select last_seq from event_seqs where service_sid = ?").bind(service.as_str()),
        )?;
        Ok(seqs.first().copied().unwrap_or(0))
    }

    async fn claim_log(
        &self,
        consumer: &str,
        owner: &str,
        now: parley_core::Timestamp,
        lease_until: parley_core::Timestamp,
        limit: u32,
    ) -> StoreResult<Option<parley_core::log::LogClaim>> {
        crate::log::claim_log(self, consumer, owner, now, lease_until, limit).await
    }

    async fn advance_log(
        &self,
        claim: &parley_core::log::LogClaim,
        owner: &str,
        to_seq: i64,
    ) -> StoreResult<()> {
        crate::log::advance_log(self, claim, owner, to_seq).await
    }

    async fn trim_events(
        &self,
        consumers: &[&str],
        cutoff: parley_core::Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        crate::log::trim_events(self, consumers, cutoff, limit).await
    }
}
