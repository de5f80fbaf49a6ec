//! `WebhookStore`: the webhook call queue (migrations/0007_webhook_calls.sql).
//!
//! An enqueue first updates the consumer's `log_positions` row (holding its row lock to commit)
//! and only then inserts: a lease taken over by another node fails that update, and the calls of
//! one service get ids in the order their events were consumed. Claims are one statement,
//! `update … where id in (select … for update skip locked) returning …`, that takes only the head
//! (lowest id) of each order key: nodes take disjoint calls, and a key's next call becomes
//! claimable only once its head is gone.

use parley_core::store::rows::{WebhookCallRow, WEBHOOK_CALL_COLUMNS};
use parley_core::store::{StoreResult, WebhookStore};
use parley_core::webhook_call::{NewWebhookCall, Settle, WebhookCall};
use parley_core::{ServiceSid, Timestamp};

use crate::error::db;
use crate::rows::{convert_all, Pg};
use crate::PgStore;

#[async_trait::async_trait]
impl WebhookStore for PgStore {
    #[tracing::instrument(skip_all, fields(service.sid = %service, calls = calls.len()))]
    async fn enqueue_webhook_calls(
        &self,
        consumer: &str,
        service: &ServiceSid,
        owner: &str,
        to_seq: i64,
        calls: &[NewWebhookCall],
    ) -> StoreResult<Vec<i64>> {
        let mut account = Vec::with_capacity(calls.len());
        let mut service_sid = Vec::with_capacity(calls.len());
        let mut channel = Vec::with_capacity(calls.len());
        let mut url = Vec::with_capacity(calls.len());
        let mut method = Vec::with_capacity(calls.len());
        let mut event_type = Vec::with_capacity(calls.len());
        let mut params = Vec::with_capacity(calls.len());
        let mut retry_max = Vec::with_capacity(calls.len());
        let mut available_at = Vec::with_capacity(calls.len());
        let mut order_key = Vec::with_capacity(calls.len());
        let mut created = Vec::with_capacity(calls.len());
        let mut attempts = Vec::with_capacity(calls.len());
        let mut lease_owner = Vec::with_capacity(calls.len());
        let mut lease_until = Vec::with_capacity(calls.len());
        for call in calls {
            account.push(call.account_sid.as_str());
            service_sid.push(call.service_sid.as_str());
            channel.push(call.channel_sid.as_ref().map(|c| c.as_str()));
            url.push(call.url.as_str());
            method.push(call.method.as_str());
            event_type.push(call.event_type.as_str());
            params.push(parley_core::store::rows::to_json(&call.params)?);
            retry_max.push(call.retry_count_max);
            available_at.push(call.available_at.unix_micros());
            order_key.push(call.order_key.as_str());
            created.push(call.date_created.unix_micros());
            attempts.push(call.attempts);
            lease_owner.push(call.leased_to.as_ref().map(|(who, _)| who.as_str()));
            lease_until.push(call.leased_to.as_ref().map(|(_, t)| t.unix_micros()));
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        crate::log::advance_in(&mut tx, consumer, service.as_str(), owner, to_seq).await?;
        let mut ids: Vec<i64> = Vec::new();
        if !calls.is_empty() {
            // Ids are drawn in the order the rows come out of the sorted select: queue order
            // (`returning` has no order of its own, so they are sorted back).
            ids = sqlx::query_scalar(
                "insert into webhook_calls
                     (account_sid, service_sid, channel_sid, url, method, event_type, params,
                      retry_count_max, available_at, order_key, date_created, attempts,
                      lease_owner, lease_until)
                 select a, s, ch, u, m, e, p, r, av, k, d, n_try, lo, lu
                 from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::int[], $9::bigint[], $10::text[],
                             $11::bigint[], $12::int[], $13::text[], $14::bigint[])
                      with ordinality as t(a, s, ch, u, m, e, p, r, av, k, d, n_try, lo, lu, n)
                 order by n
                 returning id",
            )
            .bind(&account)
            .bind(&service_sid)
            .bind(&channel)
            .bind(&url)
            .bind(&method)
            .bind(&event_type)
            .bind(&params)
            .bind(&retry_max)
            .bind(&available_at)
            .bind(&order_key)
            .bind(&created)
            .bind(&attempts)
            .bind(&lease_owner)
            .bind(&lease_until)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            ids.sort_unstable();
        }
        tx.commit().await.map_err(db)?;
        Ok(ids)
    }

    async fn waiting_webhook_keys(
        &self,
        service: &ServiceSid,
        keys: &[&str],
    ) -> StoreResult<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Mostly nothing of the service waits: the service index answers first, and only
        // then is each key probed in the key index.
        sqlx::query_scalar(
            "select k from unnest($2::text[]) as t(k)
             where exists (select 1 from webhook_calls where service_sid = $1)
               and exists (select 1 from webhook_calls where order_key = t.k)",
        )
        .bind(service.as_str())
        .bind(keys)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    async fn claim_webhook_runs(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        per_key: u32,
    ) -> StoreResult<Vec<WebhookCall>> {
        let now_us = now.unix_micros();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // 1. The heads (lowest id of each key) come from a skip scan of the key index: one
        //    index descent per key, whatever the number of calls queued behind the heads.
        //    Those due and free are locked (`skip locked`): a head another claimer is taking is
        //    skipped, and one it took (leased once it commits) no longer qualifies.
        let heads: Vec<(i64,)> = sqlx::query_as(
            "with recursive heads (order_key, id) as (
                 (select order_key, id from webhook_calls order by order_key, id limit 1)
                 union all
                 select n.order_key, n.id from heads h
                 cross join lateral (
                     select w.order_key, w.id from webhook_calls w
                     where w.order_key > h.order_key
                     order by w.order_key, w.id limit 1) n
             )
             select c.id from webhook_calls c
             where c.id in (select id from heads)
               and c.available_at <= $1 and (c.lease_until is null or c.lease_until < $1)
             order by c.id
             limit $2
             for update of c skip locked",
        )
        .bind(now_us)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if heads.is_empty() {
            return Ok(Vec::new());
        }
        let heads: Vec<i64> = heads.into_iter().map(|(id,)| id).collect();
        // 2. Each locked head's run: the key's first calls, up to the first one not due or not
        //    free. Only the holder of a key's head takes calls behind it, so runs never overlap.
        let calls: Vec<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "select h.id, w.id, w.available_at, w.lease_until
             from unnest($1::bigint[]) as h (id)
             join webhook_calls hc on hc.id = h.id
             cross join lateral (
                 select id, available_at, lease_until from webhook_calls
                 where order_key = hc.order_key
                 order by id limit $2) w
             order by h.id, w.id",
        )
        .bind(&heads)
        .bind(i64::from(per_key.max(1)))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut ids: Vec<i64> = Vec::new();
        let mut room = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut current: Option<(i64, bool)> = None; // (head, run still open)
        for (head, id, available_at, lease) in calls {
            let open = match current {
                Some((h, open)) if h == head => open,
                // A new key: its first row must be the head itself.
                _ => id == head,
            };
            let take =
                open && room > 0 && available_at <= now_us && lease.is_none_or(|l| l < now_us);
            current = Some((head, take));
            if take {
                ids.push(id);
                room -= 1;
            }
        }
        // 3. Lease them.
        let mut rows: Vec<Pg<WebhookCallRow>> = sqlx::query_as(&format!(
            "update webhook_calls set lease_owner = $1, lease_until = $2
             where id = any($3)
             returning {WEBHOOK_CALL_COLUMNS}"
        ))
        .bind(owner)
        .bind(lease_until.unix_micros())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        // `returning` has no order: oldest first again.
        rows.sort_by_key(|Pg(r)| r.id);
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(webhook_call.id = id))]
    async fn settle_webhook_call(&self, id: i64, owner: &str, settle: &Settle) -> StoreResult<()> {
        // A call no longer ours (lease taken over, or settled by the new owner) needs nothing.
        let query = match settle {
            Settle::Done => {
                sqlx::query("delete from webhook_calls where id = $1 and lease_owner = $2")
                    .bind(id)
                    .bind(owner)
            }
            Settle::Retry { at, attempts } => sqlx::query(
                "update webhook_calls
                 set available_at = $3, attempts = $4, lease_owner = null, lease_until = null
                 where id = $1 and lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(at.unix_micros())
            .bind(*attempts),
        };
        query.execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    /// The whole batch in one statement (a round trip per call was most of the sender's time
    /// against busy writers).
    #[tracing::instrument(skip_all, fields(calls = batch.len()))]
    async fn settle_webhook_calls(&self, owner: &str, batch: &[(i64, Settle)]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(batch.len());
        let mut done = Vec::with_capacity(batch.len());
        let mut at = Vec::with_capacity(batch.len());
        let mut attempts = Vec::with_capacity(batch.len());
        for (id, settle) in batch {
            ids.push(*id);
            match settle {
                Settle::Done => {
                    done.push(true);
                    at.push(0_i64);
                    attempts.push(0_i32);
                }
                Settle::Retry {
                    at: when,
                    attempts: n,
                } => {
                    done.push(false);
                    at.push(when.unix_micros());
                    attempts.push(*n);
                }
            }
        }
        // Data-modifying CTEs all run, referenced or not; a call no longer ours is left alone.
        sqlx::query(
            "with b as (
                 select * from unnest($2::bigint[], $3::bool[], $4::bigint[], $5::int[])
                     as t(id, done, at, attempts)
             ), gone as (
                 delete from webhook_calls w using b
                 where w.id = b.id and b.done and w.lease_owner = $1
             )
             update webhook_calls w
             set available_at = b.at, attempts = b.attempts, lease_owner = null,
                 lease_until = null
             from b
             where w.id = b.id and not b.done and w.lease_owner = $1",
        )
        .bind(owner)
        .bind(&ids)
        .bind(&done)
        .bind(&at)
        .bind(&attempts)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn webhook_queue_depth(&self) -> StoreResult<i64> {
        sqlx::query_scalar("select count(*) from webhook_calls")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }
}
