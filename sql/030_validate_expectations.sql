{%- import 'macros/rules.sql' as rules -%}
-- Evaluates every expectation over the batch: the raw events of the files the config
-- names now. Row rules share one aggregate scan; uniqueness and exact repeats share one
-- grouping of the distinct records. Writes one result row per check.
-- grain: one row per check (meta.validation_results) for this run
-- requires: raw.raw_events (020_raw_events.sql), V004__create_meta_tables.sql
-- settings: raw_to_ready.run_id
{%- set row_checks = checks | rejectattr('rule', 'in', ['unique', 'exact_duplicates', 'min_rows']) | list %}
{%- set unique_checks = checks | selectattr('rule', 'equalto', 'unique') | list %}

-- Hash aggregation of whole payloads is the cheapest way to find repeated records.
SET LOCAL work_mem = '256MB';

INSERT INTO meta.validation_results (
    run_id, check_id, rule, column_name, severity, status,
    failing_count, row_count, failing_percent, message
)
WITH batch_events AS (
    SELECT e.payload
    FROM raw.raw_events AS e
    WHERE e.file_sha256 = ANY({{ batch_file_sha256s | literal }}::text[])
),

row_rule_counts AS (
    SELECT
        {%- for check in row_checks %}
        count(*) FILTER (WHERE {{ rules[check.rule](check) }}) AS {{ ('c' ~ loop.index) | ident }},
        {%- endfor %}
        count(*) AS row_count
    FROM batch_events AS e
),

distinct_records AS (
    SELECT
        payload,
        count(*) AS copies
    FROM batch_events
    GROUP BY payload
),

key_counts AS (
    SELECT
        {%- for check in unique_checks %}
        (
            -- the same key with different content; exact repeats are not conflicts
            SELECT coalesce(sum(conflicts.copies), 0)
            FROM (
                SELECT sum(d.copies) AS copies
                FROM distinct_records AS d
                WHERE nullif(btrim(d.payload ->> {{ check.column | literal }}), '') IS NOT NULL
                GROUP BY btrim(d.payload ->> {{ check.column | literal }})
                HAVING count(*) > 1
            ) AS conflicts
        ) AS {{ ('u' ~ loop.index) | ident }},
        {%- endfor %}
        (SELECT coalesce(sum(d.copies - 1), 0) FROM distinct_records AS d) AS exact_repeat_count
),

check_counts AS (
    SELECT
        c.check_id,
        c.rule,
        c.column_name,
        c.severity,
        c.message,
        c.error_op,
        c.error_value,
        c.error_is_percent,
        c.warn_op,
        c.warn_value,
        c.warn_is_percent,
        c.failing_count,
        r.row_count,
        round(100.0 * c.failing_count / greatest(r.row_count, 1), 4) AS failing_percent
    FROM row_rule_counts AS r
    CROSS JOIN key_counts AS k
    CROSS JOIN LATERAL (
        VALUES
        {%- for check in checks %}
        (
            {{ check.id | literal }}, {{ check.rule | literal }}, {{ check.column | literal }}::text,
            {{ check.severity | literal }}, {{ check.message | literal }},
            {{ check.error_if.op | literal }}, {{ check.error_if.value | literal }}::numeric,
            {{ check.error_if.percent | literal }},
            {{ check.warn_if.op | literal }}, {{ check.warn_if.value | literal }}::numeric,
            {{ check.warn_if.percent | literal }},
            {%- if check.rule == 'unique' %}
            k.{{ ('u' ~ (unique_checks.index(check) + 1)) | ident }}
            {%- elif check.rule == 'exact_duplicates' %}
            k.exact_repeat_count
            {%- elif check.rule == 'min_rows' %}
            -- how many rows short of the minimum
            greatest({{ check.params['min'] | literal }} - r.row_count, 0)
            {%- else %}
            r.{{ ('c' ~ (row_checks.index(check) + 1)) | ident }}
            {%- endif %}
        ){{ "," if not loop.last }}
        {%- endfor %}
    ) AS c (
        check_id, rule, column_name, severity, message,
        error_op, error_value, error_is_percent, warn_op, warn_value, warn_is_percent,
        failing_count
    )
),

check_measures AS (
    -- a threshold compares the count, or the percent of rows when written with %
    SELECT
        c.*,
        CASE WHEN c.error_is_percent THEN c.failing_percent ELSE c.failing_count END AS error_measure,
        CASE WHEN c.warn_is_percent THEN c.failing_percent ELSE c.failing_count END AS warn_measure
    FROM check_counts AS c
),

check_thresholds AS (
    SELECT
        m.*,
        CASE m.error_op
            WHEN '>' THEN m.error_measure > m.error_value
            WHEN '>=' THEN m.error_measure >= m.error_value
            WHEN '<' THEN m.error_measure < m.error_value
            WHEN '<=' THEN m.error_measure <= m.error_value
            WHEN '=' THEN m.error_measure = m.error_value
            WHEN '!=' THEN m.error_measure != m.error_value
        END AS is_error,
        CASE m.warn_op
            WHEN '>' THEN m.warn_measure > m.warn_value
            WHEN '>=' THEN m.warn_measure >= m.warn_value
            WHEN '<' THEN m.warn_measure < m.warn_value
            WHEN '<=' THEN m.warn_measure <= m.warn_value
            WHEN '=' THEN m.warn_measure = m.warn_value
            WHEN '!=' THEN m.warn_measure != m.warn_value
        END AS is_warn
    FROM check_measures AS m
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    check_id,
    rule,
    column_name,
    severity,
    -- a warn-severity check never fails the run; an error-severity one warns below error_if
    CASE
        WHEN severity = 'error' AND is_error THEN 'fail'
        WHEN failing_count > 0 AND is_warn THEN 'warn'
        ELSE 'pass'
    END AS status,
    failing_count,
    row_count,
    failing_percent,
    message
FROM check_thresholds;
