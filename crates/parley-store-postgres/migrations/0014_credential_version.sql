-- A counter that moves whenever a stored credential (an account's auth token, an API key)
-- changes or goes, whoever changes it (any node, a CLI). Each node reads it every 100 ms and
-- forgets every credential check it remembers when it moved, so REST requests need no read of
-- their credential (docs/SECURITY.md, "Credential checks").
create table credential_version (
    id integer primary key check (id = 1),
    version bigint not null
);
insert into credential_version (id, version) values (1, 0);

create function parley_credential_version_bump() returns trigger
language plpgsql as $$
begin
    update credential_version set version = version + 1 where id = 1;
    return null;
end
$$;

create trigger accounts_credential_version
    after update or delete on accounts
    for each statement execute function parley_credential_version_bump();

create trigger api_keys_credential_version
    after update or delete on api_keys
    for each statement execute function parley_credential_version_bump();
