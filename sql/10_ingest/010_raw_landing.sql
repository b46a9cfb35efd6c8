-- Creates the session-local landing tables that the runner COPYs source files into: one
-- landing for every file of the run whose header names the same columns, so that a run's
-- files reach raw.raw_events in one INSERT (020) whatever their number.
-- grain: one row per CSV record of the files landed (raw_landing); one row per file
--        (raw_landing_files)
-- requires: nothing (temporary tables, dropped by 020; the runner streams each file into
--           raw_landing with COPY ... FROM STDIN after 011 has named it, a DBA with psql's
--           \copy)
-- writes: nothing (the temporary tables raw_landing and raw_landing_files)
CREATE TEMPORARY TABLE raw_landing (
    {%- for column_name in landing_columns %}
    {{ column_name | ident }} text,
    {%- endfor %}
    -- numbered across the files, in the order they land: a file's records are the numbers
    -- from its raw_landing_files.first_record on
    landing_record_number bigint GENERATED ALWAYS AS IDENTITY,
    landing_line_number bigint,
    -- the file the record came from: 011 makes it the default before each file lands
    landing_file integer NOT NULL
) ON COMMIT DROP;

CREATE TEMPORARY TABLE raw_landing_files (
    landing_file integer PRIMARY KEY,
    file_sha256 text NOT NULL,
    source_name text NOT NULL,
    file_path text NOT NULL,
    file_bytes bigint NOT NULL,
    header_lines integer NOT NULL,
    -- the landing_record_number of the file's first record
    first_record bigint NOT NULL
) ON COMMIT DROP;
