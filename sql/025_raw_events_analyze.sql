-- Refreshes the planner's statistics on the raw layer after files were ingested, so
-- that validation and staging plan their scans and joins for the real row counts.
-- grain: statistics only
-- requires: 020_raw_events.sql (run once per ingest stage that added rows)
ANALYZE raw.raw_events;
