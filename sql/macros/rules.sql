{#-
  Validation rules, each written once. A rule macro returns a boolean expression that is
  true for an offending record `e` of the batch; NULL counts as not offending. The same
  expression serves the aggregate pass (count(*) FILTER (WHERE ...)) in
  030_validate_expectations.sql and the failure history in 035_validate_failures.sql.
-#}

{%- macro field(check) -%}
e.payload ->> {{ check.column | literal }}
{%- endmacro -%}

{#- Trimming removes every kind of white space (tabs and line breaks too), not only
    spaces; validation and staging trim alike. -#}
{%- macro trimmed(expression) -%}
btrim({{ expression }}, E' \t\n\r\f\x0B')
{%- endmacro -%}

{#- PostgreSQL's input functions accept words that are not data: `now`, `today 10:00`,
    `epoch`, `infinity` as timestamps; `NaN`, `Infinity` as numbers. A value holding one
    (as a word, in any case, anywhere) fails the type check. Other types have none. -#}
{%- set not_data_pattern = {
    'timestamptz': '\\m(now|today|tomorrow|yesterday|epoch|infinity|allballs)\\M',
    'timestamp': '\\m(now|today|tomorrow|yesterday|epoch|infinity|allballs)\\M',
    'date': '\\m(now|today|tomorrow|yesterday|epoch|infinity)\\M',
    'numeric': '(nan|inf)',
} -%}

{%- macro not_data(check) -%}
{%- if check.params.type in not_data_pattern %}
        OR {{ field(check) }} ~* {{ not_data_pattern[check.params.type] | literal }}
{%- endif %}
{%- endmacro -%}

{%- macro required_columns(check) -%}
NOT e.payload ? {{ check.column | literal }}
{%- endmacro -%}

{%- macro non_null(check) -%}
nullif({{ trimmed(field(check)) }}, '') IS NULL
{%- endmacro -%}

{%- macro types(check) -%}
({{ field(check) }} IS NOT NULL
    AND (
        NOT pg_input_is_valid({{ field(check) }}, {{ check.params.type | literal }}){{ not_data(check) }}
    ))
{%- endmacro -%}

{%- macro ranges(check) -%}
(CASE WHEN pg_input_is_valid({{ field(check) }}, 'numeric') THEN ({{ field(check) }})::numeric END
    NOT BETWEEN {{ check.params.get('min') | literal }}::numeric
    AND {{ check.params.get('max') | literal }}::numeric)
{%- endmacro -%}

{%- macro allowed_values(check) -%}
({{ field(check) }} IS NOT NULL
    -- a normalized column (the status) is compared as staging will store it; a blank
    -- one becomes NULL there, which is no value to refuse
    AND CASE WHEN {{ check.params.get('normalize', false) | literal }}
        THEN nullif(lower({{ trimmed(field(check)) }}), '') ELSE {{ field(check) }} END
    != ALL({{ check.params['values'] | literal }}::text[]))
{%- endmacro -%}

{%- macro max_decimal_places(check) -%}
(CASE WHEN pg_input_is_valid({{ field(check) }}, 'numeric')
    THEN scale(trim_scale(({{ field(check) }})::numeric)) END > {{ check.params.places | literal }})
{%- endmacro -%}

{%- macro matches(check) -%}
{{ field(check) }} !~ {{ check.params.pattern | literal }}
{%- endmacro -%}
