-- Parley schema v4: fan-out progress. A large fan-out writes its deliveries in chunks, each in
-- its own transaction, so sends start before the last chunk is written. `fanout_after` is the
-- binding SID (byte order) up to which this event's deliveries exist; a fan-out that was
-- interrupted (crash, expired lease) resumes after it instead of re-creating deliveries that
-- were already sent and removed. Null: nothing written yet.
-- Its twin in the other backend has the same file name (checked by a test).
-- Never edit this file once released: sqlx checksums applied migrations.

alter table push_outbox add column fanout_after text;
