{%- import 'macros/rules.sql' as rules -%}
-- Evaluates every order-level expectation over the orders the source models produced
-- (one aggregate scan), and appends the offending orders of the checks that did not
-- pass to the failure history (capped per check), with the lineage of their record.
-- grain: one row per order check (meta.validation_results) for this run;
--        one row per offending order per check (meta.validation_failures)
-- requires: 037_model_orders.sql, meta.runs (this run's row: a range relative to now reads
--           its start)
-- settings: raw_to_ready.run_id
-- With no order-level rule (the default model's orders meet the contract by
-- construction) this file sets a setting and nothing else.
SELECT meta.set_run_setting('work_mem', '256MB');
{% if order_checks %}
{%- set row_checks = order_checks | rejectattr('rule', 'in', ['min_rows', 'max_rows']) | list %}
{%- set domain_checks = order_checks | selectattr('has_domain', 'defined') | selectattr('has_domain') | list %}
-- the run's start, for a range relative to now
{{ rules.remember_run_start() }}

INSERT INTO meta.validation_results (
    run_id, check_id, rule, column_name, severity, status,
    failing_count, row_count, failing_percent, message, level, action
)
WITH order_counts AS (
    SELECT
        {%- for check in order_checks if check.rule not in ['min_rows', 'max_rows'] %}
        count(*) FILTER (WHERE {{ rules.order_offends(check) }}) AS {{ ('order_check_' ~ loop.index) | ident }},
        {%- endfor %}
        {%- for check in domain_checks %}
        count(*) FILTER (WHERE {{ rules.order_in_domain(check) }}) AS {{ ('domain_check_' ~ loop.index) | ident }},
        {%- endfor %}
        count(*) AS row_count
    FROM stg.model_orders AS o
),

check_counts AS (
    SELECT
        c.check_id,
        c.rule,
        c.column_name,
        c.severity,
        c.message,
        c.action,
        c.error_op,
        c.error_value,
        c.error_is_percent,
        c.warn_op,
        c.warn_value,
        c.warn_is_percent,
        c.failing_count,
        c.row_count,
        -- a share of the check's rows (every order, or its domain's), so at most 100
        least(round(100.0 * c.failing_count / greatest(c.row_count, 1), 4), 100) AS failing_percent
    FROM order_counts AS r
    CROSS JOIN LATERAL (
        VALUES
        {%- for check in order_checks %}
        (
            {{ rules.check_row(check) }}
            {%- if check.rule == 'min_rows' %}
            greatest({{ check.params['min'] | literal }} - r.row_count, 0)
            {%- elif check.rule == 'max_rows' %}
            greatest(r.row_count - {{ check.params['max'] | literal }}, 0)
            {%- else %}
            r.{{ ('order_check_' ~ (row_checks.index(check) + 1)) | ident }}
            {%- endif %},
            {%- if check.get('has_domain') %}
            r.{{ ('domain_check_' ~ (domain_checks.index(check) + 1)) | ident }}
            {%- else %}
            r.row_count
            {%- endif %}
        ){{ "," if not loop.last }}
        {%- endfor %}
    ) AS c (
        check_id, rule, column_name, severity, message, action,
        error_op, error_value, error_is_percent, warn_op, warn_value, warn_is_percent,
        failing_count, row_count
    )
),

{{ rules.check_results('orders') }};

INSERT INTO meta.validation_failures (
    run_id, check_id, event_id, file_path, line_number, failing_value, payload
)
WITH flagged_checks AS (
    SELECT r.check_id
    FROM meta.validation_results AS r
    WHERE
        r.run_id = current_setting('raw_to_ready.run_id')
        AND r.level = 'orders'
        AND r.status != 'pass'
),

offending AS (
    {%- for check in row_checks %}
    SELECT
        {{ check.id | literal }} AS check_id,
        o.source_event_id AS event_id,
        o.line_number,
        {{ rules.order_field(check) }}::text AS failing_value,
        to_jsonb(o) - 'run_id' AS payload
    FROM stg.model_orders AS o
    WHERE
        {{ check.id | literal }} IN (SELECT f.check_id FROM flagged_checks AS f)
        AND ({{ rules.order_offends(check) }})
    UNION ALL
    {%- endfor %}
    -- keeps the union well-formed whatever the number of checks
    SELECT
        NULL AS check_id,
        NULL::bigint AS event_id,
        NULL::bigint AS line_number,
        NULL AS failing_value,
        NULL::jsonb AS payload
    WHERE FALSE
),

ranked AS (
    SELECT
        o.*,
        row_number() OVER (PARTITION BY o.check_id ORDER BY o.event_id) AS failure_rank
    FROM offending AS o
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    r.check_id,
    r.event_id,
    e.file_path,
    r.line_number,
    r.failing_value,
    r.payload
FROM ranked AS r
LEFT JOIN raw.raw_events AS e ON r.event_id = e.event_id
WHERE r.failure_rank <= {{ failure_history_cap | literal }}
ORDER BY r.check_id, r.event_id;
{% endif %}
