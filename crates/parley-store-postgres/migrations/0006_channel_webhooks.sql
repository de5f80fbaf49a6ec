-- Parley schema v6 (PostgreSQL): channel webhooks (contract §12). Mirrors
-- parley-store-sqlite/migrations/0006_channel_webhooks.sql. At most 5 per channel, counted in the
-- creating transaction under the channel's row lock. `configuration` is the JSON object (as text)
-- of the keys that were set. Rows go with their channel, and so with their service.
-- Never edit this file once released: sqlx checksums applied migrations.

create table channel_webhooks (
    sid           text collate "C" primary key,
    account_sid   text collate "C" not null,
    service_sid   text collate "C" not null,
    channel_sid   text collate "C" not null,
    webhook_type  text not null check (webhook_type in ('webhook', 'trigger', 'studio')),
    configuration text not null,
    date_created  bigint not null,
    date_updated  bigint not null,
    constraint channel_webhooks_channel_fk foreign key (channel_sid, service_sid)
        references channels (sid, service_sid) on delete cascade
);
create index channel_webhooks_list on channel_webhooks (channel_sid, date_created, sid);
