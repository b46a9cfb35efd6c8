{#-
  Validation rules, each written once. A rule macro returns a boolean expression that is
  true for an offending record `e` of the batch; NULL counts as not offending. The same
  expression serves the aggregate pass (count(*) FILTER (WHERE ...)) in
  030_validate_expectations.sql and the failure history in 035_validate_failures.sql.
-#}

{%- macro field(check) -%}
e.payload ->> {{ check.column | literal }}
{%- endmacro -%}

{#- Words PostgreSQL's input functions accept as timestamps or numbers that are not data. -#}
{%- set not_data = {
    'timestamptz': ['now', 'today', 'tomorrow', 'yesterday', 'epoch', 'infinity', '-infinity', '+infinity', 'allballs'],
    'timestamp': ['now', 'today', 'tomorrow', 'yesterday', 'epoch', 'infinity', '-infinity', '+infinity', 'allballs'],
    'date': ['now', 'today', 'tomorrow', 'yesterday', 'epoch', 'infinity', '-infinity', '+infinity'],
    'numeric': ['nan', 'infinity', '-infinity', '+infinity', 'inf', '-inf', '+inf'],
} -%}

{%- macro required_columns(check) -%}
NOT e.payload ? {{ check.column | literal }}
{%- endmacro -%}

{%- macro non_null(check) -%}
nullif(btrim({{ field(check) }}), '') IS NULL
{%- endmacro -%}

{%- macro types(check) -%}
({{ field(check) }} IS NOT NULL
    AND (
        NOT pg_input_is_valid({{ field(check) }}, {{ check.params.type | literal }})
        OR lower(btrim({{ field(check) }})) = ANY({{ not_data.get(check.params.type, ['']) | literal }})
    ))
{%- endmacro -%}

{%- macro ranges(check) -%}
(CASE WHEN pg_input_is_valid({{ field(check) }}, 'numeric') THEN ({{ field(check) }})::numeric END
    NOT BETWEEN {{ check.params.get('min') | literal }}::numeric
    AND {{ check.params.get('max') | literal }}::numeric)
{%- endmacro -%}

{%- macro allowed_values(check) -%}
({{ field(check) }} IS NOT NULL
    AND CASE WHEN {{ check.params.get('normalize', false) | literal }}
        THEN lower(btrim({{ field(check) }})) ELSE {{ field(check) }} END
    != ALL({{ check.params['values'] | literal }}::text[]))
{%- endmacro -%}

{%- macro max_decimal_places(check) -%}
(CASE WHEN pg_input_is_valid({{ field(check) }}, 'numeric')
    THEN scale(trim_scale(({{ field(check) }})::numeric)) END > {{ check.params.places | literal }})
{%- endmacro -%}

{%- macro matches(check) -%}
{{ field(check) }} !~ {{ check.params.pattern | literal }}
{%- endmacro -%}
