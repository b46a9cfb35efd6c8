-- Indexes the raw events by file, so that a run reads only its batch's files however
-- long the append-only history grows.
-- grain: an index only
-- requires: V002__create_raw_events.sql
-- BRIN: a file's events are appended together, so each block range holds one or two
-- files; the index is a few pages per million rows and almost free to maintain.
-- autosummarize lets autovacuum summarize new ranges (unsummarized ranges are read).
CREATE INDEX raw_events_file_sha256_brin_idx
ON raw.raw_events USING brin (file_sha256)
WITH (autosummarize = on);
