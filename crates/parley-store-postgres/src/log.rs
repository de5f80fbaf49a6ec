//! Reading the change log (docs/change-log.md): consumers' positions and leases
//! (`log_positions`, migrations/0005_change_log.sql) and trimming.
//!
//! Several nodes claim at once: the claim's subselect locks the (consumer, service) row it
//! picks with `for update skip locked`, and re-checks the lease on the row's latest version
//! once locked (PostgreSQL re-evaluates a locked row's conditions under READ COMMITTED), so two
//! claimers never get the same pair while its lease holds — one skips the row the other is
//! taking, and a row taken meanwhile no longer qualifies. The claimed events are read
//! afterwards: the position is fixed while the lease holds, and every event after it with a seq
//! at most `event_seqs.last_seq` is committed (the seq row's lock is held to commit).

use parley_core::event::Event;
use parley_core::log::LogClaim;
use parley_core::store::{Conflict, StoreError, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::error::db;
use crate::rows::{convert_all, sid, EventRow, Pg};
use crate::PgStore;

/// Trimming stops, in each service, at the first event (in seq order) younger than the cutoff
/// plus this slack: `date_created` comes from the writing node's clock when the request began,
/// so it is only nearly ordered by seq. The slack bounds the work of a trim to what it deletes
/// plus a minute of events, and never lets an event go before its time (it can only stay
/// longer).
pub(crate) const TRIM_SLACK_SECS: i64 = 60;

/// `EventStore::claim_log` on PostgreSQL.
pub(crate) async fn claim_log(
    store: &PgStore,
    consumer: &str,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Option<LogClaim>> {
    // One statement (a round trip counts against busy writers): position rows of services this
    // consumer has never read (position 0) are added — the update does not see them, so a
    // claim that finds nothing looks once more — and then the claim: never-claimed services
    // first (no lease_until), then the one whose last lease ended earliest, so every service
    // with events gets its turn.
    let mut claimed = None;
    for _ in 0..2 {
        claimed = claim_position(store, consumer, owner, now, lease_until).await?;
        if claimed.is_some() {
            break;
        }
    }
    let Some((service_sid, position, account_sid)) = claimed else {
        return Ok(None);
    };
    let rows: Vec<Pg<EventRow>> = sqlx::query_as(
        "select * from events where service_sid = $1 and seq > $2 order by seq limit $3",
    )
    .bind(service_sid.as_str())
    .bind(position)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    let events: Vec<Event> = convert_all(rows)?;
    Ok(Some(LogClaim {
        consumer: consumer.to_owned(),
        service_sid: sid(ServiceSid::from_string, service_sid)?,
        account_sid: sid(AccountSid::from_string, account_sid)?,
        position,
        lease_until,
        events,
    }))
}

/// The claim statement of [`claim_log`]: (service, position, account) of the position row it
/// leased, if any.
async fn claim_position(
    store: &PgStore,
    consumer: &str,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> StoreResult<Option<(String, i64, String)>> {
    sqlx::query_as(
        "with added as (
             insert into log_positions (consumer, service_sid, position)
             select $1, es.service_sid, 0 from event_seqs es
             where not exists (select 1 from log_positions lp
                               where lp.consumer = $1 and lp.service_sid = es.service_sid)
             on conflict do nothing
         )
         update log_positions lp set lease_owner = $2, lease_until = $4
         from services s
         where s.sid = lp.service_sid and lp.consumer = $1
           and (lp.lease_owner is null or lp.lease_until < $3)
           and lp.service_sid in (
               select p.service_sid from log_positions p
               join event_seqs es on es.service_sid = p.service_sid
               where p.consumer = $1 and es.last_seq > p.position
                 and (p.lease_owner is null or p.lease_until < $3)
               order by p.lease_until asc nulls first, p.service_sid
               limit 1
               for update of p skip locked)
         returning lp.service_sid, lp.position, s.account_sid",
    )
    .bind(consumer)
    .bind(owner)
    .bind(now.unix_micros())
    .bind(lease_until.unix_micros())
    .fetch_optional(store.pool())
    .await
    .map_err(db)
}

/// `EventStore::advance_log` on PostgreSQL.
pub(crate) async fn advance_log(
    store: &PgStore,
    claim: &LogClaim,
    owner: &str,
    to_seq: i64,
) -> StoreResult<()> {
    let mut conn = store.pool().acquire().await.map_err(db)?;
    advance_in(
        &mut conn,
        &claim.consumer,
        claim.service_sid.as_str(),
        owner,
        to_seq,
    )
    .await
}

/// The advance of [`advance_log`] on `conn` (inside the caller's transaction, if any): position
/// = max(position, min(to_seq, last seq)), lease released, only while `owner` holds it; else
/// `Conflict(LeaseLost)` (or `NotFound`, the service gone). Shared with the webhook queue, whose
/// enqueue runs it first in its transaction (holding the row lock to commit).
pub(crate) async fn advance_in(
    conn: &mut sqlx::PgConnection,
    consumer: &str,
    service: &str,
    owner: &str,
    to_seq: i64,
) -> StoreResult<()> {
    // `least` ignores a null (service gone meanwhile: the row went with it anyway).
    let changed = sqlx::query(
        "update log_positions
         set position = greatest(position, least($3,
                 (select last_seq from event_seqs where service_sid = $2))),
             lease_owner = null
         where consumer = $1 and service_sid = $2 and lease_owner = $4",
    )
    .bind(consumer)
    .bind(service)
    .bind(to_seq)
    .bind(owner)
    .execute(&mut *conn)
    .await
    .map_err(db)?
    .rows_affected();
    if changed > 0 {
        return Ok(());
    }
    // Not ours (any more) — or gone with its service.
    let exists: Option<i32> =
        sqlx::query_scalar("select 1 from log_positions where consumer = $1 and service_sid = $2")
            .bind(consumer)
            .bind(service)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    Err(match exists {
        Some(_) => StoreError::Conflict(Conflict::LeaseLost),
        None => StoreError::NotFound,
    })
}

/// `EventStore::trim_events` on PostgreSQL: one statement per service with something to trim.
pub(crate) async fn trim_events(
    store: &PgStore,
    consumers: &[&str],
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let consumers: Vec<String> = consumers.iter().map(|c| (*c).to_owned()).collect();
    // Services whose first remaining event is passed by every consumer and old enough. A
    // service's bound is the least position of the named consumers (0 without a row); with no
    // consumers named, every event counts as passed.
    let candidates: Vec<(String, i64)> = sqlx::query_as(
        "select b.service_sid, b.bound from (
             select es.service_sid,
                    coalesce((select min(coalesce(lp.position, 0))
                              from unnest($1::text[]) c(name)
                              left join log_positions lp
                                on lp.consumer = c.name and lp.service_sid = es.service_sid),
                             es.last_seq) as bound
             from event_seqs es) b
         where b.bound > 0
           and (select e.date_created from events e
                where e.service_sid = b.service_sid and e.seq <= b.bound
                order by e.seq limit 1) < $2
         order by b.service_sid",
    )
    .bind(&consumers)
    .bind(cutoff.unix_micros())
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    let mut deleted = 0_u64;
    for (service_sid, bound) in candidates {
        let left = u64::from(limit).saturating_sub(deleted);
        if left == 0 {
            break;
        }
        deleted += sqlx::query(
            "delete from events where id in (
                 select e.id from events e
                 where e.service_sid = $1 and e.seq <= $2
                   and e.seq < coalesce((select min(x.seq) from events x
                                         where x.service_sid = $1 and x.seq <= $2
                                           and x.date_created >= $4), $2 + 1)
                   and e.date_created < $3
                   and not exists (select 1 from push_outbox o where o.event_id = e.id)
                 order by e.seq limit $5)",
        )
        .bind(service_sid.as_str())
        .bind(bound)
        .bind(cutoff.unix_micros())
        .bind(cutoff.plus_secs(TRIM_SLACK_SECS).unix_micros())
        .bind(i64::try_from(left).unwrap_or(i64::MAX))
        .execute(store.pool())
        .await
        .map_err(db)?
        .rows_affected();
    }
    Ok(deleted)
}
