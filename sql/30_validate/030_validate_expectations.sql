{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/results.sql' as results with context -%}
{%- import 'macros/versions.sql' as versions with context -%}
-- Evaluates every record-level expectation over the batch: the raw events of the files the config
-- names now. Row rules share one aggregate scan; uniqueness and exact repeats share one
-- grouping by key (plus a look at the few repeated keys). Writes one row per check.
-- grain: one row per check (meta.validation_results) for this run
-- requires: raw.raw_events (10_ingest/020_raw_events.sql), V004__create_meta_tables.sql,
--           meta.runs (this run's row: a range relative to now reads its start)
-- writes: meta.validation_results, meta.validation_failures
-- settings: raw_to_ready.run_id, raw_to_ready.work_files (the files this run validates: the
--           new ones, or every named file on a full refresh)
{%- set row_checks = checks | rejectattr('rule', 'in', ['unique', 'exact_duplicates', 'min_rows', 'max_rows']) | list %}
{%- set domain_checks = checks | selectattr('has_domain', 'defined') | selectattr('has_domain') | list %}
{%- set unique_columns = checks | selectattr('rule', 'equalto', 'unique') | map(attribute='column') | list %}
{%- set key_columns = ([columns.order_id] + unique_columns) | unique(case_sensitive=true) | list %}
{#- A record check's measures: its offending records (counted by the passes below), and the
    records it looks at (the batch's, or its domain's). -#}
{#- min_rows and max_rows count the batch's records: every named file, also in an
    incremental run that validates the new files' records only. -#}
{%- macro record_measures(check) -%}
{%- if check.rule == 'unique' -%}
{{ results.count_measures(check, domain_checks,
    failing='k.' ~ (('key_check_' ~ (key_columns.index(check.column) + 1)) | ident)) }}
{%- elif check.rule == 'exact_duplicates' -%}
{{ results.count_measures(check, domain_checks, failing='k.exact_repeat_count') }}
{%- elif check in row_checks -%}
{{ results.count_measures(check, domain_checks, failing='r.' ~ (('row_check_' ~ (row_checks.index(check) + 1)) | ident)) }}
{%- else -%}
{{ results.count_measures(check, domain_checks, total='k.named_record_count') }}
{%- endif -%}
{%- endmacro %}
-- Both passes run as CREATE TABLE AS so that PostgreSQL can scan with parallel
-- workers (an INSERT ... SELECT never runs in parallel).
SELECT meta.set_run_setting('work_mem', '256MB');
-- Dates are parsed as staging will parse them, never by the server's DateStyle, and naive
-- timestamps (a timestamp range's values) are read in the source's time zone, as staging does.
SELECT meta.set_run_setting('datestyle', {{ ('ISO, ' ~ staging.date_order) | literal }});
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
-- the run's start, for a range relative to now
{{ rules.remember_run_start() }}

-- A gate run again in the same run (an incremental run turned full refresh) starts over.
DELETE FROM meta.validation_failures
WHERE run_id = current_setting('raw_to_ready.run_id');

DELETE FROM meta.validation_results
WHERE run_id = current_setting('raw_to_ready.run_id');

-- Pass 1: every row rule in one aggregate scan of the batch, and the rows of each check
-- that looks at some rows only (where, mostly: its domain, the base of its percentages).
-- Columns are named by position: a check id may be longer than PostgreSQL's 63-byte names.
CREATE TEMPORARY TABLE validation_row_counts ON COMMIT DROP AS
SELECT
    {%- for check in row_checks %}
    count(*) FILTER (WHERE {{ rules.offends(check) }}) AS {{ ('row_check_' ~ loop.index) | ident }},
    {%- endfor %}
    {%- for check in domain_checks %}
    count(*) FILTER (WHERE {{ rules.in_domain(check) }}) AS {{ ('domain_check_' ~ loop.index) | ident }},
    {%- endfor %}
    count(*) AS row_count
FROM raw.raw_events AS e
WHERE {{ versions.in_work_files('e.file_sha256') }};

-- Pass 2a: keys that occur more than once, for the order id (whose exact repeats
-- staging collapses) and for every column with a unique rule. Usually few.
CREATE TEMPORARY TABLE validation_repeated_keys ON COMMIT DROP AS
{%- for column in key_columns %}
SELECT
    {{ column | literal }} AS column_name,
    -- a missing key is grouped as ''; it never counts as a conflict (non_null reports it)
    coalesce({{ rules.trimmed('e.payload ->> ' ~ (column | literal)) }}, '') AS key_value
FROM raw.raw_events AS e
WHERE {{ versions.in_work_files('e.file_sha256') }}
GROUP BY coalesce({{ rules.trimmed('e.payload ->> ' ~ (column | literal)) }}, '')
HAVING count(*) > 1
{%- if not loop.last %}
UNION ALL
{%- else %};
{%- endif %}
{%- endfor %}

-- Pass 2b: the distinct records behind those keys, with their number of copies.
CREATE TEMPORARY TABLE validation_repeated_records ON COMMIT DROP AS
{%- for column in key_columns %}
SELECT
    k.column_name,
    k.key_value,
    e.payload,
    count(*) AS copies
FROM raw.raw_events AS e
INNER JOIN validation_repeated_keys AS k
    ON
        k.column_name = {{ column | literal }}
        AND k.key_value = coalesce({{ rules.trimmed('e.payload ->> ' ~ (column | literal)) }}, '')
WHERE {{ versions.in_work_files('e.file_sha256') }}
GROUP BY k.column_name, k.key_value, e.payload
{%- if not loop.last %}
UNION ALL
{%- else %};
{%- endif %}
{%- endfor %}

{%- if checks %}
-- (a config whose models bring no record-level rule has none to record)
INSERT INTO meta.validation_results (
    run_id, check_id, rule, column_name, severity, status,
    failing_count, row_count, failing_percent, message, level, action
)
WITH key_failures AS (
    SELECT
        conflicts.column_name,
        -- the same key with different content; exact repeats alone are no conflict
        sum(conflicts.records) FILTER (WHERE conflicts.variants > 1 AND conflicts.key_value != '') AS conflicting,
        sum(conflicts.records - conflicts.variants) AS exact_repeats
    FROM (
        SELECT
            r.column_name,
            r.key_value,
            count(*) AS variants,
            sum(r.copies) AS records
        FROM validation_repeated_records AS r
        GROUP BY r.column_name, r.key_value
    ) AS conflicts
    GROUP BY conflicts.column_name
),

key_counts AS (
    SELECT
        {%- for column in key_columns %}
        coalesce((
            SELECT f.conflicting
            FROM key_failures AS f
            WHERE f.column_name = {{ column | literal }}
        ), 0) AS {{ ('key_check_' ~ loop.index) | ident }},
        {%- endfor %}
        coalesce((
            SELECT f.exact_repeats
            FROM key_failures AS f
            WHERE f.column_name = {{ key_columns[0] | literal }}
        ), 0) AS exact_repeat_count,
        -- the records of every named file (min_rows, max_rows)
        (
            SELECT coalesce(sum(i.record_count), 0)
            FROM raw.ingested_files AS i
            WHERE i.file_sha256 = ANY({{ batch_file_sha256s | literal }}::text[])
        ) AS named_record_count
),

check_counts AS (
    SELECT
        c.*,
        -- a share of the check's rows (the batch's, or its domain's), so at most 100
        least(round(100.0 * c.failing_count / greatest(c.row_count, 1), 4), 100) AS failing_percent
    FROM validation_row_counts AS r
    CROSS JOIN key_counts AS k
    CROSS JOIN LATERAL {{ results.check_rows(checks, ['failing_count', 'row_count'], record_measures) }}
),

{{ results.check_results('records') }};
{%- endif %}
