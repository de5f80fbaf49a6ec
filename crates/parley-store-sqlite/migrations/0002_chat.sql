-- Parley schema v2 (SQLite): the chat core — channels, members, messages, invites — and the
-- change log (`events`) with the push engine's queue (`push_outbox`).
-- Its PostgreSQL twin has the same file name (checked by a test); the shared conformance suite
-- checks that both behave alike.
-- Conventions as in 0001: integer epoch microseconds, columns named like the wire fields,
-- `msg_index`/`msg_from` because `index` and `from` are SQL keywords.
-- Never edit this file once released: sqlx checksums applied migrations.
--
-- Cascades: deleting a service removes its channels (and through them members, messages,
-- invites) and its events; deleting a channel removes its members, messages and invites;
-- deleting a user removes its memberships and invites; deleting a role clears it from members
-- and invites. Events outlive their channel (consumers may still need them).
--
-- Counters: `channels.members_count` is kept by the two triggers on `members`, so it stays exact
-- on every path that adds or removes a membership, including the cascade from a deleted user.
-- `messages_count`, `next_message_index` and the last message are kept by the store's own
-- statements (one `update … returning` per posted message; no per-row trigger on the hot path).

create table channels (
    sid                text    primary key not null,
    account_sid        text    not null,
    service_sid        text    not null,
    friendly_name      text,
    unique_name        text,
    attributes         text,
    channel_type       text    not null check (channel_type in ('public', 'private')),
    created_by         text,
    members_count      integer not null default 0,
    messages_count     integer not null default 0,
    -- the index the next posted message gets; never goes down, so indexes are never reused
    next_message_index integer not null default 0,
    last_message_sid   text,
    last_message_index integer,
    date_created       integer not null,
    date_updated       integer not null,
    foreign key (service_sid, account_sid) references services (sid, account_sid)
        on delete cascade
);
-- NULL unique names do not collide (SQL semantics, same in PostgreSQL).
create unique index channels_unique_name on channels (service_sid, unique_name);
create index channels_by_service on channels (service_sid, date_created, sid);
create index channels_by_type on channels (service_sid, channel_type, date_created, sid);

create table members (
    sid                         text    primary key not null,
    account_sid                 text    not null,
    service_sid                 text    not null,
    channel_sid                 text    not null references channels (sid) on delete cascade,
    user_sid                    text    not null references users (sid) on delete cascade,
    identity                    text    not null,
    role_sid                    text    references roles (sid) on delete set null,
    last_consumed_message_index integer,
    last_consumption_timestamp  integer,
    attributes                  text,
    notification_level          text    not null default 'default'
        check (notification_level in ('default', 'muted')),
    date_created                integer not null,
    date_updated                integer not null
);
create unique index members_identity on members (channel_sid, identity);
create index members_by_channel on members (channel_sid, date_created, sid);
-- user channels (list order), per-user limit counts, and the cascade from users
create index members_by_user on members (user_sid, date_created, channel_sid);
create index members_by_role on members (role_sid);

create trigger members_count_up after insert on members
begin
    update channels set members_count = members_count + 1 where sid = new.channel_sid;
end;

create trigger members_count_down after delete on members
begin
    update channels set members_count = members_count - 1 where sid = old.channel_sid;
end;

create table messages (
    sid             text    primary key not null,
    account_sid     text    not null,
    service_sid     text    not null,
    channel_sid     text    not null references channels (sid) on delete cascade,
    msg_index       integer not null,
    msg_from        text    not null,
    body            text,
    attributes      text,
    last_updated_by text,
    was_edited      integer not null default 0,
    date_created    integer not null,
    date_updated    integer not null
);
-- the list order in both directions, the newest-first page at any channel size, unread counts
-- and the cascade from channels — one index.
create unique index messages_by_index on messages (channel_sid, msg_index);

create table invites (
    sid          text    primary key not null,
    account_sid  text    not null,
    service_sid  text    not null,
    channel_sid  text    not null references channels (sid) on delete cascade,
    user_sid     text    not null references users (sid) on delete cascade,
    identity     text    not null,
    role_sid     text    references roles (sid) on delete set null,
    created_by   text,
    date_created integer not null,
    date_updated integer not null
);
create unique index invites_identity on invites (channel_sid, identity);
create index invites_by_channel on invites (channel_sid, date_created, sid);
create index invites_by_user on invites (user_sid, date_created, channel_sid);
create index invites_by_role on invites (role_sid);

-- The change log (ARCHITECTURE §6): appended in the same transaction as the change it records;
-- self-contained (no joins needed to address a notification). `autoincrement`: ids are never
-- reused, even after the log is trimmed.
create table events (
    id                    integer primary key autoincrement,
    kind                  text    not null check (kind in ('new_message', 'added_to_channel',
                                                           'invited_to_channel',
                                                           'removed_from_channel')),
    account_sid           text    not null,
    service_sid           text    not null references services (sid) on delete cascade,
    channel_sid           text    not null,
    channel_unique_name   text,
    channel_friendly_name text,
    message_sid           text,
    message_index         integer,
    body                  text,
    member_sid            text,
    invite_sid            text,
    identity              text,
    actor                 text,
    date_created          integer not null
);
create index events_by_service on events (service_sid, id);

-- The push engine's queue: one row per event (delivery state lives here, not in the log).
create table push_outbox (
    event_id     integer primary key not null references events (id) on delete cascade,
    available_at integer not null,
    lease_until  integer,
    attempts     integer not null default 0
);
create index push_outbox_due on push_outbox (available_at, event_id);

-- Every event gets its outbox row in the same statement, so no write path can forget it.
create trigger events_to_push_outbox after insert on events
begin
    insert into push_outbox (event_id, available_at) values (new.id, new.date_created);
end;
