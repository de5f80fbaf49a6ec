//! Reading the change log (docs/change-log.md): consumers' positions and leases
//! (`log_positions`, migrations/0005_change_log.sql) and trimming.
//!
//! A claim is one write transaction on the single writer connection (`BEGIN IMMEDIATE`), so two
//! claimers — tasks of one store, or two processes on one file — never take the same
//! (consumer, service) while its lease holds. The claimed events are read afterwards on a read
//! connection: the position is fixed while the lease holds, and the events after it are
//! committed (seq is taken in commit order).

use parley_core::event::Event;
use parley_core::log::LogClaim;
use parley_core::store::{Conflict, StoreError, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::lite::{lite_err, lite_row, q};
use crate::rows::{convert_all, sid, EventRow};
use crate::{to_json, SqliteStore};

/// Trimming stops, in each service, at the first event (in seq order) younger than the cutoff
/// plus this slack: `date_created` comes from the writer's clock when the request began, so it
/// is only nearly ordered by seq. The slack bounds the work of a trim to what it deletes plus a
/// minute of events, and never lets an event go before its time (it can only stay longer).
pub(crate) const TRIM_SLACK_SECS: i64 = 60;

/// The service a claim took and the position it starts from.
struct Claimed {
    service_sid: String,
    account_sid: String,
    position: i64,
}
lite_row!(Claimed {
    service_sid,
    account_sid,
    position
});

/// A service with events to trim: everything up to `bound` is passed by every consumer.
struct TrimCandidate {
    service_sid: String,
    bound: i64,
}
lite_row!(TrimCandidate { service_sid, bound });

/// `EventStore::claim_log` on SQLite.
pub(crate) async fn claim_log(
    store: &SqliteStore,
    consumer: &str,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Option<LogClaim>> {
    let claimed: Option<Claimed> = store
        .write(|c| {
            // Position rows of services this consumer has never read (position 0).
            q("insert into log_positions (consumer, service_sid, position)
               select ?1, es.service_sid, 0 from event_seqs es
               where not exists (select 1 from log_positions lp
                                 where lp.consumer = ?1 and lp.service_sid = es.service_sid)")
            .bind(consumer)
            .execute(c)
            .map_err(lite_err)?;
            // Never-claimed services first (no lease_until), then the one whose last lease
            // ended earliest: every service with events gets its turn.
            q("update log_positions set lease_owner = ?2, lease_until = ?4
               where consumer = ?1 and service_sid = (
                   select lp.service_sid from log_positions lp
                   join event_seqs es on es.service_sid = lp.service_sid
                   where lp.consumer = ?1 and es.last_seq > lp.position
                     and (lp.lease_owner is null or lp.lease_until < ?3)
                   order by coalesce(lp.lease_until, -9223372036854775808), lp.service_sid
                   limit 1)
               returning service_sid, position,
                         (select s.account_sid from services s
                          where s.sid = log_positions.service_sid) as account_sid")
            .bind(consumer)
            .bind(owner)
            .bind(now.unix_micros())
            .bind(lease_until.unix_micros())
            .optional(c)
            .map_err(lite_err)
        })
        .await?;
    let Some(claimed) = claimed else {
        return Ok(None);
    };
    let rows: Vec<EventRow> = store.read_all(
        &q("select * from events where service_sid = ? and seq > ? order by seq limit ?")
            .bind(claimed.service_sid.as_str())
            .bind(claimed.position)
            .bind(i64::from(limit)),
    )?;
    let events: Vec<Event> = convert_all(rows)?;
    Ok(Some(LogClaim {
        consumer: consumer.to_owned(),
        service_sid: sid(ServiceSid::from_string, claimed.service_sid)?,
        account_sid: sid(AccountSid::from_string, claimed.account_sid)?,
        position: claimed.position,
        lease_until,
        events,
    }))
}

/// `EventStore::advance_log` on SQLite.
pub(crate) async fn advance_log(
    store: &SqliteStore,
    claim: &LogClaim,
    owner: &str,
    to_seq: i64,
) -> StoreResult<()> {
    let consumer = claim.consumer.as_str();
    let service = claim.service_sid.as_str();
    store
        .write(|c| advance_in(c, consumer, service, owner, to_seq))
        .await
}

/// The advance of [`advance_log`] inside the caller's write transaction: position =
/// max(position, min(to_seq, last seq)), lease released, only while `owner` holds it; else
/// `Conflict(LeaseLost)` (or `NotFound`, the service gone). Shared with the webhook queue, whose
/// enqueue runs it in the transaction that inserts the calls.
pub(crate) fn advance_in(
    c: &rusqlite::Connection,
    consumer: &str,
    service: &str,
    owner: &str,
    to_seq: i64,
) -> StoreResult<()> {
    let changed = q("update log_positions
           set position = max(position, coalesce(min(?3,
                   (select last_seq from event_seqs where service_sid = ?2)), position)),
               lease_owner = null
           where consumer = ?1 and service_sid = ?2 and lease_owner = ?4")
    .bind(consumer)
    .bind(service)
    .bind(to_seq)
    .bind(owner)
    .execute(c)
    .map_err(lite_err)?;
    if changed > 0 {
        return Ok(());
    }
    // Not ours (any more) — or gone with its service.
    let exists: Option<i64> =
        q("select 1 from log_positions where consumer = ? and service_sid = ?")
            .bind(consumer)
            .bind(service)
            .optional(c)
            .map_err(lite_err)?;
    Err(match exists {
        Some(_) => StoreError::Conflict(Conflict::LeaseLost),
        None => StoreError::NotFound,
    })
}

/// `EventStore::trim_events` on SQLite: one short write transaction per service.
pub(crate) async fn trim_events(
    store: &SqliteStore,
    consumers: &[&str],
    cutoff: Timestamp,
    limit: u32,
) -> StoreResult<u64> {
    let consumers = to_json(&consumers)?;
    // Services whose first remaining event is passed by every consumer and old enough. A
    // service's bound is the least position of the named consumers (0 without a row); with no
    // consumers named, every event counts as passed.
    let candidates: Vec<TrimCandidate> = store.read_all(
        &q("select b.service_sid, b.bound from (
                select es.service_sid,
                       coalesce((select min(coalesce(lp.position, 0)) from json_each(?1) c
                                 left join log_positions lp
                                   on lp.consumer = c.value and lp.service_sid = es.service_sid),
                                es.last_seq) as bound
                from event_seqs es) b
            where b.bound > 0
              and (select e.date_created from events e
                   where e.service_sid = b.service_sid and e.seq <= b.bound
                   order by e.seq limit 1) < ?2
            order by b.service_sid")
        .bind(consumers)
        .bind(cutoff.unix_micros()),
    )?;
    let mut deleted = 0_u64;
    for candidate in candidates {
        let left = u64::from(limit).saturating_sub(deleted);
        if left == 0 {
            break;
        }
        let n = store
            .write_count(
                q("delete from events where id in (
                       select e.id from events e
                       where e.service_sid = ?1 and e.seq <= ?2
                         and e.seq < coalesce((select min(x.seq) from events x
                                               where x.service_sid = ?1 and x.seq <= ?2
                                                 and x.date_created >= ?4), ?2 + 1)
                         and e.date_created < ?3
                         and not exists (select 1 from push_outbox o where o.event_id = e.id)
                       order by e.seq limit ?5)")
                .bind(candidate.service_sid.as_str())
                .bind(candidate.bound)
                .bind(cutoff.unix_micros())
                .bind(cutoff.plus_secs(TRIM_SLACK_SECS).unix_micros())
                .bind(i64::try_from(left).unwrap_or(i64::MAX)),
            )
            .await?;
        deleted += n;
    }
    Ok(deleted)
}
