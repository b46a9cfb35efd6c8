{#-
  Features of an entity other than the customer (features.define with entity: <attribute>,
  scripts/config/defined.py): the aggregate over every order of the entity value, attached
  to each customer row through the value its order carries. A change to one order then
  changes the rows of every customer who ordered with the same value at or after it, so
  staging logs those customers as changed too (40_stage/040 for the orders that leave or
  change, 041 for the new ones), and a daily run recomputes them (50_features/050).
-#}
-- sqlfluff:exclude_rules:layout.indent
{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/distribution.sql' as dist with context -%}
{%- import 'macros/window_pass.sql' as pass with context -%}
{%- import 'macros/sources.sql' as sources -%}

{#- Incremental runs: for each entity of features.define, log as changed (stg.order_changes)
    every customer with an order of the same entity value as a changed order of `changed`
    (rows passing `where`, alias o), from the customer's first such order at or after it. -#}
{%- macro changes(changed, where) -%}
{%- for entity in defined.entities %}

-- features.define's entity {{ entity.entity }}: every customer with an order of the same
-- {{ entity.entity }} at or after a changed order's instant reads it
INSERT INTO stg.order_changes (version_number, customer_id, changed_at)
WITH changed_values AS (
    SELECT
        o.{{ entity.entity | ident }} AS entity_value,
        min(o.order_at) AS changed_at
    FROM {{ changed }} AS o
    WHERE NOT {{ versions.full_refresh() }} AND {{ where }} AND o.{{ entity.entity | ident }} IS NOT NULL
    GROUP BY o.{{ entity.entity | ident }}
)

SELECT
    {{ versions.writing_version() }} AS version_number,
    s.customer_id,
    min(s.order_at) AS changed_at
FROM stg.orders AS s
INNER JOIN changed_values AS v ON s.{{ entity.entity | ident }} = v.entity_value AND s.order_at >= v.changed_at
WHERE s.customer_id IS NOT NULL
GROUP BY s.customer_id;
{%- endfor %}
{%- endmacro -%}

{#- The features stage (50_features/050): work.entity_feature_rows, one row per entity,
    value and instant of a counted order (of the rows to recompute: every one on a full
    refresh, else those of the values the scope's rows carry, from the scope's earliest
    instant of each), with the columns of every entity's definitions (NULL in another
    entity's rows): one statement per entity. An entity's window pass is the customer's
    (sql/macros/defined.sql) with the entity value in the place of the customer. Its rows
    are the orders that count (those with a customer), read by value, not by customer: on
    Citus the table stays on the coordinator (Citus gathers the orders of each value from
    the shards), and the customers' pass receives it with its rows. -#}
{%- macro feature_rows() -%}
{%- set types = {} %}
{%- for name, type in feature_columns %}{% set _ = types.update({name: type}) %}{% endfor %}
DROP TABLE IF EXISTS work.entity_feature_rows;

CREATE UNLOGGED TABLE work.entity_feature_rows (
    entity text NOT NULL,
    entity_value text NOT NULL,
    feature_time timestamptz NOT NULL,
    {%- for c in defined.columns if c.d.entity %}
    {{ c.name | ident }} {{ types[c.name] }},
    {%- endfor %}
    PRIMARY KEY (entity, entity_value, feature_time)
);
{%- for p in defined.entities %}

-- the {{ p.entity }} feature rows computed (not the stage's count: the customer rows are)
INSERT INTO work.entity_feature_rows (
    entity, entity_value, feature_time
    {%- for c in p.pass_columns %}, {{ c.name | ident }}{% endfor %}
)
WITH entity_scope AS (
    -- the values the scope's rows carry, from the earliest of their instants
    SELECT
        o.{{ p.entity | ident }} AS entity_value,
        min(o.order_at) AS from_at
    FROM work.feature_scope AS s
    INNER JOIN stg.orders AS o
        ON o.customer_key = s.customer_id AND o.customer_id = s.customer_id AND o.order_at >= s.from_at
    WHERE o.{{ p.entity | ident }} IS NOT NULL
    GROUP BY o.{{ p.entity | ident }}
),

entity_orders AS NOT MATERIALIZED (
    SELECT {{ entity_order(p) }}
    FROM stg.orders AS o
    WHERE {{ versions.full_refresh() }} AND o.{{ p.entity | ident }} IS NOT NULL AND o.customer_id IS NOT NULL
    UNION ALL
    SELECT {{ entity_order(p) }}
    FROM entity_scope AS v
    INNER JOIN stg.orders AS o
        ON
            v.entity_value = o.{{ p.entity | ident }}
            {%- if p.lookback_hours is not none %}
            AND o.order_at >= v.from_at - INTERVAL {{ (p.lookback_hours ~ ' hours') | literal }}
            {%- endif %}
    WHERE NOT {{ versions.full_refresh() }} AND o.customer_id IS NOT NULL
),
{%- if p.lines %}

entity_lines AS (
    {{ pass.pass_lines('entity_orders') }}
),
{%- endif %}

{{ pass.window_pass(p, features, 'entity_orders', 'entity_lines') }}

SELECT
    {{ p.entity | literal }}::text AS entity,
    w.partition__ AS entity_value,
    w.feature_time,
    {%- for c in p.pass_columns %}
    w.{{ c.name | ident }}{{ ',' if not loop.last }}
    {%- endfor %}
FROM defined_windowed AS w
LEFT JOIN entity_scope AS v ON w.partition__ = v.entity_value
WHERE w.spine__ AND ({{ versions.full_refresh_once() }} OR w.feature_time >= v.from_at);
{%- endfor %}

ANALYZE work.entity_feature_rows;
{%- endmacro -%}

{#- An order of an entity's pass: partitioned by the entity value where the customer's pass
    has the customer. -#}
{%- macro entity_order(p) -%}
o.{{ p.entity | ident }} AS partition__, o.customer_id, o.customer_key, o.order_id, o.order_at, o.amount, o.status
    {{- sources.attribute_list(staging, 'o') }}
{%- endmacro -%}
