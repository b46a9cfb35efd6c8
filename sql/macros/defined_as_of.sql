{#-
  features.define in the point-in-time retrieval (50_features/052): each defined column as
  a plain aggregate of one entity's orders as of an instant, with a FILTER per window: the
  second formulation of the definitions (sql/macros/defined.sql has the window pass and
  the semantics; the tests hold the two to each other and to a brute force).
-#}
{%- import 'macros/defined.sql' as define with context -%}

{#- Point-in-time retrieval: each defined column but the ratios as an aggregate of one
    entity's orders `o` (every order of the customer at or before e.as_of, as far back as
    the plan's lookback) as of e.as_of. -#}
{%- macro as_of_aggregates(defined, features) -%}
{%- for c in defined.columns if not c.d.ratio %}
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
            (array_agg({{ value }} ORDER BY o.order_at{{ ' DESC' if d.agg == 'last' }}, o.order_id{{ ' DESC' if d.agg == 'last' }})
                FILTER (WHERE {{ sel }} AND {{ value }} IS NOT NULL))[1]
{%- else %}
            floor(extract(EPOCH FROM e.as_of - {{ 'min' if d.agg == 'time_since_first' else 'max' }}(o.order_at)
                FILTER (WHERE {{ sel }})) / 86400)::integer
{%- endif %} AS {{ c.name | ident }}{{ ',' if not loop.last }}
{%- endfor %}
{%- endmacro -%}

{#- How far back before e.as_of the retrieval reads (nothing: the whole history). -#}
{%- macro as_of_lookback(defined) -%}
{%- if defined.lookback_hours is not none %}
            AND o.order_at >= e.as_of - INTERVAL {{ (defined.lookback_hours ~ ' hours') | literal }}
{%- endif %}
{%- endmacro -%}

{#- Retrieval: the defined columns of the inner row (from d; an entity without orders has
    none there, so the counts and sums are 0 here), ratios left for as_of_outer. -#}
{%- macro as_of_inner(defined) -%}
{%- for c in defined.columns if not c.d.ratio %},
        {% if c.d.agg in ('count', 'count_distinct', 'sum') %}coalesce(d.{{ c.name | ident }}, 0){% else %}d.{{ c.name | ident }}{% endif %} AS {{ c.name | ident }}
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
