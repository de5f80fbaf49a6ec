-- Parley schema v7 (SQLite): the durable queue of post-event webhook calls (webhooks.md §4, §6,
-- docs/WEBHOOK-DELIVERY.md). The webhook consumer of the change log turns events into one row per call
-- to make, in the same transaction that advances its `log_positions` row, so a crash between
-- reading events and queueing calls loses nothing and queues nothing twice.
--   params         JSON array of [name, value] pairs in order, without RetryCount (added per try);
--   attempts       tries made so far (the next try sends RetryCount = attempts);
--   order_key      calls with the same key (destination + channel or object) are delivered
--                  strictly in id order: only the lowest id of a key can be claimed;
--   lease_owner/lease_until  the node sending it now; an expired lease makes it claimable again.
-- Rows go with their service.
-- Its PostgreSQL twin has the same file name (checked by a test).
-- Never edit this file once released: the checksum of applied migrations is recorded.

create table webhook_calls (
    id              integer primary key autoincrement,
    account_sid     text    not null,
    service_sid     text    not null references services (sid) on delete cascade,
    channel_sid     text,
    url             text    not null,
    method          text    not null check (method in ('GET', 'POST')),
    event_type      text    not null,
    params          text    not null,
    retry_count_max integer not null default 0,
    attempts        integer not null default 0,
    available_at    integer not null,
    lease_owner     text,
    lease_until     integer,
    order_key       text    not null,
    date_created    integer not null
);
-- The head of each key (lowest id) and the claim's "no earlier call of this key" check.
create index webhook_calls_by_key on webhook_calls (order_key, id);
create index webhook_calls_due on webhook_calls (available_at, id);
create index webhook_calls_by_service on webhook_calls (service_sid);

-- A deleted channel's webhooks go with it, before the webhook consumer reads the channel_removed
-- event: that event (when webhooks fire for it) carries them as they were, a JSON array of the
-- channel webhooks (null for every other event).
alter table events add column channel_webhooks text;
