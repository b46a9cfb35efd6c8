-- Splits the lines landed by 012 into CSV records and fields and fills raw_landing with
-- the columns the source keeps (sources[].columns); the other fields are not landed.
-- grain: one row per CSV record (raw_landing)
-- requires: 10_ingest/011_raw_landing_file.sql, 10_ingest/012_raw_landing_lines.sql (filled by COPY)
-- writes: nothing (the temporary tables raw_landing_records and raw_landing)
-- settings: raw_to_ready.csv_quote, .csv_field_pattern, .csv_record_pattern,
--           .csv_header_width, .csv_keep_positions (the runner sets them for each file from
--           the source's dialect and header; the psql script sets them with SET)
-- The CSV grammar is COPY's: a line continues the record before it while that record has
-- an odd number of quote characters (a quoted field holds the line break); a field is
-- quoted (a doubled quote inside is one quote character) or not, and an unquoted empty
-- field is NULL. A record that does not read so, or has a field count other than the
-- header's, stops the ingest of the file, naming the line it starts on.
CREATE TEMPORARY TABLE raw_landing_records ON COMMIT DROP AS
WITH line_quotes AS (
    SELECT
        line_number,
        line_text,
        -- quote characters on the lines before: an odd count means this line continues a record
        coalesce(
            sum(length(line_text) - length(replace(line_text, current_setting('raw_to_ready.csv_quote'), ''))) OVER (
                ORDER BY line_number ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ), 0
        ) % 2 = 1 AS continues_record
    FROM raw_landing_lines
),

line_records AS (
    SELECT
        line_number,
        line_text,
        count(*) FILTER (WHERE NOT continues_record) OVER (ORDER BY line_number) AS record_number
    FROM line_quotes
),

records AS (
    SELECT
        record_number,
        min(line_number) AS line_number,
        -- a CRLF file's lines end with a carriage return, which belongs to the line break
        regexp_replace(string_agg(line_text, E'\n' ORDER BY line_number), E'\r$', '') AS record_text
    FROM line_records
    GROUP BY record_number
),

record_fields AS (
    SELECT
        r.line_number,
        -- a delimiter in front makes every field "a delimiter, then a field"
        current_setting('raw_to_ready.csv_delimiter') || r.record_text
        ~ current_setting('raw_to_ready.csv_record_pattern') AS well_formed,
        array(
            SELECT
                CASE
                    WHEN m.matched[1] = '' THEN NULL
                    WHEN left(m.matched[1], 1) = current_setting('raw_to_ready.csv_quote')
                        THEN replace(
                                substr(m.matched[1], 2, length(m.matched[1]) - 2),
                                repeat(current_setting('raw_to_ready.csv_quote'), 2),
                                current_setting('raw_to_ready.csv_quote')
                            )
                    ELSE m.matched[1]
                END
            FROM regexp_matches(
                    current_setting('raw_to_ready.csv_delimiter') || r.record_text,
                    current_setting('raw_to_ready.csv_field_pattern'),
                    'g'
                ) WITH ORDINALITY AS m (matched, field_number)
            ORDER BY m.field_number
        ) AS field_values
    FROM records AS r
    -- the first record is the header
    WHERE r.record_number > 1
)

SELECT
    f.line_number,
    f.well_formed,
    cardinality(f.field_values) AS field_count,
    array(
        SELECT f.field_values[k.field_position]
        FROM unnest(current_setting('raw_to_ready.csv_keep_positions')::int[]) WITH ORDINALITY
                AS k (field_position, kept_number)
        ORDER BY k.kept_number
    ) AS kept
FROM record_fields AS f;

DO $$
DECLARE
    bad record;
BEGIN
    SELECT line_number, field_count, well_formed INTO bad
    FROM raw_landing_records
    WHERE NOT well_formed OR field_count <> current_setting('raw_to_ready.csv_header_width')::int
    ORDER BY line_number
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'bad_copy_file_format', MESSAGE = format(
            '%s:%s: %s', {{ file_path | literal }}, bad.line_number,
            CASE WHEN bad.well_formed
                THEN format('the record has %s fields; the header has %s', bad.field_count,
                            current_setting('raw_to_ready.csv_header_width'))
                ELSE 'not valid CSV from this line on (an unclosed quote, a quote inside an unquoted field, '
                     'or text after a closing quote)'
            END);
    END IF;
END
$$;

INSERT INTO raw_landing (
    {%- for column_name in landing_columns %}
    {{ column_name | ident }},
    {%- endfor %}
    landing_line_number
)
SELECT
    {%- for column_name in landing_columns %}
    kept[{{ loop.index }}],
    {%- endfor %}
    line_number
FROM raw_landing_records
ORDER BY line_number;

-- several files may be ingested in one transaction; each gets fresh tables
DROP TABLE raw_landing_records;
DROP TABLE raw_landing_lines;
