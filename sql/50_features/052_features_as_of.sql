{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/defined_as_of.sql' as define with context -%}
-- (Re)creates feats.features_as_of: point-in-time retrieval of the customer features at
-- any instants, like a feature store's get_historical_features.
-- grain: the function returns one row per entity (customer_ids[i], as_ofs[i]), numbered i
--        (entity_number, from 1, in array order); it writes no table
-- requires: V003__create_stg_orders.sql (stg.orders), V009__index_stg_orders_by_customer.sql
--           (the lookups); the same definitions as 50_features/050_customer_feature_history.sql
-- writes: feats.features_as_of
-- Definitions (customer c, instant t = as_of, over c's staged orders that count: every
-- status but features.exclude_statuses; orders without a customer never count):
--   orders_<N>d  = count of orders with t - N days <= order_at <= t
--   revenue_<N>d = sum of amount over the same orders (0 when none has an amount)
--   days_since_last_order = floor((t - latest order_at strictly before t) / 24 h);
--                           NULL (or the configured value) when there is none
-- So at t = a feature_time of feats.customer_features the function returns that row, and
-- before a customer's first order (or for an unknown customer) it returns orders 0,
-- revenue 0 and days_since_last_order NULL (or the configured value). A NULL customer or
-- as_of gives the same empty values. The arrays must be as long as each other: unnest pads the shorter with NULLs.
-- Only orders at or before t are read, from stg.orders as it is now (not the features
-- table): windows are relative to t, whatever instants feature rows exist for.
-- Days are 24-hour days: the windows are '<24 N> hours'::interval, which is the same span
-- in every session time zone (an interval in days would follow the session zone's DST).
-- Set-based: one statement, no loop. Each entity costs one index range scan on stg.orders
-- (customer_id, order_at) over its widest window, and a second probe for its latest
-- earlier order only when that window holds none.
-- The body is SQL-standard (BEGIN ATOMIC): PostgreSQL parses it here and records that it
-- uses stg.orders, so a migration cannot drop or retype a column it reads unnoticed (drop
-- the function first; the next features stage creates it again).
-- Example (a DBA): SELECT * FROM feats.features_as_of(
--     ARRAY['C001', 'C002'], ARRAY['2025-12-08 10:00+00', '2026-01-01 00:00+00']::timestamptz[]);

{#- sqlfluff checks no indentation here: with features.define the retrieval's SELECT is wrapped
    (its ratios divide finished columns) and without it is not, so no one layout suits both. -#}
-- sqlfluff:exclude_rules:layout.indent
-- The return columns follow features.windows_days, and CREATE OR REPLACE cannot change them.
{%- if distribution %}
-- Citus: the function is created on the coordinator only, where `make retrieve` calls it
-- (creating it on the workers too would need this transaction's earlier statements to
-- have used one connection per worker).
SELECT set_config('citus.enable_ddl_propagation', 'off', TRUE);
{%- endif %}

DROP FUNCTION IF EXISTS feats.features_as_of(text[], timestamptz[]);

CREATE FUNCTION feats.features_as_of(customer_ids text[], as_ofs timestamptz[])
RETURNS TABLE (
    entity_number bigint,
    customer_id text,
    as_of timestamptz,
    {% for window in feature_windows %}
    {{ window.orders | ident }} bigint,
    {{ window.revenue | ident }} numeric,
    {% endfor %}
    {{ days_since_column | ident }} integer
    {%- for name, type in feature_columns if name in defined.columns | map(attribute='name') %},
    {{ name | ident }} {{ type }}
    {%- endfor %}
)
{%- if distribution %}
LANGUAGE plpgsql
STABLE
AS $as_of$
#variable_conflict use_column
BEGIN
    -- Citus: the same numbers by joins on the customer, which each shard runs for the
    -- entities it holds (a SQL function's LATERAL lookups cannot be planned over shards)
    RETURN QUERY
    WITH e AS (
        SELECT u.customer_id, u.as_of, u.entity_number
        FROM unnest(customer_ids, as_ofs) WITH ORDINALITY AS u (customer_id, as_of, entity_number)
    ),

    w AS (
        SELECT
            e.entity_number,
            {{ counted.window_aggregates(feature_windows, features) | trim }}
        FROM e
        INNER JOIN stg.orders AS o
            ON
                o.customer_key = e.customer_id AND o.customer_id = e.customer_id
                AND o.order_at <= e.as_of
                AND o.order_at >= e.as_of - {{ ((features.windows_days | max) * 24 ~ ' hours') | literal }}::interval
        WHERE {{ counted.counts('o', features) }}
        GROUP BY e.entity_number
    ),

    p AS (
        -- the latest order strictly before as_of, however long ago
        SELECT
            e.entity_number,
            max(o.order_at) AS order_at
        FROM e
        INNER JOIN stg.orders AS o
            ON o.customer_key = e.customer_id AND o.customer_id = e.customer_id AND o.order_at < e.as_of
        WHERE {{ counted.counts('o', features) }}
        GROUP BY e.entity_number
    )
    {%- for entity in defined.entities %},

    -- the entity value of each entity: its latest counted order's (sql/macros/defined_as_of.sql)
    {{ ('v_' ~ entity.entity) | ident }} AS (
        SELECT DISTINCT ON (e.entity_number)
            e.entity_number,
            o.{{ entity.entity | ident }} AS entity_value
        FROM e
        INNER JOIN stg.orders AS o
            ON o.customer_key = e.customer_id AND o.customer_id = e.customer_id AND o.order_at <= e.as_of
        WHERE {{ counted.counts('o', features) }}
        ORDER BY e.entity_number ASC, o.order_at DESC, o.order_id DESC
    )
    {%- endfor %}
    {%- for g in defined.as_of_groups %},

    -- features.define (sql/macros/defined_as_of.sql): {{ g.source }} of the {{ g.entity or 'customer' }}
    {{ g.alias }} AS (
        SELECT
            e.entity_number,
            {{- define.as_of_aggregates(g, features) }}
        FROM e
        {%- if g.entity %}
        INNER JOIN {{ ('v_' ~ g.entity) | ident }} ON e.entity_number = {{ ('v_' ~ g.entity) | ident }}.entity_number
        LEFT JOIN {{ define.as_of_rows(g) }}
        {%- else %}
        INNER JOIN {{ define.as_of_rows(g) }}
        {%- endif %}
            ON
                {{ define.as_of_where(g) }}
        GROUP BY e.entity_number, e.as_of
    )
    {%- endfor %}

    {% if defined.any -%}
    -- features.define's ratios divide the finished columns of the row r below
    SELECT {{ define.as_of_outer(defined, feature_columns) }}
    FROM (
    {%- endif %}
    SELECT
        e.entity_number,
        e.customer_id,
        e.as_of,
        {% for window in feature_windows %}
        coalesce(w.{{ window.orders | ident }}, 0)::bigint AS {{ window.orders | ident }},
        coalesce(w.{{ window.revenue | ident }}, 0) AS {{ window.revenue | ident }},
        {% endfor %}
        coalesce(
            floor(extract(EPOCH FROM e.as_of - p.order_at) / 86400)::integer,
            {{ features.days_since_last_order_if_none | literal }}::integer
        ) AS {{ days_since_column | ident }}
        {{- define.as_of_inner(defined) }}
    FROM e
    LEFT JOIN w ON e.entity_number = w.entity_number
    LEFT JOIN p ON e.entity_number = p.entity_number
    {%- for g in defined.as_of_groups %}
    LEFT JOIN {{ g.alias }} ON e.entity_number = {{ g.alias }}.entity_number
    {%- endfor %}
    {%- if defined.any %}
    ) AS r
    {%- endif %};
END
$as_of$;
{%- else %}
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    {% if defined.any -%}
    -- features.define's ratios divide the finished columns of the row r below
    SELECT {{ define.as_of_outer(defined, feature_columns) }}
    FROM (
    {%- endif %}
    SELECT
        e.entity_number,
        e.customer_id,
        e.as_of,
        {% for window in feature_windows %}
        w.{{ window.orders | ident }},
        coalesce(w.{{ window.revenue | ident }}, 0) AS {{ window.revenue | ident }},
        {% endfor %}
        coalesce(
            floor(extract(EPOCH FROM e.as_of - coalesce(w.previous_order_at, p.order_at)) / 86400)::integer,
            {{ features.days_since_last_order_if_none | literal }}::integer
        ) AS {{ days_since_column | ident }}
        {{- define.as_of_inner(defined) }}
    FROM unnest(features_as_of.customer_ids, features_as_of.as_ofs)  -- noqa: RF01
        WITH ORDINALITY AS e (customer_id, as_of, entity_number)
    -- the windows: the entity's orders from as_of - the widest window to as_of, counted per
    -- window. LATERAL subqueries read the entity's row, which a CTE cannot.
    LEFT JOIN LATERAL (  -- noqa: ST05
        SELECT
            {{ counted.window_aggregates(feature_windows, features) | trim }}
        FROM stg.orders AS o
        WHERE
            o.customer_id = e.customer_id
            AND o.order_at <= e.as_of
            AND o.order_at >= e.as_of - {{ ((features.windows_days | max) * 24 ~ ' hours') | literal }}::interval
            -- the orders the features count (sql/macros/orders.sql)
            AND {{ counted.counts('o', features) }}
    ) AS w ON TRUE
    -- the latest order strictly before as_of, however long ago: looked up only when there
    -- is none in the widest window (PostgreSQL tests w's value before scanning)
    LEFT JOIN LATERAL (  -- noqa: ST05
        SELECT o.order_at
        FROM stg.orders AS o
        WHERE
            w.previous_order_at IS NULL
            AND o.customer_id = e.customer_id
            AND o.order_at < e.as_of
            -- the orders the features count (sql/macros/orders.sql)
            AND {{ counted.counts('o', features) }}
        ORDER BY o.order_at DESC
        LIMIT 1
    ) AS p ON TRUE
    {%- for entity in defined.entities %}
    -- the entity value of {{ entity.entity }}: the latest counted order's (sql/macros/defined_as_of.sql)
    LEFT JOIN LATERAL {{ define.as_of_entity_value(entity.entity, features) }} ON TRUE
    {%- endfor %}
    {%- for g in defined.as_of_groups %}
    -- features.define (sql/macros/defined_as_of.sql): {{ g.source }} of the {{ g.entity or 'customer' }}
    LEFT JOIN LATERAL (  -- noqa: ST05
        SELECT
            {{- define.as_of_aggregates(g, features) }}
        FROM {{ define.as_of_rows(g) }}
        WHERE
            {{ define.as_of_where(g) }}
        {%- if g.entity %}
        -- no value, no row: the entity's columns are NULL
        HAVING {{ ('v_' ~ g.entity) | ident }}.entity_value IS NOT NULL
        {%- endif %}
    ) AS {{ g.alias }} ON TRUE
    {%- endfor %}
    {%- if defined.any %}
    ) AS r
    {%- endif %};
END;
{%- endif %}

COMMENT ON FUNCTION feats.features_as_of(text[], timestamptz[]) IS
'Point-in-time customer features at arbitrary instants: one row per (customer_ids[i], as_ofs[i]), '
'computed from stg.orders at or before as_of. See sql/50_features/052_features_as_of.sql.';
