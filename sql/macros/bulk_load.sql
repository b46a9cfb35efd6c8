{#- A bulk load into an empty table (a first load, a backfill into a new database), for
    stg.orders (40_stage/040) and the history tables (macros/versions.sql, apply_changes): the
    caller's statements (an INSERT) run between dropping the table's secondary indexes (all
    but the primary key's) and building them again, in the same transaction, so no reader
    ever sees the table without them. Building an index over a million rows at once costs a
    fraction of maintaining it row by row (stg.orders at 1M: 5.1 s with its indexes; 1.5 s,
    then 0.7 s to build them). A table that holds rows keeps its indexes: a daily run adds
    few rows to many. The definitions of the dropped indexes pass from the first block to
    the second in the temporary table bulk_load_indexes, which only this macro writes and
    reads. On Citus the shards keep theirs (each worker maintains its own, in parallel; and
    Citus refuses DDL on a shard that this transaction read over several connections).
    Import with context. -#}
{%- macro bulk_load(table) %}
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
{{ caller() }}
{%- if not distribution %}

DO $bulk$
DECLARE
    dropped record;
BEGIN
    FOR dropped IN
        DELETE FROM bulk_load_indexes WHERE table_name = {{ table | literal }}
        RETURNING definition
    LOOP
        EXECUTE dropped.definition;
    END LOOP;
END
$bulk$;
{%- endif %}
{%- endmacro %}
