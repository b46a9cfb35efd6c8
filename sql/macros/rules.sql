{#-
  Validation rules over the batch's records, each written once. A rule macro returns a
  boolean expression that is true for an offending record `e` of the batch; NULL counts as
  not offending. The same expression serves the aggregate pass (count(*) FILTER (WHERE ...))
  in 30_validate/030_validate_expectations.sql, and the offending records (macros/results.sql:
  offending) of the quarantine (033) and the failure history (035), always through
  `offends`, which confines a check with a `where` or `mostly` to its domain (in_domain: the
  rows it looks at, counted in 030 as the base of its percentages). The same rules over the
  models' orders: macros/order_rules.sql; what a check writes: macros/results.sql.
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

{%- macro non_null_value(check) -%}
nullif({{ trimmed(field(check)) }}, '') IS NOT NULL
{%- endmacro -%}

{%- macro types(check) -%}
({{ field(check) }} IS NOT NULL
    AND (
        NOT pg_input_is_valid({{ field(check) }}, {{ check.params.type | literal }}){{ not_data(check) }}
    ))
{%- endmacro -%}

{#- `now` in a range's bounds is the run's start, recorded in meta.runs before any data
    stage: one instant for every statement of the run, never the clock. Each file that
    may compare with it remembers it first (remember_run_start, '' when the run has no row
    there); a comparison with it then stops a run without one (the DBA route before its
    INSERT INTO meta.runs) with a message naming it. -#}
{%- macro remember_run_start() -%}
SELECT meta.set_run_setting(
    'raw_to_ready.run_started_at',
    coalesce((
        SELECT r.started_at::text
        FROM meta.runs AS r
        WHERE r.run_id = current_setting('raw_to_ready.run_id')
    ), '')
);
{%- endmacro -%}

{%- macro run_started_at() -%}
coalesce(
    nullif(current_setting('raw_to_ready.run_started_at'), '')::timestamptz,
    ('meta.runs has no row for run ' || current_setting('raw_to_ready.run_id')
    || ', whose start a range relative to now needs')::timestamptz
)
{%- endmacro -%}

{#- A range's bound: a number; a fixed instant (a naive one read in the source's time
    zone, as staging reads naive timestamps); or the run's start plus an offset. -#}
{%- macro range_bound(check, which) -%}
{%- set bound = check.params[which] -%}
{%- if check.params.get('kind', 'number') == 'number' -%}
{{ bound | literal }}::numeric
{%- elif bound.relative -%}
({{ run_started_at() }}{% if bound.offset %} + {{ bound.offset | literal }}::interval{% endif %})
{%- elif bound.zone -%}
({{ bound.at | literal }}::timestamp AT TIME ZONE {{ bound.zone | literal }})
{%- else -%}
{{ bound.at | literal }}::timestamptz
{%- endif -%}
{%- endmacro -%}

{#- A value outside the range: below min (at min too when strict_min), above max (at max
    too when strict_max). A NULL value (or one that does not parse) is not judged. -#}
{%- macro range_offends(check, value) -%}
(
{%- if check.params.get('min') is not none -%}
{{ value }} {{ '<=' if check.params.get('strict_min') else '<' }} {{ range_bound(check, 'min') }}
{%- endif -%}
{%- if check.params.get('min') is not none and check.params.get('max') is not none %}
    OR {% endif -%}
{%- if check.params.get('max') is not none -%}
{{ value }} {{ '>=' if check.params.get('strict_max') else '>' }} {{ range_bound(check, 'max') }}
{%- endif -%}
)
{%- endmacro -%}

{#- A range compares numbers, or instants (parsed as staging parses them: the file's
    datestyle, naive values in the source's zone). A value that is neither, or a word that
    is not data, is the type check's to report (a range implies one). -#}
{%- macro range_value(check) -%}
{%- if check.params.get('kind') == 'timestamp' -%}
(CASE WHEN pg_input_is_valid({{ field(check) }}, 'timestamptz')
    AND {{ field(check) }} !~* {{ not_data_pattern['timestamptz'] | literal }}
    THEN ({{ field(check) }})::timestamptz END)
{%- else -%}
(CASE WHEN pg_input_is_valid({{ field(check) }}, 'numeric') THEN ({{ field(check) }})::numeric END)
{%- endif -%}
{%- endmacro -%}

{%- macro ranges(check) -%}
{{ range_offends(check, range_value(check)) }}
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

{#-
  Where a check looks (its domain): rows where every condition of its `where` holds, and
  for `mostly` only the non-null values (except non_null, whose `mostly` is a share of all
  its rows, as in Great Expectations: its nulls are what it counts). A condition compares a
  field trimmed (blank is missing), the default model's status as staging stores it
  (lower-cased; the listed values include the variants the status map sends to them); a
  missing value is in no list.
-#}
{%- macro condition_holds(condition, value) -%}
{%- if condition.test == 'is_null' -%}
({{ value }} IS NULL) = {{ condition.is_null | literal }}
{%- elif condition.test == 'in' -%}
coalesce({{ value }} = ANY({{ condition['values'] | literal }}::text[]), FALSE)
{%- else -%}
NOT coalesce({{ value }} = ANY({{ condition['values'] | literal }}::text[]), FALSE)
{%- endif -%}
{%- endmacro -%}

{%- macro condition_field(condition) -%}
{%- if condition.normalize -%}
nullif(lower({{ trimmed('e.payload ->> ' ~ (condition.column | literal)) }}), '')
{%- else -%}
nullif({{ trimmed('e.payload ->> ' ~ (condition.column | literal)) }}, '')
{%- endif -%}
{%- endmacro -%}

{%- macro in_domain(check) -%}
{%- set parts = [] -%}
{%- for condition in check.params.get('where', []) -%}
{%- set _ = parts.append(condition_holds(condition, condition_field(condition))) -%}
{%- endfor -%}
{%- if check.get('mostly_of_values') -%}
{%- set _ = parts.append(non_null_value(check)) -%}
{%- endif -%}
({{ parts | join(' AND ') }})
{%- endmacro -%}

{#- The record rule's expression within the check's domain, if it has one. -#}
{%- macro offends(check) -%}
{%- if check.get('has_domain') -%}
{{ in_domain(check) }}
        AND {{ rule_offends(check) }}
{%- else -%}
{{ rule_offends(check) }}
{%- endif -%}
{%- endmacro -%}

{#- The record rule's expression, or for unique: the record's key carries more than one
    distinct record in the batch (`batch_events` is the CTE of the file using it). -#}
{%- macro rule_offends(check) -%}
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
