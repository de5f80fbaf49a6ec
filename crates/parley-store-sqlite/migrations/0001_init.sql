-- Parley schema v1 (SQLite). Mirrors crates/parley-store-postgres/migrations/0001_init.sql.
-- Conventions: plural tables, `sid text primary key`, columns named like the wire fields,
-- timestamps as integer epoch microseconds, every child row carries `account_sid`. The
-- composite foreign keys (service_sid, account_sid) -> services (sid, account_sid) make a child
-- of a service in another account impossible.
-- Never edit this file once released: sqlx checksums applied migrations. Add 0002_… instead.

create table accounts (
    sid               text    primary key not null,
    friendly_name     text,
    auth_token_sealed blob    not null,
    date_created      integer not null,
    date_updated      integer not null
);
create index accounts_by_created on accounts (date_created, sid);

create table api_keys (
    sid           text    primary key not null,
    account_sid   text    not null references accounts (sid) on delete cascade,
    friendly_name text,
    secret_sealed blob    not null,
    date_created  integer not null
);
create index api_keys_by_account on api_keys (account_sid, date_created, sid);

-- No foreign key to accounts: the account may come from configuration only.
create table services (
    sid                              text    primary key not null,
    account_sid                      text    not null,
    friendly_name                    text    not null,
    -- No foreign key: roles reference services, and a service is inserted before its roles.
    default_service_role_sid         text,
    default_channel_role_sid         text,
    default_channel_creator_role_sid text,
    -- serde_json of parley_core::service::ServiceSettings
    settings                         text    not null,
    date_created                     integer not null,
    date_updated                     integer not null,
    unique (sid, account_sid)
);
create index services_by_account on services (account_sid, date_created, sid);

create table roles (
    sid           text    primary key not null,
    account_sid   text    not null,
    service_sid   text    not null,
    friendly_name text    not null,
    role_type     text    not null check (role_type in ('channel', 'deployment')),
    -- JSON array of permission names, in the order given
    permissions   text    not null,
    date_created  integer not null,
    date_updated  integer not null,
    foreign key (service_sid, account_sid) references services (sid, account_sid)
        on delete cascade
);
create index roles_by_service on roles (service_sid, date_created, sid);

create table users (
    sid           text    primary key not null,
    account_sid   text    not null,
    service_sid   text    not null,
    identity      text    not null,
    friendly_name text,
    attributes    text,
    role_sid      text    references roles (sid) on delete set null,
    date_created  integer not null,
    date_updated  integer not null,
    unique (sid, service_sid),
    foreign key (service_sid, account_sid) references services (sid, account_sid)
        on delete cascade
);
create unique index users_identity on users (service_sid, identity);
create index users_by_service on users (service_sid, date_created, sid);
-- for `on delete set null` when a role goes
create index users_by_role on users (role_sid);

create table credentials (
    sid             text    primary key not null,
    account_sid     text    not null,
    friendly_name   text,
    credential_type text    not null check (credential_type in ('apn', 'gcm', 'fcm')),
    sandbox         integer,
    -- sealed JSON of parley_core::credential::CredentialSecrets
    secrets_sealed  blob    not null,
    date_created    integer not null,
    date_updated    integer not null
);
create index credentials_by_account on credentials (account_sid, date_created, sid);

-- Deleting a service, a user or a credential deletes the bindings that hang off it
-- (a binding never points at a missing credential).
create table bindings (
    sid            text    primary key not null,
    account_sid    text    not null,
    service_sid    text    not null,
    user_sid       text    not null,
    identity       text    not null,
    credential_sid text    references credentials (sid) on delete cascade,
    binding_type   text    not null check (binding_type in ('apn', 'gcm', 'fcm')),
    endpoint       text    not null,
    address        text    not null,
    -- JSON array of notification kinds
    message_types  text    not null,
    date_created   integer not null,
    date_updated   integer not null,
    foreign key (service_sid, account_sid) references services (sid, account_sid)
        on delete cascade,
    foreign key (user_sid, service_sid) references users (sid, service_sid) on delete cascade
);
create unique index bindings_endpoint on bindings (service_sid, identity, endpoint, binding_type);
create unique index bindings_address on bindings (service_sid, binding_type, address);
create index bindings_by_service on bindings (service_sid, date_created, sid);
create index bindings_by_identity on bindings (service_sid, identity, date_created, sid);
create index bindings_by_user on bindings (service_sid, user_sid, date_created, sid);
-- `on delete cascade` from users and credentials looks bindings up by these columns
create index bindings_user_fk on bindings (user_sid, service_sid);
create index bindings_credential_fk on bindings (credential_sid);
create index bindings_by_updated on bindings (date_updated);
