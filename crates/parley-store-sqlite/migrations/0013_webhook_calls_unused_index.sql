-- The `webhook_calls_due (available_at, id)` index is read by no statement (claims find heads
-- through `webhook_calls_by_key`), yet every queued, retried and settled call updated it.
-- Its PostgreSQL twin has the same file name.
drop index if exists webhook_calls_due;
