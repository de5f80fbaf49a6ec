-- On SQLite this migration copies the service's `reachability_enabled` setting into a column
-- of its own (read on every fetch user instead of parsing the settings JSON). PostgreSQL reads
-- the setting from `settings::jsonb` cheaply: nothing to change here. The file keeps both
-- migration trees alike.
select 1;
