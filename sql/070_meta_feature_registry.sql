-- Registers the run's feature set under a content-derived feature_version.
-- grain: one row per successful run
-- requires: 060_meta_dataset_splits.sql
-- settings: raw_to_ready.run_id, raw_to_ready.feature_version, raw_to_ready.git_commit,
--           raw_to_ready.config_sha256, raw_to_ready.sql_sha256, raw_to_ready.source_sha256
--           (JSON maps file -> sha256; the runner computes them from the rendered text)
INSERT INTO meta.feature_registry (
    run_id, feature_version, git_commit, config_sha256, sql_sha256, source_sha256,
    feature_columns, row_counts, split_cutoffs, validation_passed
)
SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    current_setting('raw_to_ready.feature_version') AS feature_version,
    nullif(current_setting('raw_to_ready.git_commit', TRUE), '') AS git_commit,
    current_setting('raw_to_ready.config_sha256')::jsonb AS config_sha256,
    current_setting('raw_to_ready.sql_sha256')::jsonb AS sql_sha256,
    current_setting('raw_to_ready.source_sha256')::jsonb AS source_sha256,
    (
        SELECT jsonb_agg(c.column_name ORDER BY c.ordinal_position)
        FROM information_schema.columns AS c
        WHERE c.table_schema = 'feats' AND c.table_name = 'customer_features'
    ) AS feature_columns,
    jsonb_build_object(
        'raw_events', (
            SELECT coalesce(sum(i.record_count), 0)
            FROM raw.ingested_files AS i
            WHERE i.file_sha256 = ANY({{ batch_file_sha256s | literal }}::text[])
        ),
        'stg_orders', (SELECT count(*) FROM stg.orders),
        'customer_features', (SELECT count(*) FROM feats.customer_features),
        'dataset_splits', (SELECT count(*) FROM meta.dataset_splits){{ "," if labels }}
        {%- if labels %}
        'customer_labels', (SELECT count(*) FROM feats.customer_labels),
        'training_set', (SELECT count(*) FROM feats.training_set)
        {%- endif %}
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
    ) AS validation_passed;
