-- Appends the landed file to raw.raw_events, every field exactly as received, and
-- records the file so that the same content (same sha256) is never ingested twice.
-- grain: one row per CSV record (raw.raw_events); one row per file (raw.ingested_files)
-- requires: 10_ingest/010_raw_landing.sql (filled by COPY), V002__create_raw_events.sql
-- writes: raw.raw_events, raw.ingested_files
-- settings: raw_to_ready.run_id (the runner sets it; a DBA sets it with SET)
INSERT INTO raw.raw_events (
    file_sha256, source_name, file_path, line_number, record_number, run_id, ingested_at, payload
)
SELECT
    {{ file_sha256 | literal }} AS file_sha256,
    {{ source_name | literal }} AS source_name,
    {{ file_path | literal }} AS file_path,
    -- without embedded line breaks, record N starts on line N + header_lines (a header
    -- usually takes line 1 alone)
    coalesce(l.landing_line_number, l.landing_record_number + {{ header_lines | literal }}) AS line_number,
    l.landing_record_number AS record_number,
    current_setting('raw_to_ready.run_id') AS run_id,
    transaction_timestamp() AS ingested_at,
    -- an unquoted empty CSV field arrives as SQL NULL and becomes JSON null;
    -- jsonb_build_object takes at most 50 pairs, so wide files are built in chunks
    {% for chunk in landing_columns | batch(50) -%}
    jsonb_build_object(
        {%- for column_name in chunk %}
        {{ column_name | literal }}, l.{{ column_name | ident }}{{ "," if not loop.last }}
        {%- endfor %}
    ){{ " ||" if not loop.last }}
    {% endfor -%} AS payload
-- a temporary table is read back in insertion order: event ids follow the file
-- (record_number is the authoritative order; sorting here would cost a second pass)
FROM raw_landing AS l;

INSERT INTO raw.ingested_files (
    file_sha256, source_name, file_path, file_bytes, record_count, run_id, ingested_at
)
SELECT
    {{ file_sha256 | literal }} AS file_sha256,
    {{ source_name | literal }} AS source_name,
    {{ file_path | literal }} AS file_path,
    {{ file_bytes | literal }} AS file_bytes,
    count(*) AS record_count,
    current_setting('raw_to_ready.run_id') AS run_id,
    transaction_timestamp() AS ingested_at
FROM raw_landing;

-- several files may be ingested in one transaction; each gets a fresh landing table
DROP TABLE raw_landing;
