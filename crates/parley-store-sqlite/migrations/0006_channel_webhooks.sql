-- Parley schema v6 (SQLite): channel webhooks (contract §12). At most 5 per channel, counted in
-- the creating write transaction (the single writer serialises creates). `configuration` is the
-- JSON object of the keys that were set (`url`, `method`, `filters`, `triggers`, `flow_sid`,
-- `retry_count`). Rows go with their channel, and so with their service.
-- Its PostgreSQL twin has the same file name (checked by a test).
-- Never edit this file once released: sqlx checksums applied migrations.

create table channel_webhooks (
    sid           text    primary key not null,
    account_sid   text    not null,
    service_sid   text    not null,
    channel_sid   text    not null references channels (sid) on delete cascade,
    webhook_type  text    not null check (webhook_type in ('webhook', 'trigger', 'studio')),
    configuration text    not null,
    date_created  integer not null,
    date_updated  integer not null
);
create index channel_webhooks_by_channel on channel_webhooks (channel_sid, date_created, sid);
