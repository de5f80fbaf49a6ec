//! `PushStore`: the outbox (`push_outbox`, filled by the `events_to_push_outbox` trigger of
//! 0002_chat.sql), the deliveries and the delivery log (migrations/0003_push.sql).
//!
//! Claims are one `update … where rowid in (select … limit ?) returning …` on the single writer
//! connection, so two workers (or two processes on one file, serialised by `BEGIN IMMEDIATE` and
//! the busy timeout) never claim the same row while its lease holds. An expired lease makes the
//! row claimable again. `attempts` in a claim's answer is the count *before* this claim.

use std::collections::HashMap;

use parley_core::event::{Event, EventKind};
use parley_core::paging::{Page, PageRequest};
use parley_core::push::{Delivery, NewDelivery, OutboxItem, PushLogEntry, Recipient, Settle};
use parley_core::store::{Conflict, PushStore, StoreError, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};

use crate::lite::{lite_err, lite_row, lite_write_err, q, Q};
use crate::rows::{convert_all, recipients, BindingRow, DeliveryRow, EventRow, PushLogRow};
use crate::{to_json, SqliteStore};

const DELIVERY_COLUMNS: &str = "id, event_id, account_sid, service_sid, binding_sid, \
     credential_sid, binding_type, address, identity, payload, event_at, available_at, \
     attempts - 1 as attempts";

const LOG_COLUMNS: &str =
    "seq, id, account_sid, service_sid, event_id, kind, binding_sid, identity, \
     binding_type, outcome, reason, attempt, date_created";

// ---- log paging ---------------------------------------------------------------------------------

// The log's list order is `(date_created, seq)`: `seq` is the only unique tie-breaker (a
// delivery id repeats across attempts). A cursor's `sid` is `seq` as 20-digit zero-padded text
// (`PushLogEntry::seq`); one that is not a number is `InvalidReference("push log cursor")` (as on
// PostgreSQL).

/// The `list_push_log` query (also used by the query-plan test).
fn log_list_query(
    head: &str,
    account: &AccountSid,
    service: &ServiceSid,
    page: &PageRequest,
) -> StoreResult<Q> {
    let mut qb = q(format!("{head} from push_log where service_sid = "));
    qb.push_bind(service.as_str());
    qb.push(" and account_sid = ");
    qb.push_bind(account.as_str());
    let backwards = page.cursor.as_ref().is_some_and(|c| c.backwards);
    if let Some(c) = &page.cursor {
        let op = if backwards { "<" } else { ">" };
        qb.push(&format!(" and (date_created, seq) {op} ("));
        qb.push_bind(c.key);
        qb.push(", ");
        let seq: i64 = c
            .sid
            .parse()
            .map_err(|_| StoreError::InvalidReference("push log cursor"))?;
        qb.push_bind(seq);
        qb.push(")");
    }
    if backwards {
        qb.push(" order by date_created desc, seq desc limit ");
    } else {
        qb.push(" order by date_created, seq limit ");
    }
    qb.push_bind(page.fetch_limit());
    Ok(qb)
}

// ---- recipients ---------------------------------------------------------------------------------

/// Bindings of the channel's members except the author and muted members.
const NEW_MESSAGE_RECIPIENTS: &str = "select b.* from members m
     join bindings b on b.user_sid = m.user_sid and b.service_sid = m.service_sid
     where m.channel_sid = ? and m.account_sid = ? and m.service_sid = ?
       and m.notification_level <> 'muted' and m.identity is not ?
     order by b.sid";

/// Bindings of one identity, unless it is a muted member of the channel (`?4` = 1 to check).
const IDENTITY_RECIPIENTS: &str = "select b.* from bindings b
     where b.account_sid = ?5 and b.service_sid = ?1 and b.identity = ?2
       and not (?4 and exists (select 1 from members m
                                where m.channel_sid = ?3 and m.identity = ?2
                                  and m.notification_level = 'muted'))
     order by b.sid";

/// What a claim of an outbox entry returns.
struct OutboxClaim {
    event_id: i64,
    attempts: i64,
    fanout_after: Option<String>,
}
lite_row!(OutboxClaim {
    event_id,
    attempts,
    fanout_after
});

/// Insert deliveries inside the caller's write transaction. A binding deleted since
/// `recipients` gets no delivery (and does not fail the batch: conflict clauses do not cover
/// foreign keys, hence the `exists`); an id that exists is left alone.
fn insert_deliveries(c: &rusqlite::Connection, deliveries: &[NewDelivery]) -> StoreResult<()> {
    let insert = "insert or ignore into push_deliveries
             (id, event_id, account_sid, service_sid, binding_sid, credential_sid,
              binding_type, address, identity, payload, event_at, available_at)
         select ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
         where exists (select 1 from bindings where sid = ?5)";
    let mut st = c.prepare_cached(insert).map_err(lite_err)?;
    for d in deliveries {
        st.execute(rusqlite::params![
            d.id.as_str(),
            d.event_id,
            d.account_sid.as_str(),
            d.service_sid.as_str(),
            d.binding_sid.as_str(),
            d.credential_sid.as_ref().map(|c| c.as_str()),
            d.binding_type.as_str(),
            d.address.as_str(),
            d.identity.as_str(),
            d.payload.as_str(),
            d.event_at.unix_micros(),
            d.available_at.unix_micros(),
        ])
        .map_err(lite_err)?;
    }
    Ok(())
}

/// Settle one delivery inside the caller's write transaction. A delivery that is gone (its
/// binding was deleted meanwhile) is not an error. A dead token deletes the binding only while
/// it still has the address the delivery was for (a device that re-registered with a new token
/// keeps its binding); the binding's other pending deliveries go with it (`on delete cascade`).
fn settle_one(c: &rusqlite::Connection, id: &str, settle: &Settle) -> StoreResult<()> {
    match settle {
        Settle::Delivered | Settle::Failed { .. } => {
            q("delete from push_deliveries where id = ?")
                .bind(id)
                .execute(c)
                .map_err(lite_err)?;
        }
        Settle::Retry { at, error } => {
            q(
                "update push_deliveries set available_at = ?, lease_until = null,
                   last_error = ? where id = ?",
            )
            .bind(at.unix_micros())
            .bind(error.as_str())
            .bind(id)
            .execute(c)
            .map_err(lite_err)?;
        }
        Settle::DeadToken { .. } => {
            q("delete from bindings where (sid, address) in
                   (select binding_sid, address from push_deliveries where id = ?)")
            .bind(id)
            .execute(c)
            .map_err(lite_err)?;
            q("delete from push_deliveries where id = ?")
                .bind(id)
                .execute(c)
                .map_err(lite_err)?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl PushStore for SqliteStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        let (claimed, rows) = self
            .write(|c| {
                let claimed: Vec<OutboxClaim> = q(
                    "update push_outbox set lease_until = ?1, attempts = attempts + 1
                     where event_id in (
                         select event_id from push_outbox
                         where available_at <= ?2 and (lease_until is null or lease_until < ?2)
                         order by available_at, event_id limit ?3)
                     returning event_id, attempts - 1 as attempts, fanout_after",
                )
                .bind(lease_until.unix_micros())
                .bind(now.unix_micros())
                .bind(i64::from(limit))
                .all(c)
                .map_err(lite_err)?;
                if claimed.is_empty() {
                    return Ok((claimed, Vec::new()));
                }
                let ids: Vec<i64> = claimed.iter().map(|o| o.event_id).collect();
                let rows: Vec<EventRow> = q(
                    "select * from events where id in (select value from json_each(?)) order by id",
                )
                .bind(to_json(&ids)?)
                .all(c)
                .map_err(lite_err)?;
                Ok((claimed, rows))
            })
            .await?;
        let mut claims: HashMap<i64, OutboxClaim> =
            claimed.into_iter().map(|o| (o.event_id, o)).collect();
        let events: Vec<Event> = convert_all(rows)?;
        Ok(events
            .into_iter()
            .map(|event| {
                let claim = claims.remove(&event.id);
                OutboxItem {
                    attempts: claim
                        .as_ref()
                        .and_then(|o| i32::try_from(o.attempts).ok())
                        .unwrap_or_default(),
                    fanout_after: claim.and_then(|o| o.fanout_after),
                    event,
                }
            })
            .collect())
    }

    async fn recipients(&self, event: &Event) -> StoreResult<Vec<Recipient>> {
        // Only channel events of the push kinds have recipients.
        let Some(channel_sid) = event.channel_sid.as_ref() else {
            return Ok(Vec::new());
        };
        let rows: Vec<BindingRow> = match event.kind {
            EventKind::NewMessage => self.read_all(
                &q(NEW_MESSAGE_RECIPIENTS)
                    .bind(channel_sid.as_str())
                    .bind(event.account_sid.as_str())
                    .bind(event.service_sid.as_str())
                    .bind(event.actor.as_deref()),
            )?,
            EventKind::AddedToChannel
            | EventKind::RemovedFromChannel
            | EventKind::InvitedToChannel => {
                let Some(identity) = event.identity.as_deref() else {
                    return Ok(Vec::new());
                };
                // An invitee is not a member yet, so never a muted one.
                let check_muted = event.kind != EventKind::InvitedToChannel;
                self.read_all(
                    &q(IDENTITY_RECIPIENTS)
                        .bind(event.service_sid.as_str())
                        .bind(identity)
                        .bind(channel_sid.as_str())
                        .bind(check_muted)
                        .bind(event.account_sid.as_str()),
                )?
            }
            _ => return Ok(Vec::new()),
        };
        recipients(event.kind, rows)
    }

    async fn complete_fanout(&self, event_id: i64, deliveries: &[NewDelivery]) -> StoreResult<()> {
        self.write(|c| {
            insert_deliveries(c, deliveries)?;
            q("delete from push_outbox where event_id = ?")
                .bind(event_id)
                .execute(c)
                .map_err(lite_err)?;
            Ok(())
        })
        .await
    }

    async fn fanout_progress(
        &self,
        event_id: i64,
        deliveries: &[NewDelivery],
        after: &str,
    ) -> StoreResult<()> {
        self.write(|c| {
            insert_deliveries(c, deliveries)?;
            q(
                "update push_outbox set fanout_after = max(coalesce(fanout_after, ''), ?)
               where event_id = ?",
            )
            .bind(after)
            .bind(event_id)
            .execute(c)
            .map_err(lite_err)?;
            Ok(())
        })
        .await
    }

    /// An entry that is gone (its event was deleted with its service) is not an error.
    async fn retry_outbox(&self, event_id: i64, at: Timestamp) -> StoreResult<()> {
        self.write(|c| {
            q("update push_outbox set available_at = ?, lease_until = null where event_id = ?")
                .bind(at.unix_micros())
                .bind(event_id)
                .execute(c)
                .map_err(lite_err)?;
            Ok(())
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "update push_deliveries set lease_until = ?1, attempts = attempts + 1
             where rowid in (
                 select rowid from push_deliveries
                 where available_at <= ?2 and (lease_until is null or lease_until < ?2)
                 order by available_at, id limit ?3)
             returning {DELIVERY_COLUMNS}"
        );
        let rows: Vec<DeliveryRow> = self
            .write(|c| {
                q(sql)
                    .bind(lease_until.unix_micros())
                    .bind(now.unix_micros())
                    .bind(i64::from(limit))
                    .all(c)
                    .map_err(lite_err)
            })
            .await?;
        let mut deliveries: Vec<Delivery> = convert_all(rows)?;
        // `returning` does not promise the subquery's order.
        deliveries
            .sort_by(|a, b| (a.new.available_at, &a.new.id).cmp(&(b.new.available_at, &b.new.id)));
        Ok(deliveries)
    }

    async fn settle_delivery(&self, id: &str, settle: &Settle) -> StoreResult<()> {
        self.write(|c| settle_one(c, id, settle)).await
    }

    /// One transaction for the whole batch.
    async fn settle_deliveries(&self, batch: &[(String, Settle)]) -> StoreResult<()> {
        self.write(|c| {
            for (id, settle) in batch {
                settle_one(c, id, settle)?;
            }
            Ok(())
        })
        .await
    }

    async fn push_queue_depth(&self) -> StoreResult<(i64, i64)> {
        self.read_one(&q(
            "select (select count(*) from push_outbox), (select count(*) from push_deliveries)",
        ))
    }

    /// Channels of exactly two members where the identity's horizon is below the last message
    /// (or unset while the channel has a message).
    async fn badge_count(&self, service: &ServiceSid, identity: &str) -> StoreResult<i64> {
        self.read(|c| {
            q("select count(*) from users u
             join members m on m.user_sid = u.sid
             join channels c on c.sid = m.channel_sid
             where u.service_sid = ? and u.identity = ?
               and c.members_count = 2
               and c.last_message_index is not null
               and (m.last_consumed_message_index is null
                    or m.last_consumed_message_index < c.last_message_index)")
            .bind(service.as_str())
            .bind(identity)
            .one(c)
            .map_err(lite_err)
        })
    }

    /// `entry.seq` is ignored (the log numbers its rows). `NotFound` when the service does not
    /// exist in the account.
    async fn append_push_log(&self, entry: &PushLogEntry) -> StoreResult<()> {
        self.write(|c| {
            q(
                "insert into push_log (id, account_sid, service_sid, event_id, kind, binding_sid,
                                     identity, binding_type, outcome, reason, attempt,
                                     date_created)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(entry.id.as_str())
            .bind(entry.account_sid.as_str())
            .bind(entry.service_sid.as_str())
            .bind(entry.event_id)
            .bind(entry.kind.as_str())
            .bind(entry.binding_sid.as_str())
            .bind(entry.identity.as_str())
            .bind(entry.binding_type.as_str())
            .bind(entry.outcome.as_str())
            .bind(entry.reason.as_deref())
            .bind(entry.attempt)
            .bind(entry.date_created.unix_micros())
            .execute(c)
            .map_err(|e| match lite_write_err(e, Conflict::SidTaken, "service") {
                StoreError::InvalidReference(_) => StoreError::NotFound,
                other => other,
            })?;
            Ok(())
        })
        .await
    }

    /// Keyset pages by `(date_created, seq)`; the cursor's `sid` is `seq` as 20-digit
    /// zero-padded text.
    async fn list_push_log(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<PushLogEntry>> {
        let query = log_list_query(&format!("select {LOG_COLUMNS}"), account, service, page)?;
        let rows: Vec<PushLogRow> = self.read_all(&query)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    async fn prune_push_log(&self, cutoff: Timestamp, limit: u32) -> StoreResult<u64> {
        self.write_count(
            q("delete from push_log where seq in
                       (select seq from push_log where date_created < ? limit ?)")
            .bind(cutoff.unix_micros())
            .bind(i64::from(limit)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_core::paging::Cursor;

    fn log_cursor_sid(seq: i64) -> String {
        format!("{seq:020}")
    }

    fn plan(store: &SqliteStore, query: &Q) -> Vec<String> {
        let rows: Vec<crate::lite::PlanRow> = store
            .read(|c| query.all(c).map_err(lite_err))
            .expect("explain");
        rows.into_iter().map(|r| r.detail).collect()
    }

    fn uses_indexes_only(details: &[String]) -> bool {
        details
            .iter()
            .filter(|d| d.starts_with("SCAN ") || d.starts_with("SEARCH "))
            .all(|d| {
                d.starts_with("SEARCH ")
                    && (d.contains("USING INDEX")
                        || d.contains("USING COVERING INDEX")
                        || d.contains("USING INTEGER PRIMARY KEY")
                        || d.contains("USING PRIMARY KEY"))
            })
    }

    /// Claims, the log list (every cursor shape) and pruning walk indexes, without sorting.
    #[tokio::test]
    async fn push_queries_use_indexes() {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("connect");
        for sql in [
            "select event_id from push_outbox where available_at <= 1 \
             and (lease_until is null or lease_until < 1) order by available_at, event_id limit 5",
            "select rowid from push_deliveries where available_at <= 1 \
             and (lease_until is null or lease_until < 1) order by available_at, id limit 5",
            "select seq from push_log where date_created < 1 limit 5",
        ] {
            let details = plan(&store, &q(format!("explain query plan {sql}")));
            assert!(uses_indexes_only(&details), "{sql}: {details:?}");
            assert!(
                !details.iter().any(|d| d.contains("TEMP B-TREE")),
                "{sql}: {details:?}"
            );
        }
        let (account, service) = (AccountSid::generate(), ServiceSid::generate());
        let mut pages = vec![PageRequest::first(10)];
        for backwards in [false, true] {
            pages.push(PageRequest {
                size: 10,
                cursor: Some(Cursor {
                    key: 5,
                    sid: log_cursor_sid(7),
                    backwards,
                }),
            });
        }
        for page in &pages {
            let qb = log_list_query("explain query plan select *", &account, &service, page)
                .expect("query");
            let details = plan(&store, &qb);
            assert!(uses_indexes_only(&details), "{page:?}: {details:?}");
            assert!(
                !details.iter().any(|d| d.contains("TEMP B-TREE")),
                "{page:?}: {details:?}"
            );
        }
        store.close().await;
    }
}
