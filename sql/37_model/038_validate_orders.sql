{%- import 'macros/rules.sql' as rules -%}
{%- import 'macros/order_rules.sql' as order_rules -%}
{%- import 'macros/results.sql' as results with context -%}
-- Evaluates every order-level expectation over the orders the source models produced
-- (one aggregate scan), and appends the offending orders of the checks that did not
-- pass to the failure history (capped per check), with the lineage of their record.
-- grain: one row per order check (meta.validation_results) for this run;
--        one row per offending order per check (meta.validation_failures)
-- requires: 37_model/037_model_orders.sql, meta.runs (this run's row: a range relative to
--           now reads its start)
-- writes: meta.validation_results, meta.validation_failures
-- settings: raw_to_ready.run_id
-- With no order-level rule (the default model's orders meet the contract by
-- construction) this file sets a setting and nothing else.
SELECT meta.set_run_setting('work_mem', '256MB');
{% if order_checks %}
{%- set row_checks = order_checks | rejectattr('rule', 'in', ['min_rows', 'max_rows']) | list %}
{%- set domain_checks = order_checks | selectattr('has_domain', 'defined') | selectattr('has_domain') | list %}
{#- An order check's measures: its offending orders, and the orders it looks at. -#}
{%- macro order_measures(check) -%}
{%- if check in row_checks -%}
{{ results.count_measures(check, domain_checks, failing='r.' ~ (('order_check_' ~ (row_checks.index(check) + 1)) | ident)) }}
{%- else -%}
{{ results.count_measures(check, domain_checks, total='r.row_count') }}
{%- endif -%}
{%- endmacro %}
-- the run's start, for a range relative to now
{{ rules.remember_run_start() }}

INSERT INTO meta.validation_results (
    run_id, check_id, rule, column_name, severity, status,
    failing_count, row_count, failing_percent, message, level, action
)
WITH order_counts AS (
    SELECT
        {%- for check in order_checks if check.rule not in ['min_rows', 'max_rows'] %}
        count(*) FILTER (WHERE {{ order_rules.offends(check) }}) AS {{ ('order_check_' ~ loop.index) | ident }},
        {%- endfor %}
        {%- for check in domain_checks %}
        count(*) FILTER (WHERE {{ order_rules.in_domain(check) }}) AS {{ ('domain_check_' ~ loop.index) | ident }},
        {%- endfor %}
        count(*) AS row_count
    FROM stg.model_orders AS o
),

check_counts AS (
    SELECT
        c.*,
        -- a share of the check's rows (every order, or its domain's), so at most 100
        least(round(100.0 * c.failing_count / greatest(c.row_count, 1), 4), 100) AS failing_percent
    FROM order_counts AS r
    CROSS JOIN LATERAL {{ results.check_rows(order_checks, ['failing_count', 'row_count'], order_measures) }}
),

{{ results.check_results('orders') }};

INSERT INTO meta.validation_failures (
    run_id, check_id, event_id, file_path, line_number, failing_value, payload
)
WITH flagged_checks AS (
    {{ results.flagged('orders') }}
),

offending AS (
    {{- results.offending(row_checks, 'flagged_checks', level='orders') }}
),

ranked AS (
    {{ results.ranked('offending') }}
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
