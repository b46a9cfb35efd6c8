{%- import 'macros/versions.sql' as versions -%}
{%- import 'macros/entities.sql' as entities with context -%}
-- Staging's bookkeeping for incremental runs: what the derived layers must catch up with
-- (stg.order_changes) and which files stg.orders now holds (stg.staged_files).
-- grain: stg.order_changes one row per changed customer per version (one NULL-customer
--        row on a full refresh); stg.staged_files one row per file
-- requires: 40_stage/040_stg_orders.sql in the same transaction, V010__versioned_publishing.sql
-- writes: stg.order_changes, stg.staged_files
-- settings: raw_to_ready.run_id, raw_to_ready.definition_sha256, and those of
--           sql/macros/versions.sql (full_refresh, version_number, work_files,
--           removed_files)
-- Incremental (full_refresh off): the model ran over the new files only, and 037 made
-- sure none of their orders was staged already but from a removed file, so every model
-- order is new or changed (040 logged the removed files' side before they changed).

-- What the features, labels and splits must catch up with: on a full refresh everything
-- (a NULL customer), else each new order's customer from its instant on. Kept until the
-- version is published, so a run killed after this stage leaves it to the next run.
INSERT INTO stg.order_changes (version_number, customer_id, changed_at)
SELECT
    {{ versions.writing_version() }} AS version_number,
    NULL AS customer_id,
    NULL::timestamptz AS changed_at
WHERE {{ versions.full_refresh() }}
UNION ALL
SELECT
    {{ versions.writing_version() }} AS version_number,
    b.customer_id,
    min(b.order_at) AS changed_at
FROM stg.model_orders AS b
WHERE NOT {{ versions.full_refresh() }} AND b.customer_id IS NOT NULL
GROUP BY b.customer_id;
{{ entities.changes('stg.model_orders', 'TRUE') }}

-- The files whose orders stg.orders now holds, and under which definition.
DELETE FROM stg.staged_files AS s
WHERE
    {{ versions.full_refresh() }}
    OR s.file_sha256 = ANY({{ versions.removed_files() }});

-- Whether a file alone holds its orders (V012): a new file of an incremental run does
-- (037 stopped the run otherwise), and so does the only file of a full refresh; of
-- several files of a full refresh it is not known. And how many staged orders have it as
-- lineage: each model order was merged with its file as lineage (a full refresh stages
-- exactly the batch; an incremental run's orders are new or replace a removed file's).
INSERT INTO stg.staged_files (file_sha256, definition_sha256, staged_run_id, holds_only_its_orders, order_count)
WITH counts AS (
    SELECT
        b.file_sha256,
        count(*) AS order_count
    FROM stg.model_orders AS b
    GROUP BY b.file_sha256
)

SELECT
    f.file_sha256,
    current_setting('raw_to_ready.definition_sha256') AS definition_sha256,
    current_setting('raw_to_ready.run_id') AS staged_run_id,
    (
        NOT {{ versions.full_refresh() }}
        OR cardinality({{ versions.work_files() }}) = 1
    ) AS holds_only_its_orders,
    coalesce(c.order_count, 0) AS order_count
FROM unnest({{ versions.work_files() }}) AS f (file_sha256)
LEFT JOIN counts AS c ON f.file_sha256 = c.file_sha256
ON CONFLICT (file_sha256) DO UPDATE
    SET
        definition_sha256 = excluded.definition_sha256,
        staged_run_id = excluded.staged_run_id,
        holds_only_its_orders = excluded.holds_only_its_orders,
        order_count = excluded.order_count;
