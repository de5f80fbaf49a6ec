-- Parley schema v7 (PostgreSQL): the durable queue of post-event webhook calls (webhooks.md §4,
-- §6, docs/WEBHOOK-DELIVERY.md). Mirrors parley-store-sqlite/migrations/0007_webhook_calls.sql.
-- The webhook consumer of the change log turns events into one row per call to make, in the
-- same transaction that advances its `log_positions` row (locked first, so the calls of one
-- service get ids in commit order), so a crash between reading events and queueing calls loses
-- nothing and queues nothing twice.
--   params         JSON array of [name, value] pairs in order, without RetryCount (added per try);
--   attempts       tries made so far (the next try sends RetryCount = attempts);
--   order_key      calls with the same key (destination + channel or object) are delivered
--                  strictly in id order: only the lowest id of a key can be claimed;
--   lease_owner/lease_until  the node sending it now; claims use `for update skip locked`, and
--                  an expired lease makes the call claimable again.
-- Rows go with their service.
-- Never edit this file once released: sqlx checksums applied migrations.

create table webhook_calls (
    id              bigint generated always as identity primary key,
    account_sid     text collate "C" not null,
    service_sid     text collate "C" not null references services (sid) on delete cascade,
    channel_sid     text collate "C",
    url             text not null,
    method          text not null check (method in ('GET', 'POST')),
    event_type      text not null,
    params          text not null,
    retry_count_max int not null default 0,
    attempts        int not null default 0,
    available_at    bigint not null,
    lease_owner     text,
    lease_until     bigint,
    order_key       text collate "C" not null,
    date_created    bigint not null
);
-- The head of each key (lowest id) and the claim's "no earlier call of this key" check.
create index webhook_calls_by_key on webhook_calls (order_key, id);
create index webhook_calls_due on webhook_calls (available_at, id);
create index webhook_calls_by_service on webhook_calls (service_sid);

-- A deleted channel's webhooks go with it, before the webhook consumer reads the channel_removed
-- event: that event (when webhooks fire for it) carries them as they were, a JSON array of the
-- channel webhooks (null for every other event).
alter table events add column channel_webhooks text;
