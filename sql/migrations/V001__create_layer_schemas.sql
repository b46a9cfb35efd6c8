-- Creates one schema per pipeline layer; each stage writes only to its own.
-- grain: schemas only
-- requires: nothing
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS stg;
CREATE SCHEMA IF NOT EXISTS feats;
CREATE SCHEMA IF NOT EXISTS meta;

COMMENT ON SCHEMA raw IS 'Immutable source records exactly as received (append-only).';
COMMENT ON SCHEMA stg IS 'Typed, standardized, deduplicated orders.';
COMMENT ON SCHEMA feats IS 'Point-in-time customer features, rebuilt each run.';
COMMENT ON SCHEMA meta IS 'Runs, validation results and failures, splits, registry, migrations.';
