//! Push delivery state (parley_core::push): the outbox claim, fan-out recipients, deliveries
//! with leases, and the delivery log.
//!
//! Every claim is one statement: `update … where key in (select key … for update skip locked)
//! returning …`. Workers on several nodes therefore take disjoint rows without waiting on each
//! other, and a row whose lease ran out (its node crashed) is claimable again.

use parley_core::event::{Event, EventKind};
use parley_core::paging::{Page, PageRequest};
use parley_core::push::{Delivery, NewDelivery, OutboxItem, PushLogEntry, Recipient, Settle};
use parley_core::store::{PushStore, StoreError, StoreResult};
use parley_core::{AccountSid, ServiceSid, Timestamp};
use sqlx::{FromRow, Postgres, QueryBuilder};

use crate::error::db;
use crate::rows::{convert_all, recipients, BindingRow, DeliveryRow, EventRow, Pg, PushLogRow};
use crate::PgStore;

/// Deliveries inserted per statement by [`PushStore::complete_fanout`] (one `unnest` each).
const FANOUT_CHUNK: usize = 2000;

/// Whole-transaction attempts of one fan-out completion (see [`fanout_may_succeed_again`]).
const FANOUT_ATTEMPTS: u32 = 3;

fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// A claimed `push_outbox` row with its event.
#[derive(Debug, FromRow)]
struct OutboxRow {
    #[sqlx(flatten)]
    event: Pg<EventRow>,
    outbox_attempts: i32,
    fanout_after: Option<String>,
}

impl TryFrom<OutboxRow> for OutboxItem {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        Ok(OutboxItem {
            event: r.event.0.try_into()?,
            attempts: r.outbox_attempts,
            fanout_after: r.fanout_after,
        })
    }
}

/// Parse a push-log `Cursor.sid` back into `seq`. The cursor of an entry is
/// `Cursor { key: date_created, sid: format!("{seq:020}") }`: zero-padded to 20 digits
/// (`i64::MAX` has 19) so that the text order of cursors is their numeric order.
fn parse_push_log_cursor_sid(s: &str) -> StoreResult<i64> {
    s.parse::<i64>()
        .map_err(|_| StoreError::InvalidReference("push log cursor"))
}

/// Column arrays of a chunk of deliveries, for one `unnest` insert.
#[derive(Default)]
struct DeliveryColumns<'a> {
    id: Vec<&'a str>,
    event_id: Vec<i64>,
    account_sid: Vec<&'a str>,
    service_sid: Vec<&'a str>,
    binding_sid: Vec<&'a str>,
    credential_sid: Vec<Option<&'a str>>,
    binding_type: Vec<&'static str>,
    address: Vec<&'a str>,
    identity: Vec<&'a str>,
    payload: Vec<&'a str>,
    event_at: Vec<i64>,
    available_at: Vec<i64>,
}

impl<'a> DeliveryColumns<'a> {
    fn of(deliveries: &'a [NewDelivery]) -> Self {
        let mut c = Self::default();
        for d in deliveries {
            c.id.push(&d.id);
            c.event_id.push(d.event_id);
            c.account_sid.push(d.account_sid.as_str());
            c.service_sid.push(d.service_sid.as_str());
            c.binding_sid.push(d.binding_sid.as_str());
            c.credential_sid
                .push(d.credential_sid.as_ref().map(|s| s.as_str()));
            c.binding_type.push(d.binding_type.as_str());
            c.address.push(&d.address);
            c.identity.push(&d.identity);
            c.payload.push(&d.payload);
            c.event_at.push(d.event_at.unix_micros());
            c.available_at.push(d.available_at.unix_micros());
        }
        c
    }
}

impl PgStore {
    /// One attempt at the fan-out completion transaction.
    /// Insert `deliveries`, then either record `after` as the progress (a chunk) or, with
    /// `None`, delete the outbox entry (the last chunk), in one transaction.
    async fn try_complete_fanout(
        &self,
        event_id: i64,
        deliveries: &[NewDelivery],
        after: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for chunk in deliveries.chunks(FANOUT_CHUNK) {
            let c = DeliveryColumns::of(chunk);
            // Deliveries to a binding deleted since the recipients were read are dropped:
            // there is no device left to notify.
            sqlx::query(
                "insert into push_deliveries (id, event_id, account_sid, service_sid, binding_sid,
                                              credential_sid, binding_type, address, identity,
                                              payload, event_at, available_at)
                 select u.id, u.event_id, u.account_sid, u.service_sid, u.binding_sid,
                        u.credential_sid, u.binding_type, u.address, u.identity, u.payload,
                        u.event_at, u.available_at
                 from unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::bigint[], $12::bigint[])
                      as u(id, event_id, account_sid, service_sid, binding_sid, credential_sid,
                           binding_type, address, identity, payload, event_at, available_at)
                 where exists (select 1 from bindings b where b.sid = u.binding_sid)
                 on conflict (id) do nothing",
            )
            .bind(&c.id)
            .bind(&c.event_id)
            .bind(&c.account_sid)
            .bind(&c.service_sid)
            .bind(&c.binding_sid)
            .bind(&c.credential_sid)
            .bind(&c.binding_type)
            .bind(&c.address)
            .bind(&c.identity)
            .bind(&c.payload)
            .bind(&c.event_at)
            .bind(&c.available_at)
            .execute(&mut *tx)
            .await?;
        }
        match after {
            // Byte order (`collate "C"`), as the worker orders recipients.
            Some(after) => {
                sqlx::query(
                    r#"update push_outbox
                       set fanout_after = greatest(coalesce(fanout_after, '') collate "C",
                                                   $2::text collate "C")
                       where event_id = $1"#,
                )
                .bind(event_id)
                .bind(after)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("delete from push_outbox where event_id = $1")
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// [`PgStore::try_complete_fanout`], retried when another try may succeed.
    async fn write_fanout(
        &self,
        event_id: i64,
        deliveries: &[NewDelivery],
        after: Option<&str>,
    ) -> StoreResult<()> {
        let mut attempt = 1;
        loop {
            match self.try_complete_fanout(event_id, deliveries, after).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < FANOUT_ATTEMPTS && fanout_may_succeed_again(&e) => {
                    tracing::debug!(attempt, error = %e, "retrying fan-out write");
                    attempt += 1;
                }
                Err(e) => return Err(db(e)),
            }
        }
    }
}

/// Whether running the fan-out completion again may succeed: a binding vanished between the
/// existence filter and the foreign-key check, or two nodes completing the same event (a lease
/// ran out mid-fan-out) deadlocked or failed to serialize.
fn fanout_may_succeed_again(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_foreign_key_violation() || matches!(d.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

#[async_trait::async_trait]
impl PushStore for PgStore {
    #[tracing::instrument(skip_all, fields(limit))]
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        // `attempts` is returned as it was before this claim ("previous attempts").
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "with claimed as (
                 update push_outbox set lease_until = $2, attempts = attempts + 1
                 where event_id in (
                     select event_id from push_outbox
                     where available_at <= $1 and (lease_until is null or lease_until < $1)
                     order by available_at, event_id
                     limit $3
                     for update skip locked)
                 returning event_id, attempts - 1 as outbox_attempts, fanout_after
             )
             select e.*, c.outbox_attempts, c.fanout_after
             from claimed c join events e on e.id = c.event_id
             order by e.id",
        )
        .bind(now.unix_micros())
        .bind(lease_until.unix_micros())
        .bind(self::limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(OutboxItem::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(event.id = event.id, event.kind = event.kind.as_str()))]
    async fn recipients(&self, event: &Event) -> StoreResult<Vec<Recipient>> {
        // Only channel events of the push kinds have recipients.
        let Some(channel_sid) = event.channel_sid.as_ref() else {
            return Ok(Vec::new());
        };
        let rows: Vec<Pg<BindingRow>> = match event.kind {
            // Every member's devices, except the author's and muted members'.
            EventKind::NewMessage => sqlx::query_as(
                "select b.* from members m
                 join bindings b on b.service_sid = m.service_sid and b.user_sid = m.user_sid
                 where m.channel_sid = $1 and m.account_sid = $2 and m.service_sid = $3
                   and m.notification_level <> 'muted'
                   and m.identity is distinct from $4::text
                 order by b.sid",
            )
            .bind(channel_sid.as_str())
            .bind(event.account_sid.as_str())
            .bind(event.service_sid.as_str())
            .bind(event.actor.as_deref())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?,
            // The affected user's devices; for added/removed not when that user's membership of
            // the channel is muted (an invitee has no membership to mute).
            EventKind::AddedToChannel
            | EventKind::InvitedToChannel
            | EventKind::RemovedFromChannel => {
                let Some(identity) = event.identity.as_deref() else {
                    return Ok(Vec::new());
                };
                let honour_mute = event.kind != EventKind::InvitedToChannel;
                sqlx::query_as(
                    "select b.* from bindings b
                     where b.account_sid = $1 and b.service_sid = $2 and b.identity = $3
                       and not ($5 and exists (
                           select 1 from members m
                           where m.channel_sid = $4 and m.identity = $3
                             and m.notification_level = 'muted'))
                     order by b.sid",
                )
                .bind(event.account_sid.as_str())
                .bind(event.service_sid.as_str())
                .bind(identity)
                .bind(channel_sid.as_str())
                .bind(honour_mute)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
            }
            _ => return Ok(Vec::new()),
        };
        recipients(event.kind, rows.into_iter().map(|Pg(row)| row).collect())
    }

    #[tracing::instrument(skip_all, fields(event.id = event_id, deliveries = deliveries.len()))]
    async fn complete_fanout(&self, event_id: i64, deliveries: &[NewDelivery]) -> StoreResult<()> {
        self.write_fanout(event_id, deliveries, None).await
    }

    #[tracing::instrument(skip_all, fields(event.id = event_id, n = deliveries.len()))]
    async fn fanout_progress(
        &self,
        event_id: i64,
        deliveries: &[NewDelivery],
        after: &str,
    ) -> StoreResult<()> {
        self.write_fanout(event_id, deliveries, Some(after)).await
    }

    #[tracing::instrument(skip_all, fields(event.id = event_id))]
    async fn retry_outbox(&self, event_id: i64, at: Timestamp) -> StoreResult<()> {
        // No row: another node completed it after our lease ran out — nothing left to retry.
        sqlx::query(
            "update push_outbox set available_at = $2, lease_until = null where event_id = $1",
        )
        .bind(event_id)
        .bind(at.unix_micros())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(limit))]
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        // `attempts` is returned as it was before this claim ("previous send attempts").
        let mut rows: Vec<Pg<DeliveryRow>> = sqlx::query_as(
            "update push_deliveries set lease_until = $2, attempts = attempts + 1
             where id in (
                 select id from push_deliveries
                 where available_at <= $1 and (lease_until is null or lease_until < $1)
                 order by available_at, id
                 limit $3
                 for update skip locked)
             returning id, event_id, account_sid, service_sid, binding_sid, credential_sid,
                       binding_type, address, identity, payload, event_at, available_at,
                       attempts - 1 as attempts",
        )
        .bind(now.unix_micros())
        .bind(lease_until.unix_micros())
        .bind(self::limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        // `returning` has no order: oldest first again.
        rows.sort_by(|Pg(a), Pg(b)| (a.available_at, &a.id).cmp(&(b.available_at, &b.id)));
        convert_all(rows)
    }

    #[tracing::instrument(skip_all, fields(delivery.id = id))]
    async fn settle_delivery(&self, id: &str, settle: &Settle) -> StoreResult<()> {
        // A delivery that is already gone (settled by another node after our lease ran out, or
        // its binding deleted) needs nothing more.
        let query = match settle {
            Settle::Delivered | Settle::Failed { .. } => {
                sqlx::query("delete from push_deliveries where id = $1").bind(id)
            }
            Settle::Retry { at, error } => sqlx::query(
                "update push_deliveries
                 set available_at = $2, lease_until = null, last_error = $3
                 where id = $1",
            )
            .bind(id)
            .bind(at.unix_micros())
            .bind(error.as_str()),
            // The binding goes only while it still holds the token that was reported dead: a
            // re-registration may have given it a fresh token since. Its other pending
            // deliveries go with it (cascade).
            Settle::DeadToken { .. } => sqlx::query(
                "with d as (
                     delete from push_deliveries where id = $1
                     returning binding_sid, address
                 )
                 delete from bindings b using d
                 where b.sid = d.binding_sid and b.address = d.address",
            )
            .bind(id),
        };
        query.execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    /// Three set statements at most (delete the finished, reschedule the retries, delete the
    /// dead tokens' deliveries and bindings), each atomic, rows in id order so concurrent
    /// nodes lock in one order.
    #[tracing::instrument(skip_all, fields(n = batch.len()))]
    async fn settle_deliveries(&self, batch: &[(String, Settle)]) -> StoreResult<()> {
        let mut done: Vec<&str> = Vec::new();
        let mut retry: Vec<(&str, i64, &str)> = Vec::new();
        let mut dead: Vec<&str> = Vec::new();
        for (id, settle) in batch {
            match settle {
                Settle::Delivered | Settle::Failed { .. } => done.push(id),
                Settle::Retry { at, error } => retry.push((id, at.unix_micros(), error)),
                Settle::DeadToken { .. } => dead.push(id),
            }
        }
        done.sort_unstable();
        retry.sort_unstable();
        dead.sort_unstable();
        if !done.is_empty() {
            sqlx::query("delete from push_deliveries where id = any($1)")
                .bind(&done)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        if !retry.is_empty() {
            let ids: Vec<&str> = retry.iter().map(|r| r.0).collect();
            let ats: Vec<i64> = retry.iter().map(|r| r.1).collect();
            let errors: Vec<&str> = retry.iter().map(|r| r.2).collect();
            sqlx::query(
                "update push_deliveries d
                 set available_at = r.at, lease_until = null, last_error = r.error
                 from unnest($1::text[], $2::bigint[], $3::text[]) as r(id, at, error)
                 where d.id = r.id",
            )
            .bind(&ids)
            .bind(&ats)
            .bind(&errors)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        }
        if !dead.is_empty() {
            sqlx::query(
                "with d as (
                     delete from push_deliveries where id = any($1)
                     returning binding_sid, address
                 )
                 delete from bindings b using d
                 where b.sid = d.binding_sid and b.address = d.address",
            )
            .bind(&dead)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn push_queue_depth(&self) -> StoreResult<(i64, i64)> {
        sqlx::query_as(
            "select (select count(*) from push_outbox), (select count(*) from push_deliveries)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn badge_count(&self, service: &ServiceSid, identity: &str) -> StoreResult<i64> {
        // Through `users` (unique (service_sid, identity)) to the user's memberships
        // (members_user_list), then each channel by primary key.
        sqlx::query_scalar(
            "select count(*) from users u
             join members m on m.user_sid = u.sid and m.service_sid = u.service_sid
             join channels c on c.sid = m.channel_sid
             where u.service_sid = $1 and u.identity = $2
               and c.members_count = 2
               and c.last_message_index is not null
               and (m.last_consumed_message_index is null
                    or m.last_consumed_message_index < c.last_message_index)",
        )
        .bind(service.as_str())
        .bind(identity)
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    #[tracing::instrument(skip_all, fields(service.sid = %entry.service_sid, delivery.id = %entry.id))]
    async fn append_push_log(&self, entry: &PushLogEntry) -> StoreResult<()> {
        // `entry.seq` is ignored: the identity column assigns it.
        sqlx::query(
            "insert into push_log (id, account_sid, service_sid, event_id, kind, binding_sid,
                                   identity, binding_type, outcome, reason, attempt, date_created)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&entry.id)
        .bind(entry.account_sid.as_str())
        .bind(entry.service_sid.as_str())
        .bind(entry.event_id)
        .bind(&entry.kind)
        .bind(entry.binding_sid.as_str())
        .bind(&entry.identity)
        .bind(entry.binding_type.as_str())
        .bind(&entry.outcome)
        .bind(entry.reason.as_deref())
        .bind(entry.attempt)
        .bind(entry.date_created.unix_micros())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(service.sid = %service))]
    async fn list_push_log(
        &self,
        account: &AccountSid,
        service: &ServiceSid,
        page: &PageRequest,
    ) -> StoreResult<Page<PushLogEntry>> {
        let mut qb: QueryBuilder<'_, Postgres> =
            QueryBuilder::new("select * from push_log where account_sid = ");
        qb.push_bind(account.as_str())
            .push(" and service_sid = ")
            .push_bind(service.as_str());
        let descending = match &page.cursor {
            None => false,
            Some(c) => {
                let seq = parse_push_log_cursor_sid(&c.sid)?;
                qb.push(if c.backwards {
                    " and (date_created, seq) < ("
                } else {
                    " and (date_created, seq) > ("
                });
                qb.push_bind(c.key).push(", ").push_bind(seq).push(")");
                c.backwards
            }
        };
        qb.push(if descending {
            " order by date_created desc, seq desc limit "
        } else {
            " order by date_created, seq limit "
        });
        qb.push_bind(page.fetch_limit());
        let rows: Vec<Pg<PushLogRow>> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(Page::from_fetched(convert_all(rows)?, page))
    }

    #[tracing::instrument(skip_all, fields(limit))]
    async fn prune_push_log(&self, cutoff: Timestamp, limit: u32) -> StoreResult<u64> {
        // `skip locked`: pruners on several nodes take disjoint rows instead of queueing.
        let done = sqlx::query(
            "delete from push_log where seq in (
                 select seq from push_log
                 where date_created < $1
                 order by date_created
                 limit $2
                 for update skip locked)",
        )
        .bind(cutoff.unix_micros())
        .bind(self::limit(limit))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }
}
