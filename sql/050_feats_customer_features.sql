{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/distribution.sql' as dist with context -%}
-- Brings the point-in-time customer features up to date with stg.orders, as rows of the
-- version this run writes (published by 070; readers see feats.customer_features).
-- grain: one row per (customer_id, feature_time), feature_time being an instant at which
--        the customer ordered; orders at the same instant share one row
-- requires: 040_stg_orders.sql (stg.orders, stg.order_changes), V010__versioned_publishing.sql
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
SELECT meta.set_run_setting('timezone', 'UTC');
-- The window sort of a million instants fits in memory.
SELECT meta.set_run_setting('work_mem', '512MB');
-- The instants (one row per customer and order time: about one per order) are grouped by
-- sorting, in the order the windows need: the planner, which expects far fewer groups,
-- would build a hash table of 400 MB and then sort its output anyway (1.1 s at 1M).
SELECT meta.set_run_setting('enable_hashagg', 'off');
{{ versions.index_friendly() }}

CREATE TABLE IF NOT EXISTS feats.customer_feature_history (
    customer_id text COLLATE "C" NOT NULL,
    feature_time timestamptz NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint
);

{{ versions.ensure_columns('feats.customer_feature_history', feature_columns) }}

CREATE UNIQUE INDEX IF NOT EXISTS customer_feature_history_current_idx
ON feats.customer_feature_history (customer_id, feature_time) WHERE valid_to IS NULL;

-- the splits' cut-offs and bands read the current rows by time
CREATE INDEX IF NOT EXISTS customer_feature_history_time_idx
ON feats.customer_feature_history (feature_time) WHERE valid_to IS NULL;

CREATE INDEX IF NOT EXISTS customer_feature_history_valid_from_idx
ON feats.customer_feature_history (valid_from);

CREATE INDEX IF NOT EXISTS customer_feature_history_valid_to_idx
ON feats.customer_feature_history (valid_to) WHERE valid_to IS NOT NULL;

-- On Citus: sharded by customer with its indexes (created above while the table was local:
-- Citus cannot create an index from inside a multi-statement file)
{{ dist.distribute('feats.customer_feature_history', 'customer_id') }}

{{ versions.discard_unpublished('feats.customer_feature_history') }}

-- The customers to recompute and the instant from which (none on a full refresh).
{% call dist.scratch_table('work.feature_scope', 'customer_id') -%}
SELECT
    c.customer_id,
    min(c.changed_at) AS from_at
FROM stg.order_changes AS c
WHERE
    NOT {{ versions.full_refresh() }}
    AND c.version_number > {{ versions.published() }}
    AND c.customer_id IS NOT NULL
GROUP BY c.customer_id
{%- endcall %}

ALTER TABLE work.feature_scope ADD PRIMARY KEY (customer_id);

ANALYZE work.feature_scope;

-- The rows as they should be: every row on a full refresh, else the scope's rows.
-- Unlogged (scratch) and CREATE TABLE AS, so that a full refresh may scan in parallel.
-- Orders are read by customer_key, which is the customer of every order that has one
-- (V016): on Citus it is what places them on the customer's shard; the equality on
-- customer_id beside it lets one server use the (customer_id, order_at) index.
{% call dist.scratch_table('work.feature_rows', 'customer_id') -%}
WITH {{ counted.order_instants(features, '(
        SELECT a.customer_key AS customer_id, a.order_at, a.amount, a.status
        FROM stg.orders AS a
        WHERE ' ~ versions.full_refresh() ~ ' AND a.customer_id IS NOT NULL
        UNION ALL
        SELECT a.customer_key AS customer_id, a.order_at, a.amount, a.status
        FROM work.feature_scope AS s
        CROSS JOIN LATERAL (
            SELECT max(p.order_at) AS previous_at
            FROM stg.orders AS p
            WHERE p.customer_key = s.customer_id AND p.customer_id = s.customer_id AND p.order_at < s.from_at
                AND ' ~ counted.counts('p', features) ~ '
        ) AS previous
        INNER JOIN stg.orders AS a
            ON a.customer_key = s.customer_id AND a.customer_id = s.customer_id
            AND a.order_at >= least(
                s.from_at - ' ~ ((features.windows_days | max) * 24 ~ ' hours') | literal ~ '::interval,
                previous.previous_at
            )
    ) AS o') }},

windowed AS (
    SELECT
        customer_id,
        feature_time,
        {% for days in features.windows_days %}
        sum(order_count) OVER {{ ('last_' ~ days ~ 'd') | ident }} AS {{ ('orders_' ~ days ~ 'd') | ident }},
        sum(revenue) OVER {{ ('last_' ~ days ~ 'd') | ident }} AS {{ ('revenue_' ~ days ~ 'd') | ident }},
        {% endfor %}
        -- rows are distinct instants, so the previous row is strictly earlier. lag()
        -- ignores the frame, so it shares the first window's pass over the rows.
        lag(feature_time) OVER {{ ('last_' ~ features.windows_days[0] ~ 'd') | ident }} AS previous_order_at
    FROM order_instants
    WINDOW
    {% for days in features.windows_days %}
    {{ ('last_' ~ days ~ 'd') | ident }} AS (
        PARTITION BY customer_id ORDER BY feature_time
        RANGE BETWEEN INTERVAL {{ (days ~ ' days') | literal }} PRECEDING AND CURRENT ROW
    ){{ "," if not loop.last }}
    {% endfor %}
)

SELECT
    w.customer_id,
    w.feature_time,
    {% for days in features.windows_days %}
    w.{{ ('orders_' ~ days ~ 'd') | ident }}::bigint AS {{ ('orders_' ~ days ~ 'd') | ident }},
    coalesce(w.{{ ('revenue_' ~ days ~ 'd') | ident }}, 0) AS {{ ('revenue_' ~ days ~ 'd') | ident }},
    {% endfor %}
    coalesce(
        floor(extract(EPOCH FROM w.feature_time - w.previous_order_at) / 86400)::integer,
        {{ features.days_since_last_order_if_none | literal }}::integer
    ) AS days_since_last_order
FROM windowed AS w
LEFT JOIN work.feature_scope AS s ON w.customer_id = s.customer_id
-- the rows read only to fill the frames are not the scope's
WHERE {{ versions.full_refresh() }} OR w.feature_time >= s.from_at
{%- endcall %}

ALTER TABLE work.feature_rows ADD PRIMARY KEY (customer_id, feature_time);

ANALYZE work.feature_rows;

-- Close what changed or went: on a full refresh any current row, else the scope's rows.
{{ versions.close_changed('feats.customer_feature_history', 'work.feature_rows',
    ['customer_id', 'feature_time'], feature_columns | map('first') | list,
    scope_where=versions.full_refresh()) }}

{{ versions.close_changed('feats.customer_feature_history', 'work.feature_rows',
    ['customer_id', 'feature_time'], feature_columns | map('first') | list,
    scope_from='work.feature_scope AS s',
    scope_where='h.customer_id = s.customer_id AND h.feature_time >= s.from_at') }}

{{ versions.drop_indexes_if_empty('feats.customer_feature_history') }}

{{ versions.add_changed('feats.customer_feature_history', 'work.feature_rows',
    ['customer_id', 'feature_time'], feature_columns | map('first') | list) }}

{{ versions.restore_indexes('feats.customer_feature_history') }}

-- Fresh statistics for the labels' and splits' plans.
{{ versions.analyze_after_full_refresh('feats.customer_feature_history') }}
