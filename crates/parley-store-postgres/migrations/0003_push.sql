-- Parley schema v3 (PostgreSQL): push delivery state. Mirrors parley-store-sqlite/migrations/0003_push.sql.
-- The outbox itself (`push_outbox`, one row per event) is in 0002 with the events it queues.
-- Same conventions as 0001/0002: `text collate "C"` SIDs, bigint epoch microseconds.
-- Never edit this file once released: sqlx checksums applied migrations.

-- One (event, binding) send, created by the fan-out. Claimed with `for update skip locked` and
-- a lease (`lease_until`), so workers on several nodes never send the same row at once and an
-- expired lease (crashed node) makes it claimable again. Deleting the binding (dead token,
-- unregistration, its credential or user or service deleted) deletes its pending sends.
create table push_deliveries (
    -- `<event id>:<binding sid>`: a repeated fan-out of one event inserts nothing twice.
    id             text collate "C" primary key,
    event_id       bigint not null,
    account_sid    text collate "C" not null,
    service_sid    text collate "C" not null,
    binding_sid    text collate "C" not null,
    credential_sid text collate "C",
    binding_type   text not null check (binding_type in ('apn', 'gcm', 'fcm')),
    address        text not null,
    identity       text not null,
    -- provider payload input, serialized by parley-push (opaque to the store)
    payload        text not null,
    event_at       bigint not null,
    available_at   bigint not null,
    lease_until    bigint,
    attempts       int not null default 0,
    last_error     text,
    constraint push_deliveries_binding_fk foreign key (binding_sid)
        references bindings (sid) on delete cascade
);
create index push_deliveries_due on push_deliveries (available_at);
-- The binding cascade (and dead-token settles) find a binding's sends without a scan.
create index push_deliveries_by_binding on push_deliveries (binding_sid);

-- The delivery log (services with Notifications.LogEnabled). `seq` orders rows written in the
-- same microsecond; list cursors are (date_created, seq). Outlives bindings and events; goes
-- with the service.
create table push_log (
    seq          bigint generated always as identity primary key,
    id           text collate "C" not null,
    account_sid  text collate "C" not null,
    service_sid  text collate "C" not null,
    event_id     bigint not null,
    kind         text not null,
    binding_sid  text collate "C" not null,
    identity     text not null,
    binding_type text not null,
    outcome      text not null,
    reason       text,
    attempt      int not null,
    date_created bigint not null,
    constraint push_log_service_fk foreign key (service_sid, account_sid)
        references services (sid, account_sid) on delete cascade
);
create index push_log_by_service on push_log (service_sid, date_created, seq);
-- Retention: the oldest rows of every service.
create index push_log_by_date on push_log (date_created);
