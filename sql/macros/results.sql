{#-
  What a check writes, for the record-level checks (30_validate/030, 033, 035) and the
  order-level ones (37_model/038), and the drift checks' rows (65_profile/069):
    check_rows      the checks as rows (what each is, its thresholds, its measures), with
                    count_measures for the counted checks' two measures
    check_results   each check's status, from its counts and thresholds
    flagged, batch_events, offending, ranked
                    the records (or orders) a check found, for the quarantine and the
                    failure history
  The rules themselves: macros/rules.sql (records) and macros/order_rules.sql (orders).
-#}
{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/order_rules.sql' as order_rules -%}
{%- import 'macros/versions.sql' as versions with context -%}

{#- A threshold is '>' or '>=' a count, or a percentage of the batch's rows; the
    percentage is compared exactly (count * 100 against value * rows), not rounded. -#}
{%- macro breaches(kind) -%}
CASE c.{{ kind }}_op
            WHEN '>' THEN
                CASE WHEN c.{{ kind }}_is_percent THEN c.failing_count * 100 > c.{{ kind }}_value * c.row_count
                    ELSE c.failing_count > c.{{ kind }}_value END
            WHEN '>=' THEN
                CASE WHEN c.{{ kind }}_is_percent THEN c.failing_count * 100 >= c.{{ kind }}_value * c.row_count
                    ELSE c.failing_count >= c.{{ kind }}_value END
        END
{%- endmacro -%}
{#- A threshold's three values; a quarantine check without error_if has none (never breached). -#}
{%- macro threshold(t) -%}
{%- if t -%}
{{ t.op | literal }}, {{ t.value | literal }}::numeric, {{ t.percent | literal }}
{%- else -%}
NULL::text, NULL::numeric, NULL::boolean
{%- endif -%}
{%- endmacro -%}

{#- The check rows, a FROM item `c` with one row per check of `checks`: what the check is
    (check_id, rule, column_name, severity, message, action), its two thresholds
    (error_op, error_value, error_is_percent, warn_op, warn_value, warn_is_percent), then the
    columns named in `measures`, which `measured(check)` (a macro of the caller) gives for
    each check: one expression per measure, comma-separated. Used as a CROSS JOIN LATERAL
    when the measures read the FROM items before it. -#}
{%- macro check_rows(checks, measures, measured) -%}
(
        VALUES
{%- for check in checks %}
        (
            {{ check.id | literal }}, {{ check.rule | literal }}, {{ check.column | literal }}::text,
            {{ check.severity | literal }}, {{ check.message | literal }}, {{ check.action | literal }},
            {{ threshold(check.error_if) }},
            {{ threshold(check.warn_if) }},
            {{ measured(check) | trim | indent(12) }}
        ){{ "," if not loop.last }}
{%- endfor %}
    ) AS c (
        check_id, rule, column_name, severity, message, action,
        error_op, error_value, error_is_percent, warn_op, warn_value, warn_is_percent,
        {{ measures | join(', ') }}
    )
{%- endmacro -%}

{#- A counted check's two measures, for check_rows: its failing_count, `failing` (an
    expression), or for min_rows and max_rows how far `total` (the rows counted) lies below
    or above the bound; and its row_count, the rows it looks at: its domain's (a column
    domain_check_<i> of `r`, i its place in `domain_checks`) or all of them (r.row_count). -#}
{%- macro count_measures(check, domain_checks, failing=none, total=none) -%}
{%- if check.rule == 'min_rows' -%}
greatest({{ check.params['min'] | literal }} - {{ total }}, 0),
{%- elif check.rule == 'max_rows' -%}
greatest({{ total }} - {{ check.params['max'] | literal }}, 0),
{%- else -%}
{{ failing }},
{%- endif %}
{% if check.get('has_domain') -%}
r.{{ ('domain_check_' ~ (domain_checks.index(check) + 1)) | ident }}
{%- else -%}
r.row_count
{%- endif -%}
{%- endmacro -%}

{#- The end of a results INSERT, after a CTE `check_counts` (one row per check with the
    check_rows columns, failing_count, row_count, failing_percent): each check's status. A
    warn-severity check never fails the run; an error-severity one warns below error_if; a
    quarantine check sets its records aside (and fails past error_if); a check with no
    offending record always passes. -#}
{%- macro check_results(level) -%}
check_thresholds AS (
    SELECT
        c.*,
        {{ breaches('error') }} AS is_error,
        {{ breaches('warn') }} AS is_warn
    FROM check_counts AS c
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    check_id,
    rule,
    column_name,
    severity,
    CASE
        WHEN failing_count > 0 AND severity = 'error' AND is_error THEN 'fail'
        WHEN failing_count > 0 AND is_warn THEN 'warn'
        WHEN failing_count > 0 AND action = 'quarantine' THEN 'quarantine'
        ELSE 'pass'
    END AS status,
    failing_count,
    row_count,
    failing_percent,
    message,
    {{ level | literal }} AS level,
    action
FROM check_thresholds
{%- endmacro -%}

{#- The body of a CTE of the checks whose offending records to look for: this run's at
    `level` that did not pass, and of `action` when given. -#}
{%- macro flagged(level, action=none) -%}
SELECT r.check_id
    FROM meta.validation_results AS r
    WHERE
        r.run_id = current_setting('raw_to_ready.run_id')
        AND r.level = {{ level | literal }}
        AND r.status != 'pass'
{%- if action %}
        AND r.action = {{ action | literal }}
{%- endif %}
{%- endmacro -%}

{#- The body of the CTE batch_events that `offending` reads: the raw events this run
    validates, read only when a check of the CTE `flagged` is to be looked for. -#}
{%- macro batch_events(flagged) -%}
SELECT
        e.event_id,
        e.file_sha256,
        e.file_path,
        e.line_number,
        e.payload
    FROM raw.raw_events AS e
    WHERE
        {{ versions.in_work_files('e.file_sha256') }}
        AND EXISTS (SELECT 1 FROM {{ flagged }})
{%- endmacro -%}

{#- The offending records of `checks`: one SELECT per check, joined by UNION ALL, and an
    empty member last, so that the union is well-formed whatever the number of checks.
    `flagged` names a CTE of the checks to look for (its check_id): a check not in it
    scans nothing. Level 'records': the rows of a CTE batch_events (`e`: the batch's raw
    events), as (check_id, event_id, file_sha256, file_path, line_number, failing_value,
    payload). Level 'orders': the rows of stg.model_orders (`o`), as (check_id, event_id:
    the order's record, line_number, failing_value, payload: the order without its run). -#}
{%- macro offending(checks, flagged, level='records') -%}
{%- for check in checks %}
    SELECT
        {{ check.id | literal }} AS check_id,
{%- if level == 'orders' %}
        o.source_event_id AS event_id,
        o.line_number,
        {{ order_rules.field(check) }}::text AS failing_value,
        to_jsonb(o) - 'run_id' AS payload
    FROM stg.model_orders AS o
    WHERE
        {{ check.id | literal }} IN (SELECT f.check_id FROM {{ flagged }} AS f)
        AND ({{ order_rules.offends(check) }})
{%- else %}
        e.event_id,
        e.file_sha256,
        e.file_path,
        e.line_number,
        {{ rules.field(check) }} AS failing_value,
        e.payload
    FROM batch_events AS e
    WHERE
        {{ check.id | literal }} IN (SELECT f.check_id FROM {{ flagged }} AS f)
        AND {{ rules.offends(check) }}
{%- endif %}
    UNION ALL
{%- endfor %}
    -- keeps the union well-formed whatever the number of checks
    SELECT
        NULL AS check_id,
        NULL::bigint AS event_id,
{%- if level != 'orders' %}
        NULL AS file_sha256,
        NULL AS file_path,
{%- endif %}
        NULL::bigint AS line_number,
        NULL AS failing_value,
        NULL::jsonb AS payload
    WHERE FALSE
{%- endmacro -%}

{#- The body of a CTE: the rows of `offending` numbered per check in event order
    (failure_rank), so that the failure history keeps the first of each check. -#}
{%- macro ranked(offending) -%}
SELECT
        o.*,
        row_number() OVER (PARTITION BY o.check_id ORDER BY o.event_id) AS failure_rank
    FROM {{ offending }} AS o
{%- endmacro -%}
