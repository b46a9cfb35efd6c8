-- Appends the landed files to raw.raw_events, every field exactly as received, and
-- records each file so that the same content (same sha256) is never ingested twice.
-- grain: one row per CSV record (raw.raw_events); one row per file (raw.ingested_files)
-- requires: 10_ingest/010_raw_landing.sql (each file named by 011, then filled by COPY),
--           V002__create_raw_events.sql
-- writes: raw.raw_events, raw.ingested_files
-- settings: raw_to_ready.run_id (the runner sets it; a DBA sets it with SET)

-- the files' true count, so that the join below hashes the files and reads the records in
-- the order they landed: event ids follow the files (record_number is the authoritative
-- order; sorting here would cost a second pass)
ANALYZE raw_landing_files;

INSERT INTO raw.raw_events (
    file_sha256, source_name, file_path, line_number, record_number, run_id, ingested_at, payload
)
SELECT
    f.file_sha256,
    f.source_name,
    f.file_path,
    -- without embedded line breaks, record N starts on line N + header_lines (a header
    -- usually takes line 1 alone)
    coalesce(l.landing_line_number, l.landing_record_number - f.first_record + 1 + f.header_lines) AS line_number,
    l.landing_record_number - f.first_record + 1 AS record_number,
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
FROM raw_landing AS l
INNER JOIN raw_landing_files AS f ON l.landing_file = f.landing_file;

-- a file's records are the numbers from its first_record to the next file's (the landing
-- numbers them without gaps): counted without reading the records again
INSERT INTO raw.ingested_files (
    file_sha256, source_name, file_path, file_bytes, record_count, run_id, ingested_at
)
SELECT
    f.file_sha256,
    f.source_name,
    f.file_path,
    f.file_bytes,
    lead(f.first_record, 1, coalesce(
        pg_sequence_last_value(pg_get_serial_sequence('raw_landing', 'landing_record_number')), 0
    ) + 1) OVER (ORDER BY f.first_record, f.landing_file) - f.first_record AS record_count,
    current_setting('raw_to_ready.run_id') AS run_id,
    transaction_timestamp() AS ingested_at
FROM raw_landing_files AS f;

-- the run's files of another header get fresh tables
DROP TABLE raw_landing, raw_landing_files;
