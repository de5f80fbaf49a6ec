-- A push credential created without its secret (imported from Twilio, which never returns
-- secrets) is marked until an update supplies the secret; no push goes through it meanwhile
-- (docs/CREDENTIALS.md). Credentials made before this migration all have their secret.
alter table credentials add column needs_secret integer not null default 0
    check (needs_secret in (0, 1));
