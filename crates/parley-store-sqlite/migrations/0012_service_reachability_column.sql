-- The service's `reachability_enabled` setting in a column of its own, written by the store
-- with `settings` (which keeps the setting too): the fetch-user read tests it on every
-- request, and `json_extract` parsed the whole settings document each time to find it.
alter table services add column reachability_enabled integer not null default 0;
update services
   set reachability_enabled =
       case when json_extract(settings, '$.reachability_enabled') then 1 else 0 end;
