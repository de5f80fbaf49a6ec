-- Parley schema v2 (PostgreSQL): the chat core — channels, members, messages, invites — and the
-- change log (`events`) with its push outbox. Mirrors parley-store-sqlite/migrations/0002_chat.sql.
-- Same conventions as 0001: `sid text collate "C" primary key`, bigint epoch microseconds,
-- every row carries account_sid and service_sid; constraint names are used by the store to map
-- unique and foreign-key violations.
-- Never edit this file once released: sqlx checksums applied migrations.

create table channels (
    sid                text collate "C" primary key,
    account_sid        text collate "C" not null,
    service_sid        text collate "C" not null,
    friendly_name      text,
    unique_name        text,
    attributes         text,
    channel_type       text not null check (channel_type in ('public', 'private')),
    created_by         text,
    -- The index the next message gets. `update … set next_message_index = next_message_index + 1
    -- … returning` takes the row lock, so concurrent posters are serialised per channel.
    next_message_index bigint not null default 0,
    -- Exact counters, changed in the same transactions as the rows they count
    -- (members_count by the trigger below, messages_count by the store).
    members_count      bigint not null default 0,
    messages_count     bigint not null default 0,
    last_message_sid   text collate "C",
    last_message_index bigint,
    date_created       bigint not null,
    date_updated       bigint not null,
    constraint channels_unique_name unique (service_sid, unique_name),
    constraint channels_sid_service unique (sid, service_sid),
    constraint channels_service_fk foreign key (service_sid, account_sid)
        references services (sid, account_sid) on delete cascade
);
create index channels_list on channels (service_sid, date_created, sid);
create index channels_type_list on channels (service_sid, channel_type, date_created, sid);

-- A membership. Deleting the channel or the user deletes it.
create table members (
    sid                         text collate "C" primary key,
    account_sid                 text collate "C" not null,
    service_sid                 text collate "C" not null,
    channel_sid                 text collate "C" not null,
    user_sid                    text collate "C" not null,
    identity                    text not null,
    role_sid                    text collate "C",
    last_consumed_message_index bigint,
    last_consumption_timestamp  bigint,
    attributes                  text,
    notification_level          text not null default 'default'
        check (notification_level in ('default', 'muted')),
    date_created                bigint not null,
    date_updated                bigint not null,
    constraint members_identity unique (channel_sid, identity),
    constraint members_channel_fk foreign key (channel_sid, service_sid)
        references channels (sid, service_sid) on delete cascade,
    constraint members_user_fk foreign key (user_sid, service_sid)
        references users (sid, service_sid) on delete cascade,
    constraint members_role_fk foreign key (role_sid)
        references roles (sid) on delete set null
);
create index members_list on members (channel_sid, date_created, sid);
-- A user's channels (list order) and its joined-channel count (UserChannels limit).
create index members_user_list on members (user_sid, date_created, channel_sid);
create index members_role on members (role_sid);

-- members_count follows every insert and delete of a membership, including the cascades from a
-- deleted user (the channel's own cascade updates a row that is already gone: a no-op).
create function members_count_trigger() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        update channels set members_count = members_count + 1 where sid = new.channel_sid;
        return new;
    else
        update channels set members_count = members_count - 1 where sid = old.channel_sid;
        return old;
    end if;
end
$$;
create trigger members_count after insert or delete on members
    for each row execute function members_count_trigger();

-- `msg_index`: strictly increasing per channel, never reused. The unique index is also the list
-- index in both directions (a page from the newest end is a backward walk of it).
create table messages (
    sid             text collate "C" primary key,
    account_sid     text collate "C" not null,
    service_sid     text collate "C" not null,
    channel_sid     text collate "C" not null,
    msg_index       bigint not null,
    -- `index` and `from` are SQL keywords
    msg_from        text not null,
    body            text,
    attributes      text,
    last_updated_by text,
    was_edited      boolean not null default false,
    date_created    bigint not null,
    date_updated    bigint not null,
    constraint messages_index unique (channel_sid, msg_index),
    constraint messages_channel_fk foreign key (channel_sid, service_sid)
        references channels (sid, service_sid) on delete cascade
);

-- A pending invite. Joining deletes it; so does deleting the channel or the invited user.
create table invites (
    sid          text collate "C" primary key,
    account_sid  text collate "C" not null,
    service_sid  text collate "C" not null,
    channel_sid  text collate "C" not null,
    user_sid     text collate "C" not null,
    identity     text not null,
    role_sid     text collate "C",
    created_by   text,
    date_created bigint not null,
    date_updated bigint not null,
    constraint invites_identity unique (channel_sid, identity),
    constraint invites_channel_fk foreign key (channel_sid, service_sid)
        references channels (sid, service_sid) on delete cascade,
    constraint invites_user_fk foreign key (user_sid, service_sid)
        references users (sid, service_sid) on delete cascade,
    constraint invites_role_fk foreign key (role_sid)
        references roles (sid) on delete set null
);
create index invites_list on invites (channel_sid, date_created, sid);
-- A user's pending invites (user channels, list order).
create index invites_user_list on invites (user_sid, date_created, channel_sid);
create index invites_role on invites (role_sid);

-- The change log (ARCHITECTURE §6): appended in the same transaction as the change; the payload
-- needs no joins. Outlives the channel it names; goes with the service.
create table events (
    id                    bigint generated always as identity primary key,
    kind                  text not null check (kind in ('new_message', 'added_to_channel',
                                                        'invited_to_channel',
                                                        'removed_from_channel')),
    account_sid           text collate "C" not null,
    service_sid           text collate "C" not null,
    channel_sid           text collate "C" not null,
    channel_unique_name   text,
    channel_friendly_name text,
    message_sid           text collate "C",
    message_index         bigint,
    body                  text,
    member_sid            text collate "C",
    invite_sid            text collate "C",
    identity              text,
    actor                 text,
    date_created          bigint not null,
    constraint events_service_fk foreign key (service_sid)
        references services (sid) on delete cascade
);
create index events_service on events (service_sid, id);

-- The push engine's queue: one row per event, inserted with it. Claimed with
-- `for update skip locked` and a lease, so several nodes share it.
create table push_outbox (
    event_id     bigint primary key references events (id) on delete cascade,
    available_at bigint not null,
    lease_until  bigint,
    attempts     int not null default 0
);
create index push_outbox_due on push_outbox (available_at, event_id);
