-- Refreshes the planner's statistics on the raw layer after files were ingested, so
-- that validation and staging plan their scans and joins for the real row counts.
-- A small addition (a daily file: under a tenth of the table) leaves the statistics as
-- good as they were, so it is not worth a sample of the whole table (0.5 s at 10M rows);
-- autovacuum analyzes the table as it keeps growing.
-- grain: statistics only
-- requires: 10_ingest/020_raw_events.sql (run once per ingest stage that added rows)
-- writes: nothing (statistics of raw.raw_events)
-- settings: raw_to_ready.ingested_rows (the rows this stage added; unset: analyze)
DO $analyze$
DECLARE
    -- the rows this stage added; -1 when unknown (analyze then)
    added constant bigint := coalesce(nullif(current_setting('raw_to_ready.ingested_rows', TRUE), '')::bigint, -1);
BEGIN
    IF added < 0 OR added > 0.1 * (SELECT c.reltuples FROM pg_class AS c WHERE c.oid = 'raw.raw_events'::regclass) THEN
        ANALYZE raw.raw_events;
    END IF;
END
$analyze$;
