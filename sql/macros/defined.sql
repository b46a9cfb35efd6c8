{#-
  The features a user declares (features.define; scripts/config/defined.py parses them and
  plans the columns, docs/features.md gives the semantics). Two formulations of the same
  definitions, written here once each:
    - the window pass (50_features/050): per customer and order instant, partial
      aggregates of the instant's orders, then window aggregates over the instants, one
      frame per (span, end); exact distinct counts by a running total of +1 where an item
      enters the window and -1 just after it leaves;
    - the point-in-time retrieval (50_features/052, sql/macros/defined_as_of.sql): plain
      aggregates of one entity's orders as of an instant, with FILTERs for each window.
  A window is [t - W, t] (features.window_end: inclusive) or [t - W, t) (exclusive), W in
  exact hours (the session runs in UTC); lifetime is everything up to t (or before t);
  orders at one instant are peers; time_since_* look strictly before t. `defined` is the
  plan: scripts/config/defined.py plan(). The macros emit fragments that the stage files
  place at their own indentation, so layout is linted there (050, 052), not here.
-#}
-- sqlfluff:exclude_rules:layout.indent,layout.long_lines
{%- import 'macros/orders.sql' as counted -%}

{#- The orders definition `d` reads, on the order alias `o`: counted ones (as the built-ins
    count them) unless orders: all, and its where. Operators come from a fixed list, types
    from the staged columns' own, values through literal. -#}
{%- macro selects(d, o, features) -%}
{%- if d.counted_only %}{{ counted.counts(o, features) }}{% else %}{{ o }}.customer_id IS NOT NULL{% endif %}
{%- for c in d.where %}
            AND
            {%- if c.op == 'in' %} {{ o }}.{{ c.column | ident }} = ANY({{ c.constants | list | literal }}::{{ c.pg_type }}[])
            {%- else %} {{ o }}.{{ c.column | ident }} {{ c.op }} {{ c.constants[0] | literal }}::{{ c.pg_type }}
            {%- endif %}
{%- endfor %}
{%- endmacro -%}

{#- The frame of a window pass: hours long or the whole history, t in it or not. -#}
{%- macro frame(f) -%}
{%- if f.hours is none -%}
ROWS BETWEEN UNBOUNDED PRECEDING AND {{ 'CURRENT ROW' if f.end == 'inclusive' else '1 PRECEDING' }}
{%- else -%}
RANGE BETWEEN INTERVAL {{ (f.hours ~ ' hours') | literal }} PRECEDING AND
        {{ 'CURRENT ROW' if f.end == 'inclusive' else "INTERVAL '1 microsecond' PRECEDING" }}
{%- endif -%}
{%- endmacro -%}

{#- Window pass, step 1: the partial aggregates of each instant's orders (alias o), as
    select-list items named <definition>__<part>. -#}
{%- macro instant_partials(defined, features) -%}
{%- for d in defined.columns | map(attribute='d') | unique(attribute='name') if not d.ratio and d.agg != 'count_distinct' %}
{%- set value = 'o.' ~ (d.column | ident) if d.column else none %}
{%- set sel = selects(d, 'o', features) %}
{%- if d.agg == 'count' %}
        count(*) FILTER (WHERE {{ sel }}{{ ' AND ' ~ value ~ ' IS NOT NULL' if value }}) AS {{ (d.name ~ '__n') | ident }},
{%- elif d.agg in ('sum', 'avg') %}
        sum({{ value }}) FILTER (WHERE {{ sel }}) AS {{ (d.name ~ '__sum') | ident }},
        count({{ value }}) FILTER (WHERE {{ sel }}) AS {{ (d.name ~ '__n') | ident }},
{%- elif d.agg in ('min', 'max') %}
        {{ d.agg }}({{ value }}) FILTER (WHERE {{ sel }}) AS {{ (d.name ~ '__' ~ d.agg) | ident }},
{%- elif d.agg in ('first', 'last') %}
        -- at one instant, the {{ d.agg }} order by order id
        (array_agg({{ value }} ORDER BY o.order_id{{ ' DESC' if d.agg == 'last' }})
            FILTER (WHERE {{ sel }} AND {{ value }} IS NOT NULL))[1] AS {{ (d.name ~ '__' ~ d.agg) | ident }},
{%- else %}
        coalesce(bool_or({{ sel }}), FALSE) AS {{ (d.name ~ '__any') | ident }},
{%- endif %}
{%- endfor %}
{%- endmacro -%}

{#- Window pass, step 2: each column from the partials over its frame (count_distinct
    columns come from distinct_values). -#}
{%- macro window_value(c) -%}
{%- set d = c.d %}
{%- set part = (d.name ~ '__') %}
{%- if d.agg == 'count' -%}
coalesce(sum({{ (part ~ 'n') | ident }}) OVER {{ c.frame | ident }}, 0)::bigint
{%- elif d.agg == 'sum' -%}
coalesce(sum({{ (part ~ 'sum') | ident }}) OVER {{ c.frame | ident }}, 0)
{%- elif d.agg == 'avg' -%}
sum({{ (part ~ 'sum') | ident }}) OVER {{ c.frame | ident }} / nullif(sum({{ (part ~ 'n') | ident }}) OVER {{ c.frame | ident }}, 0)
{%- elif d.agg in ('min', 'max') -%}
{{ d.agg }}({{ (part ~ d.agg) | ident }}) OVER {{ c.frame | ident }}
{%- elif d.agg in ('first', 'last') -%}
-- the value at the {{ 'earliest' if d.agg == 'first' else 'latest' }} instant that has one: (epoch, value) pairs compare in that order
(
            {{ 'min' if d.agg == 'first' else 'max' }}(CASE WHEN {{ (part ~ d.agg) | ident }} IS NOT NULL
                THEN ARRAY[extract(EPOCH FROM feature_time), {{ (part ~ d.agg) | ident }}] END) OVER {{ c.frame | ident }}
        )[2]
{%- else -%}
floor(extract(EPOCH FROM feature_time - {{ 'min' if d.agg == 'time_since_first' else 'max' }}(
            CASE WHEN {{ (part ~ 'any') | ident }} THEN feature_time END
        ) OVER {{ c.frame | ident }}) / 86400)::integer
{%- endif -%}
{%- endmacro -%}

{#- The CTEs of the window pass over `orders_cte` (customer_id, order_id, order_at, amount,
    status: every order the definitions may read), ending in defined_rows: one row per
    customer and instant of a counted order (spine__), with every defined column but the
    ratios. -#}
{%- macro window_pass(defined, features, orders_cte) -%}
defined_instants AS (
    SELECT
        o.customer_id,
        o.order_at AS feature_time,
        {{- instant_partials(defined, features) }}
        coalesce(bool_or({{ counted.counts('o', features) }}), FALSE) AS spine__
    FROM {{ orders_cte }} AS o
    GROUP BY o.customer_id, o.order_at
),

defined_windowed AS (
    SELECT
        customer_id,
        feature_time,
        {%- for c in defined.columns if not c.d.ratio and c.d.agg != 'count_distinct' %}
        {{ window_value(c) }} AS {{ c.name | ident }},
        {%- endfor %}
        spine__
    FROM defined_instants
    WINDOW
    {%- for name, f in defined.frames | dictsort %}
    {{ name | ident }} AS (PARTITION BY customer_id ORDER BY feature_time {{ frame(f) }}){{ ',' if not loop.last }}
    {%- endfor %}
){% if defined.distinct %},
{{ distinct_counts(defined, features, orders_cte) }}
{%- endif %}
{%- endmacro -%}

{#- Exact distinct counts over sliding windows (PostgreSQL has no count(DISTINCT) OVER):
    per customer and item, the occurrences' windows [s, s + W] merge into islands; +1 where
    an island starts, -1 just after it ends; the running total at an instant t is the count
    of items with an occurrence in t's window. Lifetime: +1 at an item's first occurrence.
    Inclusive: +1 applies at s itself (sorted before t = s); exclusive, after it. -#}
{%- macro distinct_counts(defined, features, orders_cte) -%}
{%- for d in defined.distinct_definitions %}
{{ (d.name ~ '__steps') | ident }} AS (
    SELECT
        customer_id,
        order_at,
        lag(order_at) OVER item AS previous_at,
        lead(order_at) OVER item AS next_at
    FROM (
        SELECT DISTINCT
            o.customer_id,
            o.order_at,
            o.{{ d.column | ident }} AS item
        FROM {{ orders_cte }} AS o
        WHERE {{ selects(d, 'o', features) }} AND o.{{ d.column | ident }} IS NOT NULL
    ) AS occurrences
    WINDOW item AS (PARTITION BY customer_id, item ORDER BY order_at)
),

{% endfor -%}
distinct_events AS (
    {%- for x in defined.distinct %}
    SELECT {{ x.j }} AS j, customer_id, order_at AS at, {{ 0 if features.window_end == 'inclusive' else 2 }} AS step, 1 AS delta
    FROM {{ (x.d.name ~ '__steps') | ident }}
    WHERE previous_at IS NULL
    {%- if x.window.hours is not none %}
        OR order_at > previous_at + INTERVAL {{ (x.window.hours ~ ' hours') | literal }}
    {%- endif %}
    UNION ALL
    {%- if x.window.hours is not none %}
    SELECT {{ x.j }} AS j, customer_id, order_at + INTERVAL {{ (x.window.hours ~ ' hours') | literal }} AS at, 2 AS step, -1 AS delta
    FROM {{ (x.d.name ~ '__steps') | ident }}
    WHERE next_at IS NULL OR next_at > order_at + INTERVAL {{ (x.window.hours ~ ' hours') | literal }}
    UNION ALL
    {%- endif %}
    SELECT {{ x.j }} AS j, customer_id, feature_time AS at, 1 AS step, 0 AS delta
    FROM defined_instants
    WHERE spine__
    {{- '\n    UNION ALL' if not loop.last }}
    {%- endfor %}
),

distinct_totals AS (
    SELECT
        customer_id,
        at,
        j,
        step,
        sum(delta) OVER (PARTITION BY j, customer_id ORDER BY at, step ROWS UNBOUNDED PRECEDING) AS items
    FROM distinct_events
),

distinct_values AS (
    SELECT
        customer_id,
        at AS feature_time,
        {%- for x in defined.distinct %}
        max(items) FILTER (WHERE j = {{ x.j }})::bigint AS {{ x.name | ident }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM distinct_totals
    WHERE step = 1
    GROUP BY customer_id, at
)
{%- endmacro -%}

{#- The defined columns of a row of defined_windowed `w` (and distinct_values `v`), ratios
    left out (they divide finished columns: ratio_value). -#}
{%- macro row_values(defined) -%}
{%- for c in defined.columns if not c.d.ratio %}
    {%- if c.d.agg == 'count_distinct' %}
    coalesce(v.{{ c.name | ident }}, 0) AS {{ c.name | ident }}{{ ',' if not loop.last }}
    {%- else %}
    w.{{ c.name | ident }}{{ ',' if not loop.last }}
    {%- endif %}
{%- endfor %}
{%- endmacro -%}

{#- A ratio column from the finished columns (NULL where the denominator is 0), by their
    names alone (they are unique over the row). -#}
{%- macro ratio_value(d) -%}
{{ d.ratio[0] | ident }}::numeric / nullif({{ d.ratio[1] | ident }}, 0)
{%- endmacro -%}
