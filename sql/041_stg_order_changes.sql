{%- import 'macros/versions.sql' as versions -%}
-- Staging's bookkeeping for incremental runs: what the derived layers must catch up with
-- (stg.order_changes) and which files stg.orders now holds (stg.staged_files).
-- grain: stg.order_changes one row per changed customer per version (one NULL-customer
--        row on a full refresh); stg.staged_files one row per file
-- requires: 040_stg_orders.sql in the same transaction, V010__versioned_publishing.sql
-- settings: raw_to_ready.run_id, raw_to_ready.definition_sha256, and those of
--           sql/macros/versions.sql
-- Incremental (full_refresh off): the model ran over the new files only, and 037 made
-- sure none of their orders was staged already, so every model order is a new one.

-- What the features, labels and splits must catch up with: on a full refresh everything
-- (a NULL customer), else each new order's customer from its instant on. Kept until the
-- version is published, so a run killed after this stage leaves it to the next run.
INSERT INTO stg.order_changes (version_number, customer_id, changed_at)
SELECT
    {{ versions.version() }} AS version_number,
    NULL AS customer_id,
    NULL::timestamptz AS changed_at
WHERE {{ versions.full_refresh() }}
UNION ALL
SELECT
    {{ versions.version() }} AS version_number,
    b.customer_id,
    min(b.order_at) AS changed_at
FROM stg.model_orders AS b
WHERE NOT {{ versions.full_refresh() }} AND b.customer_id IS NOT NULL
GROUP BY b.customer_id;

-- The files whose orders stg.orders now holds, and under which definition.
DELETE FROM stg.staged_files
WHERE {{ versions.full_refresh() }};

INSERT INTO stg.staged_files (file_sha256, definition_sha256, staged_run_id)
SELECT
    f.file_sha256,
    current_setting('raw_to_ready.definition_sha256') AS definition_sha256,
    current_setting('raw_to_ready.run_id') AS staged_run_id
FROM unnest({{ versions.work_files() }}) AS f (file_sha256)
ON CONFLICT (file_sha256) DO UPDATE
    SET
        definition_sha256 = excluded.definition_sha256,
        staged_run_id = excluded.staged_run_id;
