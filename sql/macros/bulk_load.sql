{#- A bulk load: into an empty table (a first load, a backfill into a new database), or into
    a table that holds less than a tenth of the rows coming (a first big load after the
    sample), for stg.orders (40_stage/040) and the history tables (macros/versions.sql,
    apply_changes): the caller's statements (an INSERT) run between drop_keys_for_load and
    rebuild_keys, in the same transaction, so no reader ever sees the table without its
    keys and indexes. `incoming`: an expression, the rows the caller writes at most.
    - An empty table is emptied anew (TRUNCATE: a new file for it). On a server whose WAL
      level is minimal (the embedded one: scripts/db/server.py), the rows this transaction
      then writes go to the table's file once, synced at commit, not also into the WAL.
      Elsewhere it costs nothing. A table that holds rows is never truncated (TRUNCATE is
      not MVCC-safe: a reader's older snapshot would find it empty).
    - Its indexes, the primary key's and unique constraints' too, are dropped and built again
      after the rows: building an index over a million rows at once costs a fraction of
      maintaining it row by row (stg.orders at 1M: 5.1 s with its indexes; 1.5 s, then
      0.7 s to build them). A key violated by the rows fails the build, naming the key.
      Readers of the table wait for the transaction's end (the drop locks it); a table that
      holds rows is only so treated when the load is ten times what it holds.
    A table that holds more keeps its indexes: a daily run adds few rows to many. The
    statements that rebuild them pass from the first block to the second in the temporary
    table bulk_load_indexes, which only these macros write and read. On Citus the shards keep
    theirs (each worker maintains its own, in parallel; and Citus refuses DDL on a shard that
    this transaction read over several connections). Import with context. -#}
{%- macro drop_keys_for_load(table, incoming) %}
{%- if not distribution %}
DO $bulk$
DECLARE
    dropped record;
    -- a tenth of the rows coming (counted only when the table holds rows): more rows than
    -- this in the table keep its indexes
    tenth bigint;
BEGIN
    CREATE TEMPORARY TABLE IF NOT EXISTS bulk_load_indexes (
        table_name text, index_name text, constraint_name text, definition text
    ) ON COMMIT DROP;
    IF NOT EXISTS (SELECT 1 FROM {{ table }}) THEN
        TRUNCATE {{ table }};
    ELSE
        tenth := ({{ incoming }}) / 10;
        IF (SELECT count(*) FROM (SELECT 1 FROM {{ table }} LIMIT tenth + 1) AS held) > tenth THEN
            RETURN;
        END IF;
    END IF;
    FOR dropped IN
        INSERT INTO bulk_load_indexes (table_name, index_name, constraint_name, definition)
        SELECT
            {{ table | literal }},
            i.indexrelid::regclass::text,
            c.conname,
            CASE
                WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
                ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', {{ table | literal }}, c.conname, pg_get_constraintdef(c.oid))
            END
        FROM pg_index AS i
        LEFT JOIN pg_constraint AS c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
        WHERE
            i.indrelid = {{ table | literal }}::regclass
            AND (c.oid IS NULL OR c.contype IN ('p', 'u'))
        RETURNING index_name, constraint_name
    LOOP
        IF dropped.constraint_name IS NULL THEN
            EXECUTE format('DROP INDEX %s', dropped.index_name);
        ELSE
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', {{ table | literal }}, dropped.constraint_name);
        END IF;
    END LOOP;
END
$bulk$;
{%- endif %}
{%- endmacro %}

{%- macro rebuild_keys(table) %}
{%- if not distribution %}
DO $bulk$
DECLARE
    dropped record;
BEGIN
    -- absent when drop_keys_for_load did not run in this transaction (a psql session's own)
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

{%- macro bulk_load(table, incoming) %}
{{- drop_keys_for_load(table, incoming) }}
{{ caller() }}
{{- rebuild_keys(table) }}
{%- endmacro %}
