-- Parley schema v5: the complete change log (ARCHITECTURE §6, docs/change-log.md). Every
-- mutation of channels, members, messages, invites and users appends one event in the same
-- transaction. New per event:
--   seq       per-service position, gapless and in commit order: taken from event_seqs with an
--             upsert whose row lock is held until commit, so a later seq never commits first;
--   source    'API' (REST) or 'SDK' (client); webhooks: whether webhooks fire for it;
--   state     the resource after the change (before it, for removals) as JSON text; null for
--             events written before v5;
--   changed   JSON array of the fields an update changed ('[]' otherwise);
--   channel_sid is null for user events.
-- Only the four push kinds get a push_outbox row (inserted by the writer). Consumers other than
-- push keep their positions in log_positions (per consumer and service, with a lease so one node
-- at a time reads a service's events for a consumer).
-- Its twin in the other backend has the same file name (checked by a test).
-- Never edit this file once released: sqlx checksums applied migrations.

alter table events add column seq bigint;
update events e set seq = n.seq
from (select id, row_number() over (partition by service_sid order by id) as seq from events) n
where n.id = e.id;
alter table events alter column seq set not null;
alter table events alter column channel_sid drop not null;
alter table events drop constraint events_kind_check;
alter table events add constraint events_kind_check check (kind in ('new_message', 'added_to_channel', 'invited_to_channel', 'removed_from_channel', 'message_updated', 'message_removed', 'channel_added', 'channel_updated', 'channel_removed', 'member_updated', 'invite_removed', 'user_added', 'user_updated', 'user_removed'));
alter table events add column source text not null default 'API' check (source in ('API', 'SDK'));
alter table events add column webhooks boolean not null default false;
alter table events add column state text;
alter table events add column changed text not null default '[]';
create unique index events_by_seq on events (service_sid, seq);

-- The last seq handed out per service (the next event gets last_seq + 1).
create table event_seqs (
    service_sid text collate "C" primary key references services (sid) on delete cascade,
    last_seq    bigint not null
);
insert into event_seqs (service_sid, last_seq)
select service_sid, max(seq) from events group by service_sid;

-- Each consumer's position per service: every event with seq <= position is done for it.
create table log_positions (
    consumer    text not null,
    service_sid text collate "C" not null references services (sid) on delete cascade,
    position    bigint not null default 0,
    lease_owner text,
    lease_until bigint,
    primary key (consumer, service_sid)
);
