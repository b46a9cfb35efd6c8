{#-
  Order-level rules: the rules of macros/rules.sql over the models' typed orders `o`
  (stg.model_orders), for 37_model/038_validate_orders.sql. counted_only restricts a rule
  to the orders the features count (features.exclude_statuses).
-#}
{%- import 'macros/rules.sql' as rules -%}

{%- macro field(check) -%}
o.{{ check.column | ident }}
{%- endmacro -%}

{#- An order check's domain: the counted orders (counted_only), its where, and for mostly
    the non-null values (not for non_null: its mostly is a share of all its orders). An
    order's column is compared as text. (Macros build the parts:
    sqlfluff's templater cannot trace a filter inside a set.) -#}
{%- macro counted(check) -%}
NOT coalesce(o.status = ANY({{ check.params.exclude_statuses | literal }}::text[]), FALSE)
{%- endmacro -%}

{%- macro condition_field(condition) -%}
o.{{ condition.column | ident }}::text
{%- endmacro -%}

{%- macro in_domain(check) -%}
{%- set parts = [] -%}
{%- if check.params.get('counted_only') and check.params.exclude_statuses -%}
{%- set _ = parts.append(counted(check)) -%}
{%- endif -%}
{%- for condition in check.params.get('where', []) -%}
{%- set _ = parts.append(rules.condition_holds(condition, condition_field(condition))) -%}
{%- endfor -%}
{%- if check.get('mostly_of_values') -%}
{%- set _ = parts.append(field(check) ~ ' IS NOT NULL') -%}
{%- endif -%}
({{ parts | join(' AND ') }})
{%- endmacro -%}

{%- macro offends(check) -%}
{%- if check.get('has_domain') -%}
{{ in_domain(check) }} AND
{% elif check.params.get('counted_only') and check.params.exclude_statuses -%}
{{ counted(check) }} AND
{% endif -%}
{%- if check.rule == 'non_null' -%}
{{ field(check) }} IS NULL
{%- elif check.rule == 'unique' -%}
{{ field(check) }} IN (
            SELECT k.{{ check.column | ident }}
            FROM stg.model_orders AS k
            WHERE k.{{ check.column | ident }} IS NOT NULL
            GROUP BY k.{{ check.column | ident }}
            HAVING count(*) > 1
        )
{%- elif check.rule == 'ranges' -%}
{{ rules.range_offends(check, field(check) ~ ('' if check.params.get('kind') == 'timestamp' else '::numeric')) }}
{%- elif check.rule == 'allowed_values' -%}
{{ field(check) }}::text != ALL({{ check.params['values'] | literal }}::text[])
{%- elif check.rule == 'max_decimal_places' -%}
scale(trim_scale({{ field(check) }}::numeric)) > {{ check.params.places | literal }}
{%- elif check.rule == 'matches' -%}
{{ field(check) }}::text !~ {{ check.params.pattern | literal }}
{%- endif -%}
{%- endmacro -%}
