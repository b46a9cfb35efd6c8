-- Names the file that lands next: its records take its number (the column default) and
-- its first record number is the next one the landing hands out.
-- grain: one row per file (raw_landing_files)
-- requires: 10_ingest/010_raw_landing.sql
-- writes: nothing (the temporary table raw_landing_files, raw_landing's default)
ALTER TABLE raw_landing ALTER COLUMN landing_file SET DEFAULT {{ file_number | literal }};

INSERT INTO raw_landing_files (
    landing_file, file_sha256, source_name, file_path, file_bytes, header_lines, first_record
)
SELECT
    {{ file_number | literal }} AS landing_file,
    {{ file_sha256 | literal }} AS file_sha256,
    {{ source_name | literal }} AS source_name,
    {{ file_path | literal }} AS file_path,
    {{ file_bytes | literal }} AS file_bytes,
    {{ header_lines | literal }} AS header_lines,
    -- the last number handed out (NULL before the first record), plus one
    coalesce(pg_sequence_last_value(pg_get_serial_sequence('raw_landing', 'landing_record_number')), 0) + 1
    AS first_record;
