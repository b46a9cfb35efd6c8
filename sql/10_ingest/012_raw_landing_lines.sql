-- Creates the session-local table that a file whose source keeps some columns only
-- (sources[].columns) is COPYed into, one row per physical line, each line whole; 013
-- splits the lines into records and fields. No table is wider than the kept columns, so
-- a file may have more columns than a PostgreSQL table may (1,600).
-- grain: one row per physical line of the file being ingested, the header's included
-- requires: nothing (a temporary table, dropped by 013; the runner streams the file into
--           it with COPY ... FROM STDIN (FORMAT text), backslashes, tabs and carriage
--           returns escaped, so that a line feed alone ends a row)
-- writes: nothing (the temporary table raw_landing_lines)
CREATE TEMPORARY TABLE raw_landing_lines (
    line_number bigint GENERATED ALWAYS AS IDENTITY,
    line_text text
) ON COMMIT DROP;
