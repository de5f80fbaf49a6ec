-- Parley schema v8: a `channel_removed` event names the identities that had the channel in their
-- channels (members and invitees when it was deleted), as a JSON array of text, so live clients'
-- channels maps can drop it (the memberships go with the channel, without an event each). Null
-- for every other event and for events written before v8.
-- Its twin in the other backend has the same file name (checked by a test).
-- Never edit this file once released: sqlx checksums applied migrations.

alter table events add column channel_identities text;
