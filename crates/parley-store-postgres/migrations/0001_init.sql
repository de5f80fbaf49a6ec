-- Parley schema v1 (PostgreSQL). Mirrors parley-store-sqlite/migrations/0001_init.sql.
-- Conventions: plural tables, `sid text primary key`, timestamps as bigint epoch microseconds,
-- JSON documents as text. Every child row carries account_sid; the composite foreign keys
-- (service_sid, account_sid) -> services (sid, account_sid) make a child of a service in another
-- account impossible. Constraint names are used by the store to map foreign-key violations.

create table accounts (
    sid               text collate "C" primary key,
    friendly_name     text,
    auth_token_sealed bytea not null,
    date_created      bigint not null,
    date_updated      bigint not null
);
create index accounts_list on accounts (date_created, sid);

create table api_keys (
    sid           text collate "C" primary key,
    account_sid   text collate "C" not null,
    friendly_name text,
    secret_sealed bytea not null,
    date_created  bigint not null,
    constraint api_keys_account_fk foreign key (account_sid)
        references accounts (sid) on delete cascade
);
create index api_keys_list on api_keys (account_sid, date_created, sid);

-- No foreign key to accounts: the account may come from configuration only.
create table services (
    sid                              text collate "C" primary key,
    account_sid                      text collate "C" not null,
    friendly_name                    text not null,
    default_service_role_sid         text collate "C",
    default_channel_role_sid         text collate "C",
    default_channel_creator_role_sid text collate "C",
    -- serde_json of parley_core::service::ServiceSettings
    settings                         text not null,
    date_created                     bigint not null,
    date_updated                     bigint not null,
    constraint services_sid_account unique (sid, account_sid)
);
create index services_list on services (account_sid, date_created, sid);

create table roles (
    sid           text collate "C" primary key,
    account_sid   text collate "C" not null,
    service_sid   text collate "C" not null,
    friendly_name text not null,
    role_type     text not null check (role_type in ('channel', 'deployment')),
    -- JSON array of permission names, in the order given
    permissions   text not null,
    date_created  bigint not null,
    date_updated  bigint not null,
    constraint roles_service_fk foreign key (service_sid, account_sid)
        references services (sid, account_sid) on delete cascade
);
create index roles_list on roles (service_sid, date_created, sid);

create table users (
    sid           text collate "C" primary key,
    account_sid   text collate "C" not null,
    service_sid   text collate "C" not null,
    identity      text not null,
    friendly_name text,
    attributes    text,
    role_sid      text collate "C",
    date_created  bigint not null,
    date_updated  bigint not null,
    constraint users_identity unique (service_sid, identity),
    constraint users_sid_service unique (sid, service_sid),
    constraint users_service_fk foreign key (service_sid, account_sid)
        references services (sid, account_sid) on delete cascade,
    constraint users_role_fk foreign key (role_sid)
        references roles (sid) on delete set null
);
create index users_list on users (service_sid, date_created, sid);
create index users_role on users (role_sid);

create table credentials (
    sid             text collate "C" primary key,
    account_sid     text collate "C" not null,
    friendly_name   text,
    credential_type text not null check (credential_type in ('apn', 'gcm', 'fcm')),
    sandbox         boolean,
    -- sealed JSON of parley_core::credential::CredentialSecrets
    secrets_sealed  bytea not null,
    date_created    bigint not null,
    date_updated    bigint not null
);
create index credentials_list on credentials (account_sid, date_created, sid);

-- Deleting a credential deletes the bindings that use it (docs/BINDINGS.md): a binding never
-- points at a missing credential.
create table bindings (
    sid            text collate "C" primary key,
    account_sid    text collate "C" not null,
    service_sid    text collate "C" not null,
    user_sid       text collate "C" not null,
    identity       text not null,
    credential_sid text collate "C",
    binding_type   text not null check (binding_type in ('apn', 'gcm', 'fcm')),
    endpoint       text not null,
    address        text not null,
    -- JSON array of message type names
    message_types  text not null,
    date_created   bigint not null,
    date_updated   bigint not null,
    constraint bindings_endpoint unique (service_sid, identity, endpoint, binding_type),
    constraint bindings_address unique (service_sid, binding_type, address),
    constraint bindings_service_fk foreign key (service_sid, account_sid)
        references services (sid, account_sid) on delete cascade,
    constraint bindings_user_fk foreign key (user_sid, service_sid)
        references users (sid, service_sid) on delete cascade,
    constraint bindings_credential_fk foreign key (credential_sid)
        references credentials (sid) on delete cascade
);
create index bindings_list on bindings (service_sid, date_created, sid);
create index bindings_user_list on bindings (service_sid, user_sid, date_created, sid);
create index bindings_identity_list on bindings (service_sid, identity, date_created, sid);
create index bindings_stale on bindings (date_updated);
create index bindings_credential on bindings (credential_sid);
