-- Computes physical line numbers for a file whose quoted fields contain line breaks.
-- grain: updates raw_landing, one row per CSV record of the file
-- requires: 10_ingest/011_raw_landing_file.sql, then the file landed by COPY
-- writes: nothing (the temporary table raw_landing)
-- The runner runs this only when the file has more line breaks than records: otherwise
-- record N starts on line N + header_lines and the default in 020 is exact and free.
WITH record_breaks AS (
    SELECT
        l.landing_record_number,
        -- the record's number in its file, from 1
        l.landing_record_number - f.first_record + 1 AS record_number,
        f.header_lines,
        -- the record's text form keeps embedded line breaks, one per break in a field
        length(l::text) - length(replace(l::text, E'\n', '')) AS embedded_breaks
    FROM raw_landing AS l
    INNER JOIN raw_landing_files AS f ON l.landing_file = f.landing_file
    WHERE l.landing_file = {{ file_number | literal }}
),

record_lines AS (
    SELECT
        landing_record_number,
        record_number + header_lines + coalesce(sum(embedded_breaks) OVER (
            ORDER BY landing_record_number
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS line_number
    FROM record_breaks
)

UPDATE raw_landing AS l
SET landing_line_number = r.line_number
FROM record_lines AS r
WHERE l.landing_record_number = r.landing_record_number;
