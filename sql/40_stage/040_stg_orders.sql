{%- import 'macros/bulk_load.sql' as bulk with context -%}
{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/entities.sql' as entities with context -%}
{%- import 'macros/sources.sql' as sources -%}
-- Merges the orders the source models produced (stg.model_orders, checked by
-- 37_model/038) into stg.orders: adds new orders, updates changed ones, removes those no
-- named file holds; an unchanged order is left as it is. 041 logs what changed for the
-- derived layers.
-- grain: one row per order_id
-- requires: 37_model/037_model_orders.sql and 37_model/038_validate_orders.sql passed for
--           this batch (the runner stops before this stage otherwise),
--           V003__create_stg_orders.sql, V010__versioned_publishing.sql
-- writes: stg.orders, stg.order_changes
-- settings: raw_to_ready.run_id, raw_to_ready.full_refresh, raw_to_ready.removed_files
--           (sql/macros/versions.sql)
-- Incremental (full_refresh off): the model ran over the new files only, and 037 made
-- sure none of their orders is staged already but from a file this run removes. So every
-- model order is new, or replaces an order of a removed file; and the orders that leave
-- are those of the removed files that no new file holds (a removed file holds only its
-- own orders: V012, scripts/pipeline/versions.py).
SELECT meta.set_run_setting('work_mem', '512MB');
{%- if staging.attributes %}

-- staging.attributes: the typed columns the models return beside the order's (a new one is
-- added, NULL for the orders staged before; a changed type is refused)
{{ versions.ensure_columns('stg.orders', staging.attributes.items() | list,
    hint='give the attribute a new name (or run against a new database)') }}
{%- endif %}
-- Incremental: the orders of the removed files are about to leave or change, so each of
-- their customers must be recomputed from the earliest of them (041 adds the new side).
-- Logged before they change, and kept until the version is published.
INSERT INTO stg.order_changes (version_number, customer_id, changed_at)
SELECT
    {{ versions.writing_version() }} AS version_number,
    o.customer_id,
    min(o.order_at) AS changed_at
FROM stg.orders AS o
WHERE
    NOT {{ versions.full_refresh() }}
    AND cardinality({{ versions.removed_files() }}) > 0
    AND o.file_sha256 = ANY({{ versions.removed_files() }})
    AND o.customer_id IS NOT NULL
GROUP BY o.customer_id;
{{ entities.changes('stg.orders', 'o.file_sha256 = ANY(' ~ versions.removed_files() ~ ')') }}

-- Incremental: the removed files' orders that no new file holds leave staging.
-- rows: orders removed
DELETE FROM stg.orders AS o
WHERE
    NOT {{ versions.full_refresh() }}
    AND cardinality({{ versions.removed_files() }}) > 0
    AND o.file_sha256 = ANY({{ versions.removed_files() }})
    AND NOT EXISTS (
        SELECT 1
        FROM stg.model_orders AS b
        WHERE b.customer_key = o.customer_key AND b.order_id = o.order_id
    );

-- On a full refresh, orders that are in no file the config names any more leave staging:
-- stg.orders holds exactly the batch, so the features (and their version) follow from the
-- named files alone. Their raw events stay in raw.raw_events.
-- rows: orders removed
DELETE FROM stg.orders AS o
WHERE
    {{ versions.full_refresh() }}
    AND NOT EXISTS (
        SELECT 1
        FROM stg.model_orders AS b
        WHERE b.customer_key = o.customer_key AND b.order_id = o.order_id
    );

-- An order is matched by (customer_key, order_id), the key of its shard on Citus: an
-- order whose customer changed left above (its old customer's key is not in the batch)
-- and comes back below under the new one. A changed order (new values, or the same values
-- now from another record) takes the new values and lineage; an unchanged one keeps its
-- row untouched. (Two statements, not a MERGE: Citus runs each on the shards, and refuses
-- a MERGE that reads the run's settings.)
-- rows: orders changed
UPDATE stg.orders AS o
SET
    customer_id = b.customer_id,
    order_at = b.order_at,
    amount = b.amount,
    status = b.status,
    source_event_id = b.source_event_id,
    file_sha256 = b.file_sha256,
    line_number = b.line_number{{ sources.attribute_list(staging, 'b', assign=true) }},
    staged_run_id = current_setting('raw_to_ready.run_id'),
    staged_at = transaction_timestamp()
FROM stg.model_orders AS b
WHERE
    o.customer_key = b.customer_key
    AND o.order_id = b.order_id
    AND (o.customer_id, o.order_at, o.amount, o.status, o.source_event_id{{ sources.attribute_list(staging, 'o') }})
    IS DISTINCT FROM (b.customer_id, b.order_at, b.amount, b.status, b.source_event_id{{ sources.attribute_list(staging, 'b') }});

-- A first load (or one ten times what is staged) builds the indexes after the rows
-- (sql/macros/bulk_load.sql).
{% call bulk.bulk_load('stg.orders', '(SELECT count(*) FROM stg.model_orders)') -%}
-- rows: orders added
INSERT INTO stg.orders (
    order_id, customer_id, customer_key, order_at, amount, status,
    source_event_id, file_sha256, line_number, staged_run_id, staged_at{{ sources.attribute_list(staging) }}
)
SELECT
    b.order_id,
    b.customer_id,
    b.customer_key,
    b.order_at,
    b.amount,
    b.status,
    b.source_event_id,
    b.file_sha256,
    b.line_number,
    current_setting('raw_to_ready.run_id') AS staged_run_id,
    transaction_timestamp() AS staged_at{{ sources.attribute_list(staging, 'b') }}
FROM stg.model_orders AS b
WHERE NOT EXISTS (
        SELECT 1
        FROM stg.orders AS o
        WHERE o.customer_key = b.customer_key AND o.order_id = b.order_id
    );
{%- endcall %}

-- Fresh statistics for the features stage's plan.
{{ versions.analyze_after_full_refresh('stg.orders') }}
