{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/versions.sql' as versions -%}
-- The registry stage publishes the run's features, labels and splits as one version, and
-- registers the run, in one transaction: a reader sees the previous version or this one,
-- never a mix. This file publishes the version, registers the run and applies the
-- retention; 072 (re)creates the views that show it, 079 empties the run's scratch.
-- grain: meta.feature_versions one row per published version; meta.feature_registry one
--        row per successful run
-- requires: 50_features/050, 55_labels/055 and 60_splits/062 (the rows of version
--           raw_to_ready.version_number), 60_splits/064 (this run's meta.split_cutoffs)
-- writes: meta.feature_versions, meta.feature_registry, feats.customer_feature_history,
--         meta.dataset_split_history, feats.customer_label_history, stg.order_changes
-- settings: raw_to_ready.run_id, raw_to_ready.feature_version, raw_to_ready.git_commit,
--           raw_to_ready.config_sha256, raw_to_ready.sql_sha256, raw_to_ready.source_sha256
--           (JSON maps file -> sha256; the runner computes them from the rendered text),
--           raw_to_ready.definition_sha256, and those of sql/macros/versions.sql
-- A run whose feature_version is the published one publishes nothing new (its rows are
-- the same, and an assertion proves it); the registry row names the version it found.
-- Retention keeps the last retention.versions versions queryable; older ones are marked
-- dropped in meta.feature_versions and the rows only they held are deleted.
{#- A published name's change in rows: what this version added to `table` less what it
    closed (index lookups; no scan of the published rows); `kept` limits the rows counted. -#}
{%- macro delta(counted, table, kept='') %}
    SELECT
        {{ counted | literal }} AS counted,
        (
            SELECT count(*)
            FROM {{ table }} AS h
            WHERE h.valid_from = {{ versions.writing_version() }}{{ kept }}
        ) - (
            SELECT count(*)
            FROM {{ table }} AS h
            WHERE h.valid_to = {{ versions.writing_version() }}{{ kept }}
        ) AS delta
{%- endmacro %}
{{ versions.index_friendly() }}

-- The same feature_version as the published one means the same rows: prove it, and
-- publish nothing new.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM meta.feature_versions AS v
        WHERE
            v.version_number = {{ versions.published_version() }}
            AND v.feature_version = current_setting('raw_to_ready.feature_version')
    ) AND (
        EXISTS (SELECT 1 FROM feats.customer_feature_history AS h WHERE h.valid_from = {{ versions.writing_version() }})
        OR EXISTS (SELECT 1 FROM meta.dataset_split_history AS h WHERE h.valid_from = {{ versions.writing_version() }})
    ) THEN
        RAISE EXCEPTION 'registry: this run changed rows but its feature_version % is the published one',
            current_setting('raw_to_ready.feature_version')
            USING HINT = 'the SQL is not deterministic; please report it';
    END IF;
END
$$;

-- Publish: from this row on, the views show the new version.
{%- if labels %}
SELECT meta.set_run_setting('timezone', {{ staging.source_timezone | literal }});
{%- endif %}

-- rows: the version published (none when nothing changed)
INSERT INTO meta.feature_versions (version_number, feature_version, run_id, definition_sha256, observed_end)
SELECT
    {{ versions.writing_version() }} AS version_number,
    current_setting('raw_to_ready.feature_version') AS feature_version,
    current_setting('raw_to_ready.run_id') AS run_id,
    current_setting('raw_to_ready.definition_sha256') AS definition_sha256,
    {{ counted.observed_end(labels) if labels else 'NULL::timestamptz' }} AS observed_end
WHERE NOT EXISTS (
        SELECT 1
        FROM meta.feature_versions AS v
        WHERE
            v.version_number = {{ versions.published_version() }}
            AND v.feature_version = current_setting('raw_to_ready.feature_version')
    );

-- Row counts: the previous version's plus the rows this version added, less those it
-- closed (index lookups; no scan of the published rows).
INSERT INTO meta.feature_registry (
    run_id, feature_version, git_commit, config_sha256, sql_sha256, source_sha256,
    feature_columns, row_counts, split_cutoffs, validation_passed, version_number
)
WITH previous AS (
    SELECT r.row_counts
    FROM meta.feature_registry AS r
    WHERE r.version_number = {{ versions.published_version() }}
    ORDER BY r.created_at DESC
    LIMIT 1
),

changes AS (
    {{- delta('customer_features', 'feats.customer_feature_history') }}
    UNION ALL
    {{- delta('dataset_splits', 'meta.dataset_split_history', " AND h.split IN ('train', 'val', 'test')") }}
    {%- if labels %}
    UNION ALL
    {{- delta('customer_labels', 'feats.customer_label_history') }}
    {%- endif %}
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    current_setting('raw_to_ready.feature_version') AS feature_version,
    nullif(current_setting('raw_to_ready.git_commit', TRUE), '') AS git_commit,
    current_setting('raw_to_ready.config_sha256')::jsonb AS config_sha256,
    current_setting('raw_to_ready.sql_sha256')::jsonb AS sql_sha256,
    current_setting('raw_to_ready.source_sha256')::jsonb AS source_sha256,
    -- the columns of feats.customer_features (70_registry/072), in order
    to_jsonb({{ (['customer_id', 'feature_time'] + (feature_columns | map('first') | list)) | literal }}::text[])
        AS feature_columns,
    jsonb_strip_nulls(jsonb_build_object(
        'raw_events', (
            SELECT coalesce(sum(i.record_count), 0)
            FROM raw.ingested_files AS i
            WHERE i.file_sha256 = ANY({{ batch_file_sha256s | literal }}::text[])
        ),
        -- each staged order has one file as lineage (V012): no scan of stg.orders
        'stg_orders', (SELECT coalesce(sum(s.order_count), 0) FROM stg.staged_files AS s),
        -- with labels (else NULL, left out): every feature row has labels and a split row,
        -- so the training set is the kept, uncensored split rows, which 60_splits/064 counted
        'training_set', (
            SELECT sum(s.row_count - s.censored_row_count)
            FROM meta.split_cutoffs AS s
            WHERE {{ 'TRUE' if labels else 'FALSE' }} AND s.run_id = current_setting('raw_to_ready.run_id')
        )
    )) || (
        SELECT
            jsonb_object_agg(
                c.counted,
                coalesce((SELECT (p.row_counts ->> c.counted)::bigint FROM previous AS p), 0) + c.delta
            )
        FROM changes AS c
    ) AS row_counts,
    (
        SELECT
            coalesce(
                jsonb_agg(to_jsonb(s) - 'run_id' ORDER BY array_position(ARRAY['train', 'val', 'test'], s.split)),
                '[]'
            )
        FROM meta.split_cutoffs AS s
        WHERE s.run_id = current_setting('raw_to_ready.run_id')
    ) AS split_cutoffs,
    NOT EXISTS (
        SELECT 1
        FROM meta.validation_results AS v
        WHERE v.run_id = current_setting('raw_to_ready.run_id') AND v.status = 'fail'
    ) AS validation_passed,
    {{ versions.latest_published_version() }} AS version_number;

-- Retention: the last retention.versions versions stay; the rows only older ones held go.
UPDATE meta.feature_versions AS v
SET dropped_at = now()
WHERE
    v.dropped_at IS NULL
    AND v.version_number <= {{ versions.latest_published_version() }} - {{ retention.versions | literal }};

{%- for table in ['feats.customer_feature_history', 'meta.dataset_split_history']
    + (['feats.customer_label_history'] if labels else []) %}

DELETE FROM {{ table }} AS h
WHERE h.valid_to <= (
        SELECT min(v.version_number) FROM meta.feature_versions AS v
        WHERE v.dropped_at IS NULL
    );
{%- endfor %}

-- The changes staging logged are in the published version now.
DELETE FROM stg.order_changes
WHERE version_number <= {{ versions.writing_version() }};
