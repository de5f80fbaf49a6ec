-- Change-log wake-ups for the live tails of every node (docs/live-clients.md, "Several nodes").
-- Every appended event NOTIFYs channel `parley_changes` with its service SID. PostgreSQL sends
-- notifications at commit (none for a rolled-back transaction) and folds identical ones of one
-- transaction into one. A listener reads the log from its own position, so the payload is only
-- a hint.
create function parley_events_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify('parley_changes', new.service_sid);
    return null;
end
$$;

create trigger events_notify
    after insert on events
    for each row execute function parley_events_notify();
