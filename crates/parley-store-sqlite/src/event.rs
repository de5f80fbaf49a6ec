//! `EventStore` and the write side of the change log: [`append`] runs inside the transaction of
//! the change it records; the `events_to_push_outbox` trigger queues the event for the push
//! engine in the same statement (migrations/0002_chat.sql).

use parley_core::event::Event;
use parley_core::store::{EventStore, StoreResult};
use parley_core::ServiceSid;

use crate::lite::{lite_err, q};
use crate::rows::{convert_all, EventRow};
use crate::SqliteStore;

pub(crate) use parley_core::store::rows::NewEvent;

const INSERT_EVENT: &str =
    "insert into events (kind, account_sid, service_sid, channel_sid, channel_unique_name,
                         channel_friendly_name, message_sid, message_index, body,
                         member_sid, invite_sid, identity, actor, date_created)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Append `event` inside the caller's write transaction.
pub(crate) fn append(c: &rusqlite::Connection, event: &NewEvent<'_>) -> StoreResult<()> {
    let e = event.channel;
    q(INSERT_EVENT)
        .bind(event.kind.as_str())
        .bind(&e.account_sid)
        .bind(&e.service_sid)
        .bind(&e.sid)
        .bind(e.unique_name.as_deref())
        .bind(e.friendly_name.as_deref())
        .bind(event.message_sid)
        .bind(event.message_index)
        .bind(event.body)
        .bind(event.member_sid)
        .bind(event.invite_sid)
        .bind(event.identity)
        .bind(event.actor)
        .bind(event.now.unix_micros())
        .execute(c)
        .map_err(lite_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn list_events(
        &self,
        service: &ServiceSid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let rows: Vec<EventRow> = self.read_all(
            &q("select * from events where service_sid = ? and id > ? order by id limit ?")
                .bind(service.as_str())
                .bind(after)
                .bind(i64::from(limit)),
        )?;
        convert_all(rows)
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
