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

{#- The record rule's expression, or for unique: the record's key carries more than one
    distinct record in the batch (`batch_events` is the CTE of the file using it). -#}
{%- macro offends(check) -%}
{%- if check.rule == 'unique' -%}
{{ trimmed(field(check)) }} IN (
            SELECT {{ trimmed('k.payload ->> ' ~ (check.column | literal)) }}
            FROM batch_events AS k
            WHERE nullif({{ trimmed('k.payload ->> ' ~ (check.column | literal)) }}, '') IS NOT NULL
            GROUP BY {{ trimmed('k.payload ->> ' ~ (check.column | literal)) }}
            HAVING count(DISTINCT k.payload) > 1
        )
{%- else -%}
{{ caller_rule(check) }}
{%- endif -%}
{%- endmacro -%}

{%- macro caller_rule(check) -%}
{%- if check.rule == 'required_columns' %}{{ required_columns(check) }}
{%- elif check.rule == 'non_null' %}{{ non_null(check) }}
{%- elif check.rule == 'types' %}{{ types(check) }}
{%- elif check.rule == 'ranges' %}{{ ranges(check) }}
{%- elif check.rule == 'allowed_values' %}{{ allowed_values(check) }}
{%- elif check.rule == 'max_decimal_places' %}{{ max_decimal_places(check) }}
{%- elif check.rule == 'matches' %}{{ matches(check) }}
{%- endif -%}
{%- endmacro -%}

{#-
  Order-level rules: the same rules over the models' typed orders `o` (stg.model_orders).
  counted_only restricts a rule to the orders the features count (features.exclude_statuses).
-#}
{%- macro order_field(check) -%}
o.{{ check.column | ident }}
{%- endmacro -%}

{%- macro order_offends(check) -%}
{%- if check.params.get('counted_only') and check.params.exclude_statuses -%}
NOT coalesce(o.status = ANY({{ check.params.exclude_statuses | literal }}::text[]), FALSE) AND
{% endif -%}
{%- if check.rule == 'non_null' -%}
{{ order_field(check) }} IS NULL
{%- elif check.rule == 'unique' -%}
{{ order_field(check) }} IN (
            SELECT k.{{ check.column | ident }}
            FROM stg.model_orders AS k
            WHERE k.{{ check.column | ident }} IS NOT NULL
            GROUP BY k.{{ check.column | ident }}
            HAVING count(*) > 1
        )
{%- elif check.rule == 'ranges' -%}
{{ order_field(check) }}::numeric NOT BETWEEN {{ check.params.get('min') | literal }}::numeric
    AND {{ check.params.get('max') | literal }}::numeric
{%- elif check.rule == 'allowed_values' -%}
{{ order_field(check) }}::text != ALL({{ check.params['values'] | literal }}::text[])
{%- elif check.rule == 'max_decimal_places' -%}
scale(trim_scale({{ order_field(check) }}::numeric)) > {{ check.params.places | literal }}
{%- elif check.rule == 'matches' -%}
{{ order_field(check) }}::text !~ {{ check.params.pattern | literal }}
{%- endif -%}
{%- endmacro -%}

{#- A threshold is '>' or '>=' a count, or a percentage of the batch's rows; the
    percentage is compared exactly (count * 100 against value * rows), not rounded. -#}
{%- macro breaches(kind) -%}
CASE c.{{ kind }}_op
            WHEN '>' THEN
                CASE WHEN c.{{ kind }}_is_percent THEN c.failing_count * 100 > c.{{ kind }}_value * c.row_count
                    ELSE c.failing_count > c.{{ kind }}_value END
            WHEN '>=' THEN
                CASE WHEN c.{{ kind }}_is_percent THEN c.failing_count * 100 >= c.{{ kind }}_value * c.row_count
                    ELSE c.failing_count >= c.{{ kind }}_value END
        END
{%- endmacro -%}
{#- A threshold's three values; a quarantine check without error_if has none (never breached). -#}
{%- macro threshold(t) -%}
{%- if t -%}
{{ t.op | literal }}, {{ t.value | literal }}::numeric, {{ t.percent | literal }}
{%- else -%}
NULL::text, NULL::numeric, NULL::boolean
{%- endif -%}
{%- endmacro -%}

{#- Validation results, written once for both levels (030 records, 038 orders). -#}
{#- A check's leading VALUES fields: what it is, its action and its two thresholds. -#}
{%- macro check_row(check) -%}
{{ check.id | literal }}, {{ check.rule | literal }}, {{ check.column | literal }}::text,
            {{ check.severity | literal }}, {{ check.message | literal }}, {{ check.action | literal }},
            {{ threshold(check.error_if) }},
            {{ threshold(check.warn_if) }},
{%- endmacro -%}

{#- The end of a results INSERT, after a CTE `check_counts` (one row per check with the
    check_row fields, failing_count, row_count, failing_percent): each check's status. A
    warn-severity check never fails the run; an error-severity one warns below error_if; a
    quarantine check sets its records aside (and fails past error_if); a check with no
    offending record always passes. -#}
{%- macro check_results(level) -%}
check_thresholds AS (
    SELECT
        c.*,
        {{ breaches('error') }} AS is_error,
        {{ breaches('warn') }} AS is_warn
    FROM check_counts AS c
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    check_id,
    rule,
    column_name,
    severity,
    CASE
        WHEN failing_count > 0 AND severity = 'error' AND is_error THEN 'fail'
        WHEN failing_count > 0 AND is_warn THEN 'warn'
        WHEN failing_count > 0 AND action = 'quarantine' THEN 'quarantine'
        ELSE 'pass'
    END AS status,
    failing_count,
    row_count,
    failing_percent,
    message,
    {{ level | literal }} AS level,
    action
FROM check_thresholds
{%- endmacro -%}
