{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/distribution.sql' as dist with context -%}
{%- import 'macros/defined.sql' as define with context -%}
{%- import 'macros/window_pass.sql' as pass with context -%}
{%- import 'macros/entities.sql' as entities with context -%}
{%- import 'macros/sources.sql' as sources -%}
-- Brings the point-in-time customer features up to date with stg.orders, as rows of the
-- version this run writes (published by 70_registry/070; readers see feats.customer_features).
-- grain: one row per (customer_id, feature_time), feature_time being an instant at which
--        the customer ordered; orders at the same instant share one row
-- requires: 40_stage/040_stg_orders.sql, 40_stage/041_stg_order_changes.sql (stg.orders,
--           stg.order_changes), V017__create_feature_and_label_history.sql
-- writes: feats.customer_feature_history, work.feature_scope, work.feature_rows,
--         work.entity_feature_rows
-- features.define: one window pass of sql/macros/defined.sql computes the built-ins and
-- the defined columns together (below), after one pass per entity other than the customer
-- (sql/macros/entities.sql)
-- settings: raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
-- Definitions (customer c, feature_time t, over c's staged orders that count: every
-- status but features.exclude_statuses):
--   orders_<N>d  = count of orders with t - N days <= order_at <= t
--   revenue_<N>d = sum of amount over the same orders (0 when none has an amount)
--   days_since_last_order = floor((t - latest order_at strictly before t) / 24 h);
--                           NULL (or the configured value) when there is none
-- Only orders at or before t are in any frame, so nothing later can leak into a row.
-- Incremental: only the customers whose orders changed since the published version
-- (stg.order_changes) are recomputed, and only their rows from their earliest changed
-- instant on: a row before it reads orders before it only, which did not change. Its
-- frames reach back the widest window, and its days_since_last_order to the customer's
-- previous order, so those orders are read too. A full refresh recomputes every row.
-- Either way only the rows that differ from the current ones are written.
-- Days are 24-hour days: the frames are computed in UTC, whatever the session's zone.
{#- A row of the scope (work.feature_scope): a daily run's customer, from its instant on. -#}
{%- macro in_scope(customer, feature_time) -%}
EXISTS (
        SELECT 1 FROM work.feature_scope AS s
        WHERE s.customer_id = {{ customer }} AND {{ feature_time }} >= s.from_at
    )
{%- endmacro %}
{{ counted.window_settings() }}
{{ versions.index_friendly() }}

-- The table is made by V017 with its key; the value columns follow the config (a new
-- window adds its columns; rows of earlier versions have NULL there).
{{ versions.open_history('feats.customer_feature_history', feature_columns) }}

-- The customers to recompute and the instant from which (none on a full refresh).
{% call dist.scratch_table('work.feature_scope', 'customer_id') -%}
{{ versions.changed_customers() }}
{%- endcall %}

ALTER TABLE work.feature_scope ADD PRIMARY KEY (customer_id);

ANALYZE work.feature_scope;

-- features.define's entities other than the customer: per entity value and instant
-- (sql/macros/entities.sql; without one the table is made empty)
{{ entities.feature_rows() }}

{%- if not defined.any %}

-- The rows as they should be: every row on a full refresh, else the scope's rows, from
-- the scope's orders: from the widest window before its instant, or its previous order.
-- Unlogged (scratch) and CREATE TABLE AS, so that a full refresh may scan in parallel.
{% call dist.scratch_table('work.feature_rows', 'customer_id', read='feature rows computed') -%}
WITH {% call counted.order_instants(features) -%}
        {{ counted.scope_orders(features, 'a.customer_key AS customer_id, a.order_at, a.amount, a.status',
            (features.windows_days | max) * 24) | indent(8) }}
{%- endcall %},

windowed AS (
    SELECT
        customer_id,
        feature_time,
        {% for window in feature_windows %}
        sum(order_count) OVER {{ ('last_' ~ window.days ~ 'd') | ident }} AS {{ window.orders | ident }},
        sum(revenue) OVER {{ ('last_' ~ window.days ~ 'd') | ident }} AS {{ window.revenue | ident }},
        {% endfor %}
        -- rows are distinct instants, so the previous row is strictly earlier. lag()
        -- ignores the frame, so it shares the first window's pass over the rows.
        lag(feature_time) OVER {{ ('last_' ~ feature_windows[0].days ~ 'd') | ident }} AS previous_order_at
    FROM order_instants
    WINDOW
    {% for window in feature_windows %}
    {{ ('last_' ~ window.days ~ 'd') | ident }} AS (
        PARTITION BY customer_id ORDER BY feature_time
        RANGE BETWEEN INTERVAL {{ (window.days ~ ' days') | literal }} PRECEDING AND
        {{ 'CURRENT ROW' if features.window_end == 'inclusive' else "INTERVAL '1 microsecond' PRECEDING" }}
    ){{ "," if not loop.last }}
    {% endfor %}
)

SELECT
    w.customer_id,
    w.feature_time,
    {% for window in feature_windows %}
    coalesce(w.{{ window.orders | ident }}, 0)::bigint AS {{ window.orders | ident }},
    coalesce(w.{{ window.revenue | ident }}, 0) AS {{ window.revenue | ident }},
    {% endfor %}
    coalesce(
        floor(extract(EPOCH FROM w.feature_time - w.previous_order_at) / 86400)::integer,
        {{ features.days_since_last_order_if_none | literal }}::integer
    ) AS {{ days_since_column | ident }}
FROM windowed AS w
-- the rows read only to fill the frames are not the scope's (on a full refresh every row is:
-- no lookup)
WHERE {{ versions.full_refresh_once() }} OR {{ in_scope('w.customer_id', 'w.feature_time') }}
{%- endcall %}

{{ dist.scratch_key('work.feature_rows') }}

ANALYZE work.feature_rows;
{%- endif %}
{%- if defined.any %}
-- With features.define, one window pass computes the built-ins and the defined columns
-- (sql/macros/defined.sql) over every order of the scope (also the ones the built-ins do not
-- count): read as far back as the widest window or the previous counted order (the whole
-- history for a lifetime window), rows for the counted instants only.
{% call dist.scratch_table('work.feature_rows', 'customer_id', read='feature rows computed') -%}
-- not materialized: the window pass and the distinct counts each read stg.orders (cheaper
-- than writing a million rows aside and reading them twice)
{%- set order_columns = 'a.customer_key AS partition__, a.customer_id, a.customer_key, a.order_id, a.order_at, a.amount, '
    ~ 'a.status' ~ sources.attribute_list(staging, 'a') %}
WITH defined_orders AS NOT MATERIALIZED (
    SELECT {{ order_columns }}
    FROM stg.orders AS a
    WHERE {{ versions.full_refresh() }} AND a.customer_id IS NOT NULL
    UNION ALL
    {{ counted.scope_orders(features, order_columns, defined.lookback_hours) | indent(4) }}
),
{%- if defined.lines %}

-- the lines of those orders, for the definitions over lines
defined_lines AS (
    {{ pass.pass_lines('defined_orders') }}
),
{%- endif %}

{{ pass.window_pass(defined, features, 'defined_orders', 'defined_lines') }},

feature_values AS (
    SELECT
        w.partition__ AS customer_id,
        w.feature_time,
        {%- for window in feature_windows %}
        w.{{ window.orders | ident }},
        w.{{ window.revenue | ident }},
        {%- endfor %}
        w.{{ days_since_column | ident }},
        {{- define.row_values(defined) }}
    FROM defined_windowed AS w
    {%- for entity in defined.entities %}
    -- the row's {{ entity.entity }}: its order's (sql/macros/entities.sql)
    LEFT JOIN work.entity_feature_rows AS {{ ('e_' ~ entity.entity) | ident }}
        ON
            {{ ('e_' ~ entity.entity) | ident }}.entity = {{ entity.entity | literal }}
            AND w.{{ ('entity__' ~ entity.entity) | ident }} = {{ ('e_' ~ entity.entity) | ident }}.entity_value
            AND w.feature_time = {{ ('e_' ~ entity.entity) | ident }}.feature_time
    {%- endfor %}
    WHERE w.spine__ AND ({{ versions.full_refresh_once() }} OR {{ in_scope('w.partition__', 'w.feature_time') }})
)

-- every column in table order, a ratio dividing two finished ones
SELECT
    customer_id,
    feature_time,
    {%- for name, _ in feature_columns %}
    {% if name in defined.ratios %}{{ define.ratio_value(defined.ratios[name]) }} AS {{ name | ident }}
    {%- else %}{{ name | ident }}{% endif %}{{ ',' if not loop.last }}
    {%- endfor %}
FROM feature_values
{%- endcall %}

{{ dist.scratch_key('work.feature_rows') }}

ANALYZE work.feature_rows;
{%- endif %}

-- Write what changed: close the current rows that went or differ (on a full refresh any,
-- else the scope's from its instant on), add the new ones; fresh statistics after a full
-- refresh for the labels' and splits' plans.
{{ versions.apply_changes('feats.customer_feature_history', 'work.feature_rows',
    ['customer_id', 'feature_time'], feature_columns | map('first') | list,
    scope_from='work.feature_scope AS s',
    scope_where='h.customer_id = s.customer_id AND h.feature_time >= s.from_at') }}
