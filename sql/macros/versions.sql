{#-
  Versioned rows, written once for the features (050), labels (055) and splits (060).

  A history table's row belongs to versions valid_from <= v < valid_to (valid_to NULL: still
  current). A run writes under version raw_to_ready.version_number, one more than the latest
  ever published (raw_to_ready.published_version); readers see only published versions, so
  what a run writes stays invisible until the registry stage (070) publishes it.

  The runner's settings these macros read (a DBA sets them with SET):
    raw_to_ready.full_refresh       on: rebuild every row; off: only what staging changed
    raw_to_ready.version_number     the version this run writes
    raw_to_ready.published_version  the latest published version (0: none yet)
    raw_to_ready.work_files         comma-separated sha256 of the files this run validates
                                    and models: the new files, or every named file
    raw_to_ready.removed_files      comma-separated sha256 of the staged files an incremental
                                    run removes (no longer named, or replaced); empty else
-#}

{%- macro full_refresh() -%}
current_setting('raw_to_ready.full_refresh')::boolean
{%- endmacro -%}

{%- macro version() -%}
current_setting('raw_to_ready.version_number')::bigint
{%- endmacro -%}

{%- macro published() -%}
current_setting('raw_to_ready.published_version')::bigint
{%- endmacro -%}

{%- macro work_files() -%}
string_to_array(current_setting('raw_to_ready.work_files'), ',')::text[]
{%- endmacro -%}

{%- macro removed_files() -%}
string_to_array(current_setting('raw_to_ready.removed_files'), ',')::text[]
{%- endmacro -%}

{#- The latest published version, as a scalar subquery (NULL before the first). -#}
{%- macro current_version() -%}
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
WHERE valid_from > {{ published() }};

UPDATE {{ table }}
SET valid_to = NULL
WHERE valid_to > {{ published() }};
{%- endmacro %}

{#- Make the current rows of `table` in scope equal `new_rows` (a table holding the scope's
    rows as they should be) in two steps. close_changed: close the current rows in scope that
    are gone or differ; `scope_from` and `scope_where` (a FROM item and a condition on `h`,
    the history row) limit it to the scope. add_changed: add the rows that are new or differ.
    A row that did not change is not touched, so a version costs what changed. -#}
{%- macro close_changed(table, new_rows, keys, values, scope_from=none, scope_where=none) %}
UPDATE {{ table }} AS h
SET valid_to = {{ version() }}
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
{{ version() }} AS valid_from
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

{#- (Re)create a view only when its definition changed: CREATE OR REPLACE VIEW takes a lock
    that would queue readers behind any long query, so an unchanged view is left alone.
    The comment carries the definition's md5. When the columns change (a config change:
    another horizon renames the label columns), the view is dropped and created; our own
    views built on it (`dependents`) go first and are created again after it. A view of
    yours built on it makes the drop fail, naming it: drop it, run, create it again. -#}
{%- macro ensure_view(name, body, comment, dependents=[]) %}
DO $ensure$
DECLARE
    body constant text := {{ body | literal }};
    note constant text := {{ comment | literal }} || ' [definition md5 ' || md5(body) || ']';
BEGIN
    IF to_regclass({{ name | literal }}) IS NULL
        OR obj_description(to_regclass({{ name | literal }}), 'pg_class') IS DISTINCT FROM note THEN
{%- for dependent in dependents %}
        EXECUTE format('DROP VIEW IF EXISTS %s', {{ dependent | literal }});
{%- endfor %}
        BEGIN
            EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', {{ name | literal }}, body);
        EXCEPTION WHEN invalid_table_definition THEN
            EXECUTE format('DROP VIEW %s', {{ name | literal }});
            EXECUTE format('CREATE VIEW %s AS %s', {{ name | literal }}, body);
        END;
        EXECUTE format('COMMENT ON VIEW %s IS %L', {{ name | literal }}, note);
    END IF;
END
$ensure$;
{%- endmacro %}

{#- Add the config's columns a history table lacks (a new window adds its columns; rows of
    earlier versions have NULL there). ALTER only when one is missing: an ALTER TABLE would
    lock out readers of the published versions for the rest of the transaction. -#}
{%- macro ensure_columns(table, columns) %}
DO $columns$
BEGIN
{%- for name, type in columns %}
    IF NOT EXISTS (
        SELECT 1
        FROM pg_attribute AS a
        WHERE a.attrelid = {{ table | literal }}::regclass AND a.attname = {{ name | literal }} AND NOT a.attisdropped
    ) THEN
        ALTER TABLE {{ table }} ADD COLUMN {{ name | ident }} {{ type }};
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

{#- A bulk load into an empty table (a first load, a backfill into a new database): its
    secondary indexes (all but the primary key) are dropped before the load and built again
    after it, in the same transaction, so no reader ever sees the table without them.
    Building an index over a million rows at once costs a fraction of maintaining it row by
    row (stg.orders at 1M: 5.1 s with its indexes; 1.5 s, then 0.7 s to build them). A table
    that holds rows keeps its indexes: a daily run adds few rows to many. On Citus the shards
    keep theirs (each worker maintains its own, in parallel; and Citus refuses DDL on a shard
    that this transaction read over several connections). Import with context. -#}
{%- macro drop_indexes_if_empty(table) %}
{%- if not distribution %}
DO $bulk$
DECLARE
    dropped record;
BEGIN
    CREATE TEMPORARY TABLE IF NOT EXISTS bulk_load_indexes (
        table_name text, index_name text, definition text
    ) ON COMMIT DROP;
    IF NOT EXISTS (SELECT 1 FROM {{ table }}) THEN
        FOR dropped IN
            INSERT INTO bulk_load_indexes (table_name, index_name, definition)
            SELECT {{ table | literal }}, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index AS i
            WHERE i.indrelid = {{ table | literal }}::regclass
                AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
            RETURNING index_name
        LOOP
            EXECUTE format('DROP INDEX %s', dropped.index_name);
        END LOOP;
    END IF;
END
$bulk$;
{%- endif %}
{%- endmacro %}

{%- macro restore_indexes(table) %}
{%- if not distribution %}
DO $bulk$
DECLARE
    dropped record;
BEGIN
    IF to_regclass('pg_temp.bulk_load_indexes') IS NOT NULL THEN
        FOR dropped IN
            DELETE FROM bulk_load_indexes WHERE table_name = {{ table | literal }}
            RETURNING definition
        LOOP
            EXECUTE dropped.definition;
        END LOOP;
    END IF;
END
$bulk$;
{%- endif %}
{%- endmacro %}
