{#-
  features.define in the point-in-time retrieval (50_features/052): each defined column as
  a plain aggregate as of an instant, with a FILTER per window: the second formulation of
  the definitions (sql/macros/defined.sql has the window pass and the semantics; the tests
  hold the two to each other and to a brute force). One aggregate per group of the plan
  (as_of_groups: the columns of one entity and source), over its rows `o`: the customer's
  orders or their lines, or those of every customer with the entity value the customer's
  latest counted order (at or before the instant) carries.
-#}
-- sqlfluff:exclude_rules:layout.indent
{%- import 'macros/defined.sql' as define with context -%}
{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/sources.sql' as sources -%}

{#- A group's columns (all but ratios) as aggregates of its rows `o` as of e.as_of. -#}
{%- macro as_of_aggregates(g, features) -%}
{%- for c in g.columns %}
{%- set d = c.d %}
{%- set value = 'o.' ~ (d.column | ident) if d.column else none %}
{%- set end = 'exclusive' if d.agg in ('time_since_first', 'time_since_last') else features.window_end %}
{%- set sel -%}
{{ define.selects(d, 'o', features) }}
{%- if c.window and c.window.hours is not none %}
                AND o.order_at >= e.as_of - INTERVAL {{ (c.window.hours ~ ' hours') | literal }}
{%- endif %}
{%- if end == 'exclusive' %} AND o.order_at < e.as_of{% endif %}
{%- endset %}
{%- if d.agg == 'count' %}
            count(*) FILTER (WHERE {{ sel }}{{ ' AND ' ~ value ~ ' IS NOT NULL' if value }})
{%- elif d.agg == 'sum' %}
            coalesce(sum({{ value }}) FILTER (WHERE {{ sel }}), 0)
{%- elif d.agg == 'avg' %}
            sum({{ value }}) FILTER (WHERE {{ sel }}) / nullif(count({{ value }}) FILTER (WHERE {{ sel }}), 0)
{%- elif d.agg in ('min', 'max') %}
            {{ d.agg }}({{ value }}) FILTER (WHERE {{ sel }})
{%- elif d.agg == 'count_distinct' %}
            count(DISTINCT {{ value }}) FILTER (WHERE {{ sel }})
{%- elif d.agg in ('first', 'last') %}
            {%- set desc = ' DESC' if d.agg == 'last' else '' %}
            (array_agg({{ value }} ORDER BY o.order_at{{ desc }}, o.order_id{{ desc }}{{ (', o.line_number' ~ desc) if g.source == 'lines' }})
                FILTER (WHERE {{ sel }} AND {{ value }} IS NOT NULL))[1]
{%- else %}
            floor(extract(EPOCH FROM e.as_of - {{ 'min' if d.agg == 'time_since_first' else 'max' }}(o.order_at)
                FILTER (WHERE {{ sel }})) / 86400)::integer
{%- endif %} AS {{ c.name | ident }}{{ ',' if not loop.last }}
{%- endfor %}
{%- endmacro -%}

{#- A group's rows as of e.as_of, as a relation `o` with the columns its definitions may
    read: orders, or lines with their order's columns. `v` is the entity value's relation. -#}
{%- macro as_of_rows(g) -%}
(
            SELECT
                a.customer_key,
                a.customer_id,
                a.order_id,
                a.order_at,
                a.status{{ sources.attribute_list(staging, 'a') }},
                {%- if g.source == 'lines' %}
                l.line_number,
                l.item,
                l.quantity,
                l.unit_price,
                l.amount
            FROM stg.orders AS a
            INNER JOIN stg.order_lines AS l ON a.customer_key = l.customer_key AND a.order_id = l.order_id
                {%- else %}
                a.amount
            FROM stg.orders AS a
                {%- endif %}
            {%- if g.entity %}
            WHERE a.customer_id IS NOT NULL
            {%- endif %}
        ) AS o
{%- endmacro -%}

{#- Which rows of as_of_rows are the group's for entity e (up to e.as_of, as far back as the
    group's lookback). -#}
{%- macro as_of_where(g) -%}
{%- if g.entity %}o.{{ g.entity | ident }} = {{ ('v_' ~ g.entity) | ident }}.entity_value
{%- else %}o.customer_key = e.customer_id AND o.customer_id = e.customer_id{% endif %}
                AND o.order_at <= e.as_of
{%- if g.lookback_hours is not none %}
                AND o.order_at >= e.as_of - INTERVAL {{ (g.lookback_hours ~ ' hours') | literal }}
{%- endif %}
{%- endmacro -%}

{#- The value of an entity for e: its latest counted order's at or before e.as_of (of
    several at one instant, the last by order id), as a relation "v_<entity>". -#}
{%- macro as_of_entity_value(entity, features) -%}
(
        SELECT o.{{ entity | ident }} AS entity_value
        FROM stg.orders AS o
        WHERE
            o.customer_id = e.customer_id AND o.order_at <= e.as_of
            AND {{ counted.counts('o', features) }}
        ORDER BY o.order_at DESC, o.order_id DESC
        LIMIT 1
    ) AS {{ ('v_' ~ entity) | ident }}
{%- endmacro -%}

{#- Retrieval: the defined columns of the inner row, from their group's aggregate (a
    customer without orders has none there, so the counts and sums are 0; a customer
    without an entity value has no entity's, and they are NULL), ratios left for as_of_outer. -#}
{%- macro as_of_inner(defined) -%}
{%- for g in defined.as_of_groups %}
{%- for c in g.columns %},
        {% if c.d.agg in ('count', 'count_distinct', 'sum') and not g.entity %}coalesce({{ g.alias }}.{{ c.name | ident }}, 0)
        {%- else %}{{ g.alias }}.{{ c.name | ident }}{% endif %} AS {{ c.name | ident }}
{%- endfor %}
{%- endfor %}
{%- endmacro -%}

{#- Retrieval: every column of the inner row r in the function's order, the ratios divided. -#}
{%- macro as_of_outer(defined, feature_columns) -%}
{%- set ratios = {} %}
{%- for c in defined.columns if c.d.ratio %}{% set _ = ratios.update({c.name: c.d}) %}{% endfor -%}
r.entity_number,
        r.customer_id,
        r.as_of
{%- for name, _ in feature_columns %},
        {% if name in ratios %}{{ define.ratio_value(ratios[name]) }}{% else %}r.{{ name | ident }}{% endif %}
{%- endfor %}
{%- endmacro %}
