-- Change-log wake-ups (docs/live-clients.md, "Several nodes"). On PostgreSQL this migration adds
-- a trigger that NOTIFYs `parley_changes` for every appended event. One process serves an
-- SQLite file, so the store signals its own live tail in process after each commit that
-- appended events: nothing to create here. The file keeps both migration trees alike.
select 1;
