-- Parley schema v3 (SQLite): push delivery state — the per-(event, binding) deliveries the
-- fan-out creates from `push_outbox` (0002), and the delivery log.
-- Its PostgreSQL twin has the same file name (checked by a test).
-- Conventions as in 0001/0002: integer epoch microseconds, columns named like the domain fields.
-- Never edit this file once released: sqlx checksums applied migrations.
--
-- Cascades: deleting a binding removes its pending deliveries (so deleting a dead token, a user,
-- a credential or a service drops what was queued for it); deleting a service removes its log.
-- The log keeps no reference to the binding: it outlives it.

create table push_deliveries (
    -- `<event id>:<binding sid>`: a fan-out that runs twice creates each delivery once
    id             text    primary key not null,
    event_id       integer not null,
    account_sid    text    not null,
    service_sid    text    not null,
    binding_sid    text    not null references bindings (sid) on delete cascade,
    credential_sid text,
    binding_type   text    not null check (binding_type in ('apn', 'gcm', 'fcm')),
    address        text    not null,
    identity       text    not null,
    -- the provider payload input, serialized by parley-push (opaque to the store)
    payload        text    not null,
    event_at       integer not null,
    available_at   integer not null,
    lease_until    integer,
    attempts       integer not null default 0,
    last_error     text
);
-- claims walk this in (available_at, id) order
create index push_deliveries_due on push_deliveries (available_at, id);
-- the cascade from bindings
create index push_deliveries_by_binding on push_deliveries (binding_sid);

create table push_log (
    -- insertion order; the unique tie-breaker of the list order (`id` repeats across attempts)
    seq          integer primary key autoincrement,
    -- the delivery id
    id           text    not null,
    account_sid  text    not null,
    service_sid  text    not null,
    event_id     integer not null,
    kind         text    not null,
    binding_sid  text    not null,
    identity     text    not null,
    binding_type text    not null,
    outcome      text    not null,
    reason       text,
    attempt      integer not null,
    date_created integer not null,
    foreign key (service_sid, account_sid) references services (sid, account_sid)
        on delete cascade
);
-- the list order (keyset pages over (date_created, seq) within a service) and the cascade
create index push_log_by_service on push_log (service_sid, date_created, seq);
-- retention
create index push_log_by_date on push_log (date_created);
