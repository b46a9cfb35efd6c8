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

{#- The frame of a window pass: hours long, t in it or not; or the whole history before t
    (a whole-history column adds t's own row to it: window_value). -#}
{%- macro frame(f) -%}
{%- if f.hours is none -%}
ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
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

{#- Window pass, step 2: each column from the partials over its frame (count_distinct: from
    the island flags of distinct_flags, over two frames). -#}
{%- macro window_value(c) -%}
{%- set d = c.d %}
{%- set part = (d.name ~ '__') %}
{%- if d.agg == 'count' -%}
(coalesce(sum({{ (part ~ 'n') | ident }}) OVER {{ c.frame | ident }}, 0)
            {%- if c.plus_current %} + {{ (part ~ 'n') | ident }}{% endif %})::bigint
{%- elif d.agg == 'sum' -%}
coalesce(sum({{ (part ~ 'sum') | ident }}) OVER {{ c.frame | ident }}, 0)
            {%- if c.plus_current %} + coalesce({{ (part ~ 'sum') | ident }}, 0){% endif %}
{%- elif d.agg == 'avg' and c.plus_current -%}
(coalesce(sum({{ (part ~ 'sum') | ident }}) OVER {{ c.frame | ident }}, 0) + coalesce({{ (part ~ 'sum') | ident }}, 0))
            / nullif(coalesce(sum({{ (part ~ 'n') | ident }}) OVER {{ c.frame | ident }}, 0) + {{ (part ~ 'n') | ident }}, 0)
{%- elif d.agg == 'avg' -%}
sum({{ (part ~ 'sum') | ident }}) OVER {{ c.frame | ident }} / nullif(sum({{ (part ~ 'n') | ident }}) OVER {{ c.frame | ident }}, 0)
{%- elif d.agg in ('min', 'max') -%}
{%- if c.plus_current %}{{ 'least' if d.agg == 'min' else 'greatest' }}({% endif -%}
{{ d.agg }}({{ (part ~ d.agg) | ident }}) OVER {{ c.frame | ident }}
{%- if c.plus_current %}, {{ (part ~ d.agg) | ident }}){% endif %}
{%- elif d.agg in ('first', 'last') -%}
{%- set pair -%}
CASE WHEN {{ (part ~ d.agg) | ident }} IS NOT NULL
                THEN ARRAY[extract(EPOCH FROM i.feature_time), {{ (part ~ d.agg) | ident }}] END
{%- endset -%}
-- the value at the {{ 'earliest' if d.agg == 'first' else 'latest' }} instant that has one: (epoch, value) pairs compare in that order
(
            {% if c.plus_current %}{{ 'least' if d.agg == 'first' else 'greatest' }}({% endif -%}
            {{ 'min' if d.agg == 'first' else 'max' }}({{ pair }}) OVER {{ c.frame | ident }}
            {%- if c.plus_current %}, {{ pair }}){% endif %}
        )[2]
{%- elif d.agg == 'count_distinct' -%}
-- the islands started by t, less those whose last occurrence is before t - W
(coalesce(sum(f.{{ (c.name ~ '__starts') | ident }}) OVER {{ c.frame | ident }}, 0)
        {%- if c.plus_current %} + coalesce(f.{{ (c.name ~ '__starts') | ident }}, 0){% endif %}
        {%- if c.ends_frame %}
            - (coalesce(sum(f.{{ (c.name ~ '__lasts') | ident }}) OVER {{ c.frame | ident }}, 0)
                + coalesce(f.{{ (c.name ~ '__lasts') | ident }}, 0)
                - coalesce(sum(f.{{ (c.name ~ '__lasts') | ident }}) OVER {{ c.ends_frame | ident }}, 0))
        {%- endif %})::bigint
{%- elif d.agg == 'time_since_first' -%}
floor(extract(EPOCH FROM i.feature_time - min(
            CASE WHEN {{ (part ~ 'any') | ident }} THEN i.feature_time END
        ) OVER {{ c.frame | ident }}) / 86400)::integer
{%- else -%}
{%- set latest -%}
max(CASE WHEN {{ (d.name ~ '__any') | ident }} THEN i.feature_time END) OVER {{ c.frame | ident }}
{%- endset -%}
{%- set bounded = c.window and c.window.hours is not none %}
-- the latest such instant before t (a running maximum){{ ', if in the window' if bounded }}
floor(extract(EPOCH FROM i.feature_time - {% if bounded -%}
            CASE WHEN {{ latest }} >= i.feature_time - INTERVAL {{ (c.window.hours ~ ' hours') | literal }} THEN {{ latest }} END
        {%- else %}{{ latest }}{% endif %}) / 86400)::integer
{%- endif -%}
{%- endmacro -%}

{#- The CTEs of the window pass over `orders_cte` (customer_id, order_id, order_at, amount,
    status: every order the definitions may read), ending in defined_rows: one row per
    customer and instant of a counted order (spine__), with every defined column but the
    ratios. -#}
{%- macro window_pass(defined, features, orders_cte) -%}
{%- if defined.distinct %}
{{ distinct_flags(defined, features, orders_cte) }},

{% endif -%}
defined_instants AS (
    SELECT
        o.customer_id,
        o.order_at AS feature_time,
        -- the built-ins' partials: the counted orders and their amounts
        count(*) FILTER (WHERE {{ counted.counts('o', features) }}) AS builtin__n,
        sum(o.amount) FILTER (WHERE {{ counted.counts('o', features) }}) AS builtin__sum,
        {{- instant_partials(defined, features) }}
        coalesce(bool_or({{ counted.counts('o', features) }}), FALSE) AS spine__
    FROM {{ orders_cte }} AS o
    GROUP BY o.customer_id, o.order_at
),

defined_windowed AS (
    SELECT
        i.customer_id,
        i.feature_time,
        -- the built-ins, as 50_features/050 defines them without features.define
        {%- for window in feature_windows %}
        coalesce(sum(i.builtin__n) OVER {{ defined.builtin_frames[window.days] | ident }}, 0)::bigint
            AS {{ window.orders | ident }},
        coalesce(sum(i.builtin__sum) OVER {{ defined.builtin_frames[window.days] | ident }}, 0)
            AS {{ window.revenue | ident }},
        {%- endfor %}
        coalesce(
            floor(extract(EPOCH FROM i.feature_time - max(CASE WHEN i.spine__ THEN i.feature_time END)
                OVER "lifetime_exclusive") / 86400)::integer,
            {{ features.days_since_last_order_if_none | literal }}::integer
        ) AS {{ days_since_column | ident }},
        {%- for c in defined.columns if not c.d.ratio %}
        {{ window_value(c) }} AS {{ c.name | ident }},
        {%- endfor %}
        i.spine__
    FROM defined_instants AS i
    {%- if defined.distinct %}
    LEFT JOIN distinct_flags AS f ON i.customer_id = f.customer_id AND i.feature_time = f.feature_time
    {%- endif %}
    WINDOW
    {%- for name, f in defined.frames | dictsort %}
    {{ name | ident }} AS (PARTITION BY i.customer_id ORDER BY i.feature_time {{ frame(f) }}){{ ',' if not loop.last }}
    {%- endfor %}
)
{%- endmacro -%}

{#- Exact distinct counts over sliding windows (PostgreSQL has no count(DISTINCT) OVER). Per
    customer and item, the windows of the item's occurrences merge into islands: [a, b + W]
    from the island's first occurrence a to its last b (an occurrence within W of the
    previous one continues its island). At t the item is in the window iff an island has
    a <= t <= b + W (exclusive: a < t <= b + W), so the distinct count is the islands
    started by t less those whose last occurrence is before t - W: two running sums over the
    instants, of the flags counted here per customer and instant. Lifetime: an island per
    item, from its first occurrence, never ending. -#}
{%- macro distinct_flags(defined, features, orders_cte) -%}
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
distinct_flags AS (
    SELECT
        customer_id,
        order_at AS feature_time,
        {%- for x in defined.distinct %}
        count(*) FILTER (WHERE definition = {{ x.d.name | literal }} AND (previous_at IS NULL
            {%- if x.window.hours is not none %}
            OR order_at > previous_at + INTERVAL {{ (x.window.hours ~ ' hours') | literal }}
            {%- endif %})) AS {{ (x.name ~ '__starts') | ident }},
        count(*) FILTER (WHERE definition = {{ x.d.name | literal }}
            {%- if x.window.hours is not none %} AND (next_at IS NULL
            OR next_at > order_at + INTERVAL {{ (x.window.hours ~ ' hours') | literal }})
            {%- else %} AND FALSE{% endif %}) AS {{ (x.name ~ '__lasts') | ident }}{{ ',' if not loop.last }}
        {%- endfor %}
    FROM (
        {%- for d in defined.distinct_definitions %}
        SELECT {{ d.name | literal }} AS definition, customer_id, order_at, previous_at, next_at
        FROM {{ (d.name ~ '__steps') | ident }}
        {{- '\n        UNION ALL' if not loop.last }}
        {%- endfor %}
    ) AS steps
    GROUP BY customer_id, order_at
)
{%- endmacro -%}

{#- The defined columns of a row of defined_windowed `w`, ratios
    left out (they divide finished columns: ratio_value). -#}
{%- macro row_values(defined) -%}
{%- for c in defined.columns if not c.d.ratio %}
    w.{{ c.name | ident }}{{ ',' if not loop.last }}
{%- endfor %}
{%- endmacro -%}

{#- A ratio column from the finished columns (NULL where the denominator is 0), by their
    names alone (they are unique over the row). -#}
{%- macro ratio_value(d) -%}
{{ d.ratio[0] | ident }}::numeric / nullif({{ d.ratio[1] | ident }}, 0)
{%- endmacro -%}
