-- A counter that moves whenever a stored credential (an account's auth token, an API key)
-- changes or goes, whoever changes it (a server, a CLI in another process). Each node reads it
-- every 100 ms and forgets every credential check it remembers when it moved, so REST requests
-- need no read of their credential (docs/SECURITY.md, "Credential checks").
create table credential_version (
    id integer primary key check (id = 1),
    version integer not null
);
insert into credential_version (id, version) values (1, 0);

create trigger accounts_credential_version_update after update on accounts
begin
    update credential_version set version = version + 1 where id = 1;
end;

create trigger accounts_credential_version_delete after delete on accounts
begin
    update credential_version set version = version + 1 where id = 1;
end;

create trigger api_keys_credential_version_update after update on api_keys
begin
    update credential_version set version = version + 1 where id = 1;
end;

create trigger api_keys_credential_version_delete after delete on api_keys
begin
    update credential_version set version = version + 1 where id = 1;
end;
