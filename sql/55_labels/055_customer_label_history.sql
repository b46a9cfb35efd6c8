{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/distribution.sql' as dist with context -%}
-- Brings the forward-looking labels of every feature row up to date, as rows of the
-- version this run writes (published by 70_registry/070; readers see feats.customer_labels).
-- grain: one row per (customer_id, feature_time) of the features
-- requires: 40_stage/041_stg_order_changes.sql (stg.order_changes),
--           V017__create_feature_and_label_history.sql
-- writes: feats.customer_label_history, work.label_observed_end, work.label_scope, work.label_rows
-- settings: raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
-- Definitions (customer c, feature_time t, horizon H = labels.horizon_days, over c's
-- staged orders that count: every status but features.exclude_statuses):
--   repeat_<H>d       = c places an order with t < order_at <= t + H days
--   revenue_next_<H>d = sum of amount over those orders (0 when none)
--   label_window_end  = t + H days
-- Censoring is a property of a row *in a version*, so it is not stored: a version's views
-- (70_registry/072) mark a row censored when its label_window_end is after that version's observed end
-- (meta.feature_versions.observed_end: the last staged order instant, or
-- labels.observed_until) and show its labels as NULL, never "no repeat"; the training set
-- leaves it out. The stored values count the staged orders in (t, t + H] however far the
-- data reaches, and an order arriving later in that window is a change like any other.
-- Incremental: an order changed at instant x changes the labels of its customer's rows
-- with t >= x - H days only. Those rows are recomputed (every row on a full refresh);
-- only the rows that differ are written. The observed end moving changes no stored row.
-- Days are 24-hour days: the frames are computed in UTC, whatever the session's zone.
{%- if labels %}
-- labels.observed_until, when given, is read like a source timestamp.
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
DROP TABLE IF EXISTS work.label_observed_end;

CREATE UNLOGGED TABLE work.label_observed_end AS
SELECT
    {{ counted.observed_end(labels) }} AS observed_end,
    (
        SELECT v.observed_end
        FROM meta.feature_versions AS v
        WHERE v.version_number = {{ versions.published_version() }}
    ) AS previous_end;

{{ counted.window_settings() }}
{{ versions.index_friendly() }}

-- The table is made by V017 with its key; the value columns follow the config (another
-- horizon adds its columns; rows of earlier versions have NULL there).
{{ versions.open_history('feats.customer_label_history', label_columns) }}

-- The customers to relabel and the instant from which: the changed customers from H days
-- before their earliest change. None on a full refresh. Read from the changes, as the
-- features' scope is, not from it: a full refresh computes the labels beside the features
-- (scripts/pipeline/stages.py).
{% call dist.scratch_table('work.label_scope', 'customer_id') -%}
SELECT
    s.customer_id,
    s.from_at - make_interval(days => {{ labels.horizon_days | literal }}) AS from_at,
    'infinity'::timestamptz AS until_at
FROM (
    {{ versions.changed_customers() | indent(4) }}
) AS s
{%- endcall %}

ALTER TABLE work.label_scope ADD PRIMARY KEY (customer_id);

ANALYZE work.label_scope;

{% call dist.scratch_table('work.label_rows', 'customer_id', read='label rows computed') -%}
WITH {% call counted.order_instants(features) -%}
        SELECT a.customer_key AS customer_id, a.order_at, a.amount, a.status
        FROM work.label_scope AS s
        INNER JOIN stg.orders AS a
            ON
                a.customer_key = s.customer_id
                AND a.customer_id = s.customer_id
                AND a.order_at >= s.from_at
                -- the window of a row reads H days past it
                AND a.order_at <= s.until_at + make_interval(days => {{ labels.horizon_days | literal }})
{%- endcall %},

forward AS (
    SELECT
        customer_id,
        feature_time,
        -- one row per instant, so the frame less the current row is exactly (t, t + H].
        -- Subtracted, not EXCLUDE CURRENT ROW: an excluding frame makes PostgreSQL sum
        -- every frame afresh (rows x frame), a moving one adds and removes one row per step.
        sum(order_count) OVER next_window - order_count AS next_orders,
        CASE
            -- NULL when no later order in the window has an amount, as a sum of none is
            WHEN count(revenue) OVER next_window > (revenue IS NOT NULL)::integer
                THEN sum(revenue) OVER next_window - coalesce(revenue, 0)
        END AS next_revenue
    FROM order_instants
    WINDOW next_window AS (
        PARTITION BY customer_id ORDER BY feature_time
        RANGE BETWEEN CURRENT ROW AND INTERVAL {{ (labels.horizon_days ~ ' days') | literal }} FOLLOWING
    )
)

SELECT
    f.customer_id,
    f.feature_time,
    f.feature_time + make_interval(days => {{ labels.horizon_days | literal }}) AS {{ label_names.window_end | ident }},
    coalesce(f.next_orders, 0) > 0 AS {{ label_names.target | ident }},
    coalesce(f.next_revenue, 0) AS {{ label_names.revenue | ident }}
FROM forward AS f
LEFT JOIN work.label_scope AS s ON f.customer_id = s.customer_id
WHERE {{ versions.full_refresh_once() }} OR (f.feature_time >= s.from_at AND f.feature_time <= s.until_at)
{%- endcall %}

{{ dist.scratch_key('work.label_rows') }}

ANALYZE work.label_rows;

-- Write what changed: close the current rows that went or differ (on a full refresh any,
-- else the scope's in its band), add the new ones; fresh statistics after a full refresh.
{{ versions.apply_changes('feats.customer_label_history', 'work.label_rows',
    ['customer_id', 'feature_time'], label_columns | map('first') | list,
    scope_from='work.label_scope AS s',
    scope_where='h.customer_id = s.customer_id AND h.feature_time >= s.from_at AND h.feature_time <= s.until_at') }}
{%- else %}
-- No labels: nothing to compute (70_registry/072 drops the label views).
SELECT 1 AS no_labels;
{%- endif %}
