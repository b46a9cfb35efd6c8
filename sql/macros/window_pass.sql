{#-
  The window pass of features.define (sql/macros/defined.sql has what a definition means and
  its value over a frame): per partition (the customer, or an entity's value) and order
  instant, the partial aggregates of the instant's orders and lines, then window aggregates
  over the instants, one frame per (span, end), in one pass; exact distinct counts from the
  island flags of island_flags. Used by 50_features/050 (the customer's pass, with the
  built-ins) and sql/macros/entities.sql (an entity's). The macros emit fragments that the
  stage files place at their own indentation, so layout is linted there.
-#}
-- sqlfluff:exclude_rules:layout.indent,layout.long_lines
{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/sources.sql' as sources -%}
{%- import 'macros/defined.sql' as define with context -%}
{#- The rows a pass reads from `orders_cte` (partition__: what the pass partitions by; the
    order's customer_key, order_id, order_at, amount, status and attributes): the lines of
    those orders, with the order's columns a line definition may read. -#}
{%- macro pass_lines(orders_cte) -%}
SELECT
        o.partition__,
        o.customer_id,
        o.order_id,
        o.order_at,
        o.status{{ sources.attribute_list(staging, 'o') }},
        l.line_number,
        l.item,
        l.quantity,
        l.unit_price,
        l.amount
    FROM {{ orders_cte }} AS o
    INNER JOIN stg.order_lines AS l ON o.customer_key = l.customer_key AND o.order_id = l.order_id
{%- endmacro -%}

{#- The CTEs of the window pass `p` (the customer's, with the built-ins, or an entity's) over
    `orders_cte` (every order the definitions may read: pass_lines) and, when the pass reads
    lines, `lines_cte` (pass_lines), ending in defined_windowed: one row per partition value
    and instant, with the pass's columns, flagged spine__ where a counted order is. -#}
{%- macro window_pass(p, features, orders_cte, lines_cte=none) -%}
{%- set builtins = p.entity is none %}
{%- set orders_rows = orders_cte %}
{%- set lines_rows = lines_cte %}
{%- if p.distinct_definitions | selectattr('source', 'equalto', 'orders') | list %}
{{ item_steps(p, features, orders_cte, 'orders', 'defined_order_steps') }},

{% set orders_rows = 'defined_order_steps' %}
{%- endif %}
{%- if p.distinct_definitions | selectattr('source', 'equalto', 'lines') | list %}
{{ item_steps(p, features, lines_cte, 'lines', 'defined_line_steps') }},

{% set lines_rows = 'defined_line_steps' %}
{%- endif -%}
defined_instants AS (
    SELECT
        o.partition__,
        o.order_at AS feature_time,
        {%- if builtins %}
        -- the built-ins' partials: the counted orders and their amounts
        count(*) FILTER (WHERE {{ counted.counts('o', features) }}) AS builtin__n,
        sum(o.amount) FILTER (WHERE {{ counted.counts('o', features) }}) AS builtin__sum,
        {%- for entity in defined.entities %}
        -- the {{ entity.entity }} of the row: its counted orders', the last by order id
        {{ define.at_instant('last', 'o.' ~ (entity.entity | ident), 'o.order_id', counted.counts('o', features)) }}
            AS {{ ('entity__' ~ entity.entity) | ident }},
        {%- endfor %}
        {%- endif %}
        {{- define.instant_partials(p, features, 'orders') }}
        {{- island_flags(p, features, 'orders') }}
        coalesce(bool_or({{ counted.counts('o', features) }}), FALSE) AS spine__
    FROM {{ orders_rows }} AS o
    GROUP BY o.partition__, o.order_at
),
{%- if p.lines %}

-- the partials of the lines definitions, per instant of the lines' orders
defined_line_instants AS (
    SELECT
        o.partition__ AS line_partition,
        o.order_at AS line_time,
        {{- define.instant_partials(p, features, 'lines') }}
        {{- island_flags(p, features, 'lines') }}
        count(*) AS lines__
    FROM {{ lines_rows }} AS o
    GROUP BY o.partition__, o.order_at
),
{%- endif %}

defined_windowed AS (
    SELECT
        i.partition__,
        i.feature_time,
        {%- for entity in defined.entities if builtins %}
        i.{{ ('entity__' ~ entity.entity) | ident }},
        {%- endfor %}
        {%- if builtins %}
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
        {%- endif %}
        {%- for c in p.pass_columns %}
        {{ define.window_value(c, p) }} AS {{ c.name | ident }},
        {%- endfor %}
        i.spine__
    FROM defined_instants AS i
    {%- if p.lines %}
    LEFT JOIN defined_line_instants AS li ON i.partition__ = li.line_partition AND i.feature_time = li.line_time
    {%- endif %}
    WINDOW
    {%- for name, f in p.frames | dictsort %}
    {{ name | ident }} AS (PARTITION BY i.partition__ ORDER BY i.feature_time {{ define.frame(f) }}){{ ',' if not loop.last }}
    {%- endfor %}
)
{%- endmacro -%}

{#- Exact distinct counts over sliding windows (PostgreSQL has no count(DISTINCT) OVER). Per
    partition and item, the windows of the item's occurrences merge into islands: [a, b + W]
    from the island's first occurrence a to its last b (an occurrence within W of the
    previous one continues its island). At t the item is in the window iff an island has
    a <= t <= b + W (exclusive: a < t <= b + W), so the distinct count is the islands
    started by t less those whose last occurrence is before t - W: two running sums over the
    instants (window_value), of flags counted per instant (island_flags). Lifetime: an island
    per item, from its first occurrence, never ending.
    item_steps: the rows of `rows_cte` (of `source`) with, per distinct definition, the
    previous and next instant of the same item among the rows it reads (the same item twice
    at one instant: the first copy has the second as next, the second the first as previous,
    so each island is counted once). -#}
{%- macro item_steps(p, features, rows_cte, source, name) -%}
{%- set definitions = p.distinct_definitions | selectattr('source', 'equalto', source) | list %}
{{ name }} AS (
    SELECT
        {%- for d in definitions %}
        lag(o.order_at) OVER {{ (d.name ~ '__items') | ident }} AS {{ (d.name ~ '__previous') | ident }},
        lead(o.order_at) OVER {{ (d.name ~ '__items') | ident }} AS {{ (d.name ~ '__next') | ident }},
        {%- endfor %}
        o.*
    FROM {{ rows_cte }} AS o
    WINDOW
    {%- for d in definitions %}
    {{ (d.name ~ '__items') | ident }} AS (
        PARTITION BY o.partition__, ({{ define.selects(d, 'o', features) }} AND o.{{ d.column | ident }} IS NOT NULL),
        o.{{ d.column | ident }} ORDER BY o.order_at, o.order_id{{ ', o.line_number' if source == 'lines' }}
    ){{ ',' if not loop.last }}
    {%- endfor %}
)
{%- endmacro -%}

{#- The island flags of each distinct count of `source`, as select-list items of an instant's
    grouping: islands that start at it, and islands whose last occurrence it is. -#}
{%- macro island_flags(p, features, source) -%}
{%- for x in p.distinct if x.d.source == source %}
{%- set read -%}
{{ define.selects(x.d, 'o', features) }} AND o.{{ x.d.column | ident }} IS NOT NULL
{%- endset %}
        count(*) FILTER (WHERE {{ read }} AND (o.{{ (x.d.name ~ '__previous') | ident }} IS NULL
            {%- if x.window.hours is not none %}
            OR o.order_at > o.{{ (x.d.name ~ '__previous') | ident }} + INTERVAL {{ (x.window.hours ~ ' hours') | literal }}
            {%- endif %})) AS {{ (x.name ~ '__starts') | ident }},
        {%- if x.window.hours is not none %}
        count(*) FILTER (WHERE {{ read }} AND (o.{{ (x.d.name ~ '__next') | ident }} IS NULL
            OR o.{{ (x.d.name ~ '__next') | ident }} > o.order_at + INTERVAL {{ (x.window.hours ~ ' hours') | literal }}))
            AS {{ (x.name ~ '__lasts') | ident }},
        {%- endif %}
{%- endfor %}
{%- endmacro -%}
