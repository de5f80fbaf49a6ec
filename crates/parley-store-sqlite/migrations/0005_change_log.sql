-- Parley schema v5: the complete change log (ARCHITECTURE §6, docs/change-log.md). Every
-- mutation of channels, members, messages, invites and users appends one event in the same
-- transaction. New per event:
--   seq       per-service position, gapless and in commit order (from event_seqs);
--   source    'API' (REST) or 'SDK' (client); webhooks: whether webhooks fire for it;
--   state     the resource after the change (before it, for removals) as JSON; null for events
--             written before v5;
--   changed   JSON array of the fields an update changed ('[]' otherwise);
--   channel_sid is null for user events.
-- Only the four push kinds are queued in push_outbox. Consumers other than push keep their
-- positions in log_positions (per consumer and service, with a lease so one node at a time
-- reads a service's events for a consumer).
-- SQLite cannot drop NOT NULL in place: events is rebuilt (ids, and the autoincrement counter,
-- kept), and push_outbox with it (its foreign key must name the new table).
-- Its twin in the other backend has the same file name (checked by a test).
-- Never edit this file once released: the checksum of applied migrations is recorded.

create table events_v5 (
    id                    integer primary key autoincrement,
    seq                   integer not null,
    kind                  text    not null check (kind in ('new_message', 'added_to_channel', 'invited_to_channel', 'removed_from_channel', 'message_updated', 'message_removed', 'channel_added', 'channel_updated', 'channel_removed', 'member_updated', 'invite_removed', 'user_added', 'user_updated', 'user_removed')),
    account_sid           text    not null,
    service_sid           text    not null references services (sid) on delete cascade,
    channel_sid           text,
    channel_unique_name   text,
    channel_friendly_name text,
    message_sid           text,
    message_index         integer,
    body                  text,
    member_sid            text,
    invite_sid            text,
    identity              text,
    actor                 text,
    source                text    not null default 'API' check (source in ('API', 'SDK')),
    webhooks              integer not null default 0 check (webhooks in (0, 1)),
    state                 text,
    changed               text    not null default '[]',
    date_created          integer not null
);
insert into events_v5 (id, seq, kind, account_sid, service_sid, channel_sid, channel_unique_name,
                       channel_friendly_name, message_sid, message_index, body, member_sid,
                       invite_sid, identity, actor, date_created)
select id, row_number() over (partition by service_sid order by id), kind, account_sid,
       service_sid, channel_sid, channel_unique_name, channel_friendly_name, message_sid,
       message_index, body, member_sid, invite_sid, identity, actor, date_created
from events;

create table push_outbox_v5 (
    event_id     integer primary key not null references events_v5 (id) on delete cascade,
    available_at integer not null,
    lease_until  integer,
    attempts     integer not null default 0,
    fanout_after text
);
insert into push_outbox_v5 (event_id, available_at, lease_until, attempts, fanout_after)
select event_id, available_at, lease_until, attempts, fanout_after from push_outbox;

-- Keep the id counter where it was (ids are never reused, even after trimming).
insert into sqlite_sequence (name, seq)
select 'events_v5', seq from sqlite_sequence
where name = 'events' and not exists (select 1 from sqlite_sequence where name = 'events_v5');
update sqlite_sequence
set seq = (select max(seq) from sqlite_sequence where name in ('events', 'events_v5'))
where name = 'events_v5';

drop trigger events_to_push_outbox;
drop table push_outbox;
drop table events;
alter table events_v5 rename to events;
alter table push_outbox_v5 rename to push_outbox;
create index events_by_service on events (service_sid, id);
create unique index events_by_seq on events (service_sid, seq);
create index push_outbox_due on push_outbox (available_at, event_id);

-- The push engine's kinds get their outbox row in the same statement.
create trigger events_to_push_outbox after insert on events
when new.kind in ('new_message', 'added_to_channel', 'invited_to_channel', 'removed_from_channel')
begin
    insert into push_outbox (event_id, available_at) values (new.id, new.date_created);
end;

-- The last seq handed out per service (the next event gets last_seq + 1).
create table event_seqs (
    service_sid text primary key not null references services (sid) on delete cascade,
    last_seq    integer not null
);
insert into event_seqs (service_sid, last_seq)
select service_sid, max(seq) from events group by service_sid;

-- Each consumer's position per service: every event with seq <= position is done for it.
create table log_positions (
    consumer    text    not null,
    service_sid text    not null references services (sid) on delete cascade,
    position    integer not null default 0,
    lease_owner text,
    lease_until integer,
    primary key (consumer, service_sid)
);
