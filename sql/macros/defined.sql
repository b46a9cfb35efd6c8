{#-
  The features a user declares (features.define; scripts/config/defined.py parses them and
  plans the columns, docs/features.md gives the semantics). Two formulations of the same
  definitions, each written once:
    - the window pass (50_features/050, sql/macros/window_pass.sql): per customer (or
      entity value) and order instant, the partial aggregates of the instant's orders or
      lines (instant_partials, here), then each column over its frame (window_value, here);
      exact distinct counts from the islands of each item's occurrences;
    - the point-in-time retrieval (50_features/052, sql/macros/defined_as_of.sql): plain
      aggregates of one customer's (or entity value's) rows as of an instant, with FILTERs
      for each window.
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

{#- Window pass, step 1: the partial aggregates of each instant's orders or lines (alias o),
    those of `source`, as select-list items: each partial of the plan once (p.partials; the
    built-ins' are the pass's own). -#}
{%- macro instant_partials(p, features, source) -%}
{%- for x in p.partials if x.source == source %}
{%- set d = x.d %}
{%- set value = 'o.' ~ (d.column | ident) if d.column else none %}
{%- set sel = selects(d, 'o', features) %}
{%- if x.part == 'n' %}
        count(*) FILTER (WHERE {{ sel }}{{ ' AND ' ~ value ~ ' IS NOT NULL' if value }}) AS {{ x.name | ident }},
{%- elif x.part == 'sum' %}
        sum({{ value }}) FILTER (WHERE {{ sel }}) AS {{ x.name | ident }},
{%- elif x.part in ('min', 'max') %}
        {{ x.part }}({{ value }}) FILTER (WHERE {{ sel }}) AS {{ x.name | ident }},
{%- elif x.part in ('first', 'last') %}
        -- at one instant, the {{ x.part }} order by order id (and line by number)
        {{ at_instant(x.part, value, 'o.order_id' ~ (', o.line_number' if source == 'lines' else ''), sel ~ ' AND ' ~ value ~ ' IS NOT NULL') }} AS {{ x.name | ident }},
{%- else %}
        coalesce(bool_or({{ sel }}), FALSE) AS {{ x.name | ident }},
{%- endif %}
{%- endfor %}
{%- endmacro -%}

{#- The first or last `value` of an instant's rows in `order` among those `where` selects:
    every such pick of a grouping orders its array by the same key (first and last alike,
    an entity's too), so PostgreSQL sorts the rows once for all of them instead of once per
    aggregate and group. -#}
{%- macro at_instant(which, value, order, where) -%}
{%- set picked -%}
array_agg({{ value }} ORDER BY {{ order }}) FILTER (WHERE {{ where }})
{%- endset -%}
({{ picked }})[{{ '1' if which == 'first' else 'cardinality(' ~ picked ~ ')' }}]
{%- endmacro -%}

{#- Window pass, step 2: each column from the partials over its frame (count_distinct: from
    the island flags of window_pass.sql island_flags, over two frames). -#}
{%- macro window_value(c, p) -%}
{%- set d = c.d %}
{%- set parts = p.parts_of[d.name] if d.name in p.parts_of else {} %}
{%- if d.agg == 'count' -%}
(coalesce(sum({{ parts['n'] | ident }}) OVER {{ c.frame | ident }}, 0)
            {%- if c.plus_current %} + coalesce({{ parts['n'] | ident }}, 0){% endif %})::bigint
{%- elif d.agg == 'sum' -%}
coalesce(sum({{ parts['sum'] | ident }}) OVER {{ c.frame | ident }}, 0)
            {%- if c.plus_current %} + coalesce({{ parts['sum'] | ident }}, 0){% endif %}
{%- elif d.agg == 'avg' and c.plus_current -%}
(coalesce(sum({{ parts['sum'] | ident }}) OVER {{ c.frame | ident }}, 0) + coalesce({{ parts['sum'] | ident }}, 0))
            / nullif(coalesce(sum({{ parts['n'] | ident }}) OVER {{ c.frame | ident }}, 0) + coalesce({{ parts['n'] | ident }}, 0), 0)
{%- elif d.agg == 'avg' -%}
sum({{ parts['sum'] | ident }}) OVER {{ c.frame | ident }} / nullif(sum({{ parts['n'] | ident }}) OVER {{ c.frame | ident }}, 0)
{%- elif d.agg in ('min', 'max') -%}
{%- if c.plus_current %}{{ 'least' if d.agg == 'min' else 'greatest' }}({% endif -%}
{{ d.agg }}({{ parts[d.agg] | ident }}) OVER {{ c.frame | ident }}
{%- if c.plus_current %}, {{ parts[d.agg] | ident }}){% endif %}
{%- elif d.agg in ('first', 'last') -%}
{%- set pair -%}
CASE WHEN {{ parts[d.agg] | ident }} IS NOT NULL
                THEN ARRAY[extract(EPOCH FROM i.feature_time), {{ parts[d.agg] | ident }}] END
{%- endset -%}
{%- set found -%}
(
            {% if c.plus_current %}{{ 'least' if d.agg == 'first' else 'greatest' }}({% endif -%}
            {{ 'min' if d.agg == 'first' else 'max' }}({{ pair }}) OVER {{ c.frame | ident }}
            {%- if c.plus_current %}, {{ pair }}){% endif %}
        )
{%- endset -%}
-- the value at the {{ 'earliest' if d.agg == 'first' else 'latest' }} instant that has one: (epoch, value) pairs compare in that order
{%- if d.agg == 'last' and c.window and c.window.hours is not none %}
{#- the latest up to t from the running frame, if its instant is in the window #}
CASE WHEN {{ found }}[1] >= extract(EPOCH FROM i.feature_time) - {{ (c.window.hours * 3600) | literal }} THEN {{ found }}[2] END
{%- else %}
{{ found }}[2]
{%- endif %}
{%- elif d.agg == 'count_distinct' -%}
-- the islands started by t, less those whose last occurrence is before t - W
(coalesce(sum({{ (c.name ~ '__starts') | ident }}) OVER {{ c.frame | ident }}, 0)
        {%- if c.plus_current %} + coalesce({{ (c.name ~ '__starts') | ident }}, 0){% endif %}
        {%- if c.ends_frame %}
            - (coalesce(sum({{ (c.name ~ '__lasts') | ident }}) OVER {{ c.frame | ident }}, 0)
                + coalesce({{ (c.name ~ '__lasts') | ident }}, 0)
                - coalesce(sum({{ (c.name ~ '__lasts') | ident }}) OVER {{ c.ends_frame | ident }}, 0))
        {%- endif %})::bigint
{%- elif d.agg == 'time_since_first' -%}
floor(extract(EPOCH FROM i.feature_time - min(
            CASE WHEN {{ parts['any'] | ident }} THEN i.feature_time END
        ) OVER {{ c.frame | ident }}) / 86400)::integer
{%- else -%}
{%- set latest -%}
max(CASE WHEN {{ parts['any'] | ident }} THEN i.feature_time END) OVER {{ c.frame | ident }}
{%- endset -%}
{%- set bounded = c.window and c.window.hours is not none %}
-- the latest such instant before t (a running maximum){{ ', if in the window' if bounded }}
floor(extract(EPOCH FROM i.feature_time - {% if bounded -%}
            CASE WHEN {{ latest }} >= i.feature_time - INTERVAL {{ (c.window.hours ~ ' hours') | literal }} THEN {{ latest }} END
        {%- else %}{{ latest }}{% endif %}) / 86400)::integer
{%- endif -%}
{%- endmacro -%}

{#- The defined columns of a row of the customer's defined_windowed `w` (an entity's from its
    row of work.entity_feature_rows, joined as "e_<entity>"), ratios left out (they divide
    finished columns: ratio_value). -#}
{%- macro row_values(defined) -%}
{%- for c in defined.columns if not c.d.ratio %}
    {% if c.d.entity %}{{ ('e_' ~ c.d.entity) | ident }}{% else %}w{% endif %}.{{ c.name | ident }}{{ ',' if not loop.last }}
{%- endfor %}
{%- endmacro -%}

{#- A ratio column from the finished columns (NULL where the denominator is 0), by their
    names alone (they are unique over the row). -#}
{%- macro ratio_value(d) -%}
{{ d.ratio[0] | ident }}::numeric / nullif({{ d.ratio[1] | ident }}, 0)
{%- endmacro -%}
