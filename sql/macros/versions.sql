{#-
  Versioned rows, written once for the features (50_features/050), the labels
  (55_labels/055) and the splits (60_splits/062).

  A history table's row belongs to versions valid_from <= v < valid_to (valid_to NULL: still
  current). A run writes under version raw_to_ready.version_number, one more than the latest
  ever published (raw_to_ready.published_version); readers see only published versions, so
  what a run writes stays invisible until the registry stage (70_registry/070) publishes it.

  The runner's settings these macros read (a DBA sets them with SET):
    raw_to_ready.full_refresh       on: rebuild every row; off: only what staging changed
    raw_to_ready.version_number     the version this run writes
    raw_to_ready.published_version  the latest published version (0: none yet)
    raw_to_ready.work_files         comma-separated sha256 of the files this run validates
                                    and models: the new files, or every named file
    raw_to_ready.removed_files      comma-separated sha256 of the staged files an incremental
                                    run removes (no longer named, or replaced); empty else -#}

{%- import 'macros/distribution.sql' as dist with context -%}
{%- import 'macros/bulk_load.sql' as bulk with context -%}

{%- macro full_refresh() -%}
current_setting('raw_to_ready.full_refresh')::boolean
{%- endmacro -%}

{#- The same as a scalar subquery, which PostgreSQL evaluates once per statement (an
    InitPlan): for a condition ORed with one on the row, where the plain call would run for
    every row (a million calls, 0.3 s, on a full refresh of a million orders). Not on Citus,
    which would compute the subquery apart and then move every row between the workers
    (import with context). -#}
{%- macro full_refresh_once() -%}
{%- if distribution -%}
{{ full_refresh() }}
{%- else -%}
(SELECT {{ full_refresh() }})
{%- endif -%}
{%- endmacro -%}

{#- The version this run writes. -#}
{%- macro writing_version() -%}
current_setting('raw_to_ready.version_number')::bigint
{%- endmacro -%}

{#- The latest version published before this run (0: none yet), from the runner's setting. -#}
{%- macro published_version() -%}
current_setting('raw_to_ready.published_version')::bigint
{%- endmacro -%}

{%- macro work_files() -%}
string_to_array(current_setting('raw_to_ready.work_files'), ',')::text[]
{%- endmacro -%}

{#- `column` is one of the files this run validates and models: a constant list in the
    statement's plan (V020__setting_list.sql), or on Citus, where that function stays on the
    coordinator, a semi-join that the workers evaluate. Import with context. -#}
{%- macro in_work_files(column) -%}
{{ column }} {% if distribution %}IN (SELECT w.file_sha256 FROM unnest({{ work_files() }}) AS w (file_sha256))
{%- else %}= ANY(meta.setting_list('raw_to_ready.work_files')){% endif %}
{%- endmacro -%}

{%- macro removed_files() -%}
string_to_array(current_setting('raw_to_ready.removed_files'), ',')::text[]
{%- endmacro -%}

{#- The customers whose staged orders changed since the published version, each with its
    earliest changed instant: the scope of a daily run's features (50_features/050) and,
    from a horizon before, its labels (55_labels/055); none on a full refresh. -#}
{%- macro changed_customers() -%}
SELECT
    c.customer_id,
    min(c.changed_at) AS from_at
FROM stg.order_changes AS c
WHERE
    NOT {{ full_refresh() }}
    AND c.version_number > {{ published_version() }}
    AND c.customer_id IS NOT NULL
GROUP BY c.customer_id
{%- endmacro -%}

{#- The latest published version as the database has it now, a scalar subquery (NULL before
    the first): in the views, and in the registry once this run's version is in. -#}
{%- macro latest_published_version() -%}
(SELECT max(v.version_number) FROM meta.feature_versions AS v)
{%- endmacro -%}

{#- A history row `alias` is in version `v` (an expression). -#}
{%- macro in_version(alias, v) -%}
{{ alias }}.valid_from <= {{ v }} AND ({{ alias }}.valid_to IS NULL OR {{ alias }}.valid_to > {{ v }})
{%- endmacro -%}

{#- A run killed before publishing left rows of a version nobody can see: delete them, and
    make current again what it had closed. Cheap: both look up indexes. -#}
{%- macro discard_unpublished(table) %}
DELETE FROM {{ table }}
WHERE valid_from > {{ published_version() }};

UPDATE {{ table }}
SET valid_to = NULL
WHERE valid_to > {{ published_version() }};
{%- endmacro %}

{#- Make the current rows of `table` in scope equal `new_rows` (a table holding the scope's
    rows as they should be) in two steps. close_changed: close the current rows in scope that
    are gone or differ; `scope_from` and `scope_where` (a FROM item and a condition on `h`,
    the history row) limit it to the scope. add_changed: add the rows that are new or differ.
    A row that did not change is not touched, so a version costs what changed. -#}
{%- macro close_changed(table, new_rows, keys, values, scope_from=none, scope_where=none) %}
UPDATE {{ table }} AS h
SET valid_to = {{ writing_version() }}
{%- if scope_from %}
FROM {{ scope_from }}
{%- endif %}
WHERE
    h.valid_to IS NULL
{%- if scope_where %}
    AND {{ scope_where }}
{%- endif %}
    AND NOT EXISTS (
        SELECT 1
        FROM {{ new_rows }} AS n
        WHERE
{%- for key in keys %}
            n.{{ key | ident }} = h.{{ key | ident }}
{%- if not loop.last %} AND{% endif %}
{%- endfor %}
            AND (
{%- for column in values %}
                n.{{ column | ident }}{{ "," if not loop.last }}
{%- endfor %}
            ) IS NOT DISTINCT FROM (
{%- for column in values %}
                h.{{ column | ident }}{{ "," if not loop.last }}
{%- endfor %}
            )
    );
{%- endmacro %}

{%- macro add_changed(table, new_rows, keys, values) %}
-- rows: rows written
INSERT INTO {{ table }} (
{%- for column in keys + values %}
{{ column | ident }},
{%- endfor %}
    valid_from
)
SELECT
{%- for column in keys + values %}
    n.{{ column | ident }},
{%- endfor %}
{{ writing_version() }} AS valid_from
FROM {{ new_rows }} AS n
WHERE NOT EXISTS (
    SELECT 1
    FROM {{ table }} AS h
    WHERE
        h.valid_to IS NULL
{%- for key in keys %}
        AND h.{{ key | ident }} = n.{{ key | ident }}
{%- endfor %}
);
{%- endmacro %}

{#- Ready history `table` (made by a migration with its key and version range) for this
    run's rows: the config's value `columns` ((name, type) pairs) that it lacks, on Citus its
    distribution (by customer, co-located; after its indexes and columns: Citus cannot
    create an index from inside a multi-statement file), and no rows left by a run killed
    before publishing. Import with context. -#}
{%- macro open_history(table, columns) %}
{{ ensure_columns(table, columns) }}

{{ dist.distribute(table, 'customer_id') }}

{{ discard_unpublished(table) }}
{%- endmacro %}

{#- Add the config's columns a history table lacks (a new window adds its columns; rows of
    earlier versions have NULL there); refuse one whose type changed (a feature redefined
    under its old name, from a count to an average, say). ALTER only when one is missing: an ALTER TABLE would
    lock out readers of the published versions for the rest of the transaction. -#}
{%- macro ensure_columns(table, columns, hint='give the feature a new name (or run against a new database)') %}
DO $columns$
BEGIN
{%- for name, type in columns %}
    IF NOT EXISTS (
        SELECT 1
        FROM pg_attribute AS a
        WHERE a.attrelid = {{ table | literal }}::regclass AND a.attname = {{ name | literal }} AND NOT a.attisdropped
    ) THEN
        ALTER TABLE {{ table }} ADD COLUMN {{ name | ident }} {{ type }};
    ELSIF EXISTS (
        SELECT 1
        FROM pg_attribute AS a
        WHERE
            a.attrelid = {{ table | literal }}::regclass AND a.attname = {{ name | literal }} AND NOT a.attisdropped
            AND a.atttypid <> {{ type | literal }}::regtype
    ) THEN
        -- the rows of earlier versions keep their values: a column never changes its type
        RAISE EXCEPTION '%.% holds % values of earlier versions; the config now makes it %',
            {{ table | literal }}, {{ name | literal }},
            (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a
             WHERE a.attrelid = {{ table | literal }}::regclass AND a.attname = {{ name | literal }}),
            {{ type | literal }}::regtype
            USING HINT = {{ hint | literal }};
    END IF;
{%- endfor %}
END
$columns$;
{%- endmacro %}

{#- Fresh statistics after a full refresh; a daily run changes too few rows to need them
    (autovacuum's analyze keeps up), and ANALYZE samples 30,000 rows whatever the size. -#}
{%- macro analyze_after_full_refresh(table) %}
DO $analyze$
BEGIN
    IF {{ full_refresh() }} THEN
        EXECUTE {{ ('ANALYZE ' ~ table) | literal }};
    END IF;
END
$analyze$;
{%- endmacro %}

{#- A daily run reaches the rows it changes through indexes. The history tables are read
    from memory, where a random page costs about what a sequential one does; at the default
    (4) the planner scans a million rows rather than probe an index a few thousand times. -#}
{%- macro index_friendly() -%}
SELECT meta.set_run_setting('random_page_cost', '1.1');
{%- endmacro -%}


{#- Make the current rows of history `table` equal `rows` (a table holding, under `keys`
    and `values`, the rows as they should be: every row on a full refresh, else the rows of
    the run's scope), writing only what changed:
      1. on a full refresh, close every current row that is gone or differs;
      2. else close the scope's current rows that are gone or differ: `scope_from` and
         `scope_where` (a FROM item and a condition on `h`, the history row) name them;
      3. add the rows that are new or differ (a bulk load when the table is empty);
      4. after a full refresh, fresh statistics for the later stages' plans.
    A row that did not change is not touched, so a version costs what changed. Import with
    context. -#}
{%- macro apply_changes(table, rows, keys, values, scope_from, scope_where) %}
{{ close_changed(table, rows, keys, values, scope_where=full_refresh()) }}

{{ close_changed(table, rows, keys, values, scope_from=scope_from, scope_where=scope_where) }}

{% call bulk.bulk_load(table, '(SELECT count(*) FROM ' ~ rows ~ ')') -%}
{{ add_changed(table, rows, keys, values) }}
{%- endcall %}

{{ analyze_after_full_refresh(table) }}
{%- endmacro %}
