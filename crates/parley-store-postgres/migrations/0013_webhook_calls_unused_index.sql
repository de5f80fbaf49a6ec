-- The `webhook_calls_due (available_at, id)` index is read by no statement (claims find heads
-- through `webhook_calls_by_key`), yet every queued and settled call updated it, and a retry
-- (a new `available_at`) could not be a heap-only update because of it.
drop index if exists webhook_calls_due;
