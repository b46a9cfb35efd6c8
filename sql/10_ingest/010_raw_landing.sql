-- Creates the session-local landing table that the runner COPYs one source file into.
-- grain: one row per CSV record of the file being ingested
-- requires: nothing (a temporary table, dropped at commit; the runner streams the file
--           into it with COPY ... FROM STDIN, a DBA with psql's \copy)
-- writes: nothing (the temporary table raw_landing)
CREATE TEMPORARY TABLE raw_landing (
    {%- for column_name in landing_columns %}
    {{ column_name | ident }} text,
    {%- endfor %}
    landing_record_number bigint GENERATED ALWAYS AS IDENTITY,
    landing_line_number bigint
) ON COMMIT DROP;
