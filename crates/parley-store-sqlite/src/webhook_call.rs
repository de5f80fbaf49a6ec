//! `WebhookStore`: the webhook call queue (migrations/0007_webhook_calls.sql).
//!
//! Every write runs on the single writer connection (`BEGIN IMMEDIATE`), so a claim and an
//! enqueue never interleave: two claimers never take the same call, and the calls of one
//! service are inserted in the order their events were consumed. A claim looks for its
//! candidates on a read connection first, so the writer (which posting needs) is held only for
//! the update of the calls it takes.

use parley_core::store::rows::{WebhookCallRow, WEBHOOK_CALL_COLUMNS};
use parley_core::store::{StoreResult, WebhookStore};
use parley_core::webhook_call::{NewWebhookCall, Settle, WebhookCall};
use parley_core::{ServiceSid, Timestamp};

use crate::lite::{lite_err, q, Q};
use crate::rows::convert_all;
use crate::{to_json, SqliteStore};

#[async_trait::async_trait]
impl WebhookStore for SqliteStore {
    async fn enqueue_webhook_calls(
        &self,
        consumer: &str,
        service: &ServiceSid,
        owner: &str,
        to_seq: i64,
        calls: &[NewWebhookCall],
    ) -> StoreResult<Vec<i64>> {
        let params: Vec<String> = calls
            .iter()
            .map(|call| to_json(&call.params))
            .collect::<StoreResult<_>>()?;
        self.write(|c| {
            crate::log::advance_in(c, consumer, service.as_str(), owner, to_seq)?;
            let mut st = c
                .prepare_cached(
                    "insert into webhook_calls
                         (account_sid, service_sid, channel_sid, url, method, event_type, params,
                          retry_count_max, attempts, available_at, order_key, date_created,
                          lease_owner, lease_until)
                     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(lite_err)?;
            let mut ids = Vec::with_capacity(calls.len());
            for (call, params) in calls.iter().zip(&params) {
                let (lease_owner, lease_until) = match &call.leased_to {
                    Some((who, until)) => (Some(who.as_str()), Some(until.unix_micros())),
                    None => (None, None),
                };
                st.execute(rusqlite::params![
                    call.account_sid.as_str(),
                    call.service_sid.as_str(),
                    call.channel_sid.as_ref().map(|s| s.as_str()),
                    call.url,
                    call.method,
                    call.event_type,
                    params,
                    call.retry_count_max,
                    call.attempts,
                    call.available_at.unix_micros(),
                    call.order_key,
                    call.date_created.unix_micros(),
                    lease_owner,
                    lease_until,
                ])
                .map_err(lite_err)?;
                ids.push(c.last_insert_rowid());
            }
            Ok(ids)
        })
        .await
    }

    async fn waiting_webhook_keys(
        &self,
        service: &ServiceSid,
        keys: &[&str],
    ) -> StoreResult<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|c| {
            // Mostly nothing of the service waits: one index probe answers for every key.
            let any: bool = c
                .prepare_cached(
                    "select exists (select 1 from webhook_calls where service_sid = ?1)",
                )
                .and_then(|mut st| st.query_row([service.as_str()], |r| r.get(0)))
                .map_err(lite_err)?;
            if !any {
                return Ok(Vec::new());
            }
            let mut st = c
                .prepare_cached("select exists (select 1 from webhook_calls where order_key = ?1)")
                .map_err(lite_err)?;
            let mut waiting = Vec::new();
            for key in keys {
                let queued: bool = st.query_row([key], |r| r.get(0)).map_err(lite_err)?;
                if queued {
                    waiting.push((*key).to_owned());
                }
            }
            Ok(waiting)
        })
    }

    async fn claim_webhook_runs(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        per_key: u32,
    ) -> StoreResult<Vec<WebhookCall>> {
        // The heads (lowest id of each key) that are due and free, found on a read connection
        // with a skip scan of the key index (one descent per key, however many calls wait
        // behind the heads), so the single writer is held only for the short part below.
        let heads: Vec<i64> = self.read_all(
            &q("with recursive keys (k) as (
                    select min(order_key) from webhook_calls
                    union all
                    select (select min(w.order_key) from webhook_calls w where w.order_key > keys.k)
                    from keys where keys.k is not null
                )
                select c.id from keys
                join webhook_calls c
                  on c.id = (select min(h.id) from webhook_calls h where h.order_key = keys.k)
                where c.available_at <= ?1 and (c.lease_until is null or c.lease_until < ?1)
                order by c.id limit ?2")
            .bind(now.unix_micros())
            .bind(i64::from(limit)),
        )?;
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let now_us = now.unix_micros();
        let per_key = i64::from(per_key.max(1));
        let mut rows: Vec<WebhookCallRow> = self
            .write(|c| {
                // Under the write lock nothing else changes the queue: each head is checked
                // again (still the lowest id of its key, due and free) and its run is the
                // key's next calls up to the first one that is not due or not free.
                let mut run = c
                    .prepare_cached(
                        "select id, available_at, lease_until from webhook_calls
                         where order_key = (select order_key from webhook_calls where id = ?1)
                         order by id limit ?2",
                    )
                    .map_err(lite_err)?;
                let mut ids: Vec<i64> = Vec::new();
                let mut room = usize::try_from(limit).unwrap_or(usize::MAX);
                for head in &heads {
                    if room == 0 {
                        break;
                    }
                    let calls = run
                        .query_map(rusqlite::params![head, per_key], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Option<i64>>(2)?,
                            ))
                        })
                        .map_err(lite_err)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(lite_err)?;
                    if calls.first().map(|(id, _, _)| id) != Some(head) {
                        continue;
                    }
                    for (id, available_at, lease) in calls {
                        if room == 0 || available_at > now_us || lease.is_some_and(|l| l >= now_us)
                        {
                            break;
                        }
                        ids.push(id);
                        room -= 1;
                    }
                }
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                q(format!(
                    "update webhook_calls set lease_owner = ?1, lease_until = ?2
                     where id in (select value from json_each(?3))
                     returning {WEBHOOK_CALL_COLUMNS}"
                ))
                .bind(owner)
                .bind(lease_until.unix_micros())
                .bind(to_json(&ids)?)
                .all(c)
                .map_err(lite_err)
            })
            .await?;
        // `returning` has no order: oldest first again.
        rows.sort_by_key(|r| r.id);
        convert_all(rows)
    }

    async fn settle_webhook_call(&self, id: i64, owner: &str, settle: &Settle) -> StoreResult<()> {
        // A call no longer ours (lease taken over, or settled by the new owner) needs nothing.
        self.write_count(settle_query(id, owner, settle))
            .await
            .map(|_| ())
    }

    /// One write transaction for the whole batch.
    async fn settle_webhook_calls(&self, owner: &str, batch: &[(i64, Settle)]) -> StoreResult<()> {
        self.write(|c| {
            for (id, settle) in batch {
                settle_query(*id, owner, settle)
                    .execute(c)
                    .map_err(lite_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn webhook_queue_depth(&self) -> StoreResult<i64> {
        self.read_one(&q("select count(*) from webhook_calls"))
    }
}

/// The statement settling call `id` while `owner` holds its lease.
fn settle_query(id: i64, owner: &str, settle: &Settle) -> Q {
    match settle {
        Settle::Done => q("delete from webhook_calls where id = ? and lease_owner = ?")
            .bind(id)
            .bind(owner),
        Settle::Retry { at, attempts } => q("update webhook_calls
               set available_at = ?, attempts = ?, lease_owner = null, lease_until = null
               where id = ? and lease_owner = ?")
        .bind(at.unix_micros())
        .bind(*attempts)
        .bind(id)
        .bind(owner),
    }
}
