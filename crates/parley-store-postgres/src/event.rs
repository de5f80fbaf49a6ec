//! The change log (ARCHITECTURE §6): [`append`] is called inside the transaction of the change
//! itself, as its last statement, so a rolled-back change leaves no event and a committed one
//! always has it. The push kinds also get their `push_outbox` row in the same statement.
//!
//! `seq` comes from `event_seqs` (one row per service): the upsert that takes `last_seq + 1`
//! holds that row's lock until the transaction ends, so a transaction holding a later seq of the
//! service cannot commit before the one holding the earlier seq, on any node: a service's seqs
//! are gapless and commit in seq order. Appending last keeps that lock short.

use parley_core::event::Event;
use parley_core::store::{EventStore, StoreResult};
use parley_core::ServiceSid;
use sqlx::PgConnection;

use crate::error::db;
use crate::rows::{convert_all, EventRow, Pg};
use crate::PgStore;

pub(crate) use parley_core::store::rows::NewEvent;

/// Append `event` (and, for a push kind, its push-outbox row, due at once) inside the caller's
/// transaction; call it last, right before commit.
pub(crate) async fn append(conn: &mut PgConnection, event: &NewEvent<'_>) -> StoreResult<()> {
    sqlx::query(
        "with s as (
             insert into event_seqs (service_sid, last_seq) values ($3, 1)
             on conflict (service_sid) do update set last_seq = event_seqs.last_seq + 1
             returning last_seq
         ), e as (
             insert into events (seq, kind, account_sid, service_sid, channel_sid,
                                 channel_unique_name, channel_friendly_name, message_sid,
                                 message_index, body, member_sid, invite_sid, identity, actor,
                                 source, webhooks, state, changed, date_created,
                                 channel_webhooks, channel_identities)
             select s.last_seq, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, $20, $21
             from s
             returning id
         )
         insert into push_outbox (event_id, available_at)
         select id, $18 from e where $19",
    )
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
    .bind(event.kind.is_push() && event.origin.push)
    .bind(event.channel_webhooks_json()?)
    .bind(event.channel_identities_json()?)
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_events(
        &self,
        service: &ServiceSid,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let rows: Vec<Pg<EventRow>> = sqlx::query_as(
            "select * from events where service_sid = $1 and seq > $2 order by seq limit $3",
        )
        .bind(service.as_str())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn last_seq(&self, service: &ServiceSid) -> StoreResult<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("select last_seq from event_seqs where service_sid = $1")
                .bind(service.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        Ok(seq.unwrap_or(0))
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
