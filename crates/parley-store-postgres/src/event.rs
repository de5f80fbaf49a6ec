//! The change log (ARCHITECTURE §6): [`append`] is called inside the transaction of the change
//! itself, so a rolled-back change leaves no event and a committed one always has it. Every
//! event also gets its `push_outbox` row in the same statement.

use parley_core::event::Event;
use parley_core::store::{EventStore, StoreResult};
use parley_core::ServiceSid;
use sqlx::PgConnection;

use crate::error::db;
use crate::rows::{convert_all, EventRow, Pg};
use crate::PgStore;

pub(crate) use parley_core::store::rows::NewEvent;

/// Append `event` and its push-outbox row (due at once) inside the caller's transaction.
/// Returns the event id.
pub(crate) async fn append(conn: &mut PgConnection, event: &NewEvent<'_>) -> StoreResult<i64> {
    sqlx::query_scalar(
        "with e as (
             insert into events (kind, account_sid, service_sid, channel_sid, channel_unique_name,
                                 channel_friendly_name, message_sid, message_index, body,
                                 member_sid, invite_sid, identity, actor, date_created)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             returning id
         )
         insert into push_outbox (event_id, available_at)
         select id, $14 from e
         returning event_id",
    )
    .bind(event.kind.as_str())
    .bind(event.channel.account_sid.as_str())
    .bind(event.channel.service_sid.as_str())
    .bind(event.channel.sid.as_str())
    .bind(event.channel.unique_name.as_deref())
    .bind(event.channel.friendly_name.as_deref())
    .bind(event.message_sid)
    .bind(event.message_index)
    .bind(event.body)
    .bind(event.member_sid)
    .bind(event.invite_sid)
    .bind(event.identity)
    .bind(event.actor)
    .bind(event.now.unix_micros())
    .fetch_one(conn)
    .await
    .map_err(db)
}

#[async_trait::async_trait]
impl EventStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_events(
        &self,
        service: &ServiceSid,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let rows: Vec<Pg<EventRow>> = sqlx::query_as(
            "select * from events where service_sid = $1 and id > $2 order by id limit $3",
        )
        .bind(service.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(consumer = consumer))]
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

    #[tracing::instrument(skip_all, fields(consumer = %claim.consumer, service.sid = %claim.service_sid))]
    async fn advance_log(
        &self,
        claim: &parley_core::log::LogClaim,
        owner: &str,
        to_seq: i64,
    ) -> StoreResult<()> {
        crate::log::advance_log(self, claim, owner, to_seq).await
    }

    #[tracing::instrument(skip_all)]
    async fn trim_events(
        &self,
        consumers: &[&str],
        cutoff: parley_core::Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        crate::log::trim_events(self, consumers, cutoff, limit).await
    }
}
