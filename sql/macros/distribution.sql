{#-
  Citus (distribution: {kind: citus, shard_count: N} in the config; docs/scale-out.md).
  Every macro renders nothing, or the single-server form, without it.

  The tables of a customer (staged orders, features, labels, splits and their scratch
  tables) are hash-distributed by customer and co-located with stg.orders: a shard holds
  the same customers in every table, so the windows, joins and history writes on
  customer_id run on the shards, each worker on its own. stg.orders is distributed by
  customer_key, its customer or, for an order without one, its order id (V016): a
  distribution column is never NULL.
-#}

{#- Make `table` a distributed table (by `column`), co-located with stg.orders unless
    `anchor` (then it starts a co-location group of distribution.shard_count shards). -#}
{%- macro distribute(table, column, anchor=false) -%}
{%- if distribution %}
{%- set placement = "colocate_with => 'none', shard_count => " ~ (distribution.shard_count | literal)
    if anchor else "colocate_with => 'stg.orders'" %}
DO $distribute$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = {{ table | literal }}::regclass) THEN
        PERFORM create_distributed_table({{ table | literal }}, {{ column | literal }}, {{ placement }});
    END IF;
END
$distribute$;
{%- endif %}
{%- endmacro -%}

{#- Make `table` a reference table (a copy on every node) on Citus. -#}
{%- macro reference(table) -%}
{%- if distribution %}
DO $reference$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = {{ table | literal }}::regclass) THEN
        PERFORM create_reference_table({{ table | literal }});
    END IF;
END
$reference$;
{%- endif %}
{%- endmacro -%}

{#- A scratch table `name` (unlogged) holding the caller's query. One server: CREATE TABLE
    AS, which may scan in parallel. Citus: a CREATE TABLE AS is a table on the coordinator,
    so the table is created empty from the query's columns, distributed by `key` and
    co-located, then filled by INSERT … SELECT, which the shards run where the query reads
    co-located tables. -#}
{%- macro scratch_table(name, key, rows=none, read=none) -%}
DROP TABLE IF EXISTS {{ name }};

{% if distribution -%}
CREATE UNLOGGED TABLE {{ name }} AS
{{ caller() }}
WITH NO DATA;

{{ distribute(name, key) }}

{% if rows -%}
-- rows: {{ rows }}
{% endif -%}
{% if read -%}
-- read: {{ read }}
{% endif -%}
INSERT INTO {{ name }}
{{ caller() }};
{%- else -%}
{% if rows -%}
-- rows: {{ rows }}
{% endif -%}
{% if read -%}
-- read: {{ read }}
{% endif -%}
CREATE UNLOGGED TABLE {{ name }} AS
{{ caller() }};
{%- endif %}
{%- endmacro -%}


{#- The key of a scratch table `name` of (customer_id, feature_time) rows, for the
    incremental runs' lookups into it (the scope's rows closed by key). A full refresh joins
    every row by hash and looks up nothing, so it builds no key: at a million rows that is
    0.36 s a table (the history's unique index on current rows still refuses a duplicate).
    On Citus the key is always built (a distributed table's DDL is not run from PL/pgSQL). -#}
{%- macro scratch_key(name) -%}
{%- if distribution -%}
ALTER TABLE {{ name }} ADD PRIMARY KEY (customer_id, feature_time);
{%- else -%}
DO $key$
BEGIN
    IF NOT current_setting('raw_to_ready.full_refresh')::boolean THEN
        ALTER TABLE {{ name }} ADD PRIMARY KEY (customer_id, feature_time);
    END IF;
END
$key$;
{%- endif -%}
{%- endmacro -%}
