{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/versions.sql' as versions -%}
-- Publishes the run's features, labels and splits as one version, and registers the run,
-- in one transaction: a reader sees the previous version or this one, never a mix.
-- grain: meta.feature_versions one row per published version; meta.feature_registry one
--        row per successful run
-- requires: 050, 055 and 060 (the rows of version raw_to_ready.version_number)
-- settings: raw_to_ready.run_id, raw_to_ready.feature_version, raw_to_ready.git_commit,
--           raw_to_ready.config_sha256, raw_to_ready.sql_sha256, raw_to_ready.source_sha256
--           (JSON maps file -> sha256; the runner computes them from the rendered text),
--           raw_to_ready.definition_sha256, and those of sql/macros/versions.sql
-- Views (the names users query; each shows the latest published version):
--   feats.customer_features, feats.customer_labels, meta.dataset_splits, feats.training_set
-- and, per retained version (WHERE feature_version = ...), the same names with _versions.
-- A run whose feature_version is the published one publishes nothing new (its rows are
-- the same, and an assertion proves it); the registry row names the version it found.
-- Retention keeps the last retention.versions versions queryable; older ones are marked
-- dropped in meta.feature_versions and the rows only they held are deleted.
{%- set feature_names = feature_columns | map('first') | list %}
{%- set label_names = label_columns | map('first') | list %}
{#- the label values (not label_window_end), shown NULL while censored in the version -#}
{%- set label_values = label_names[1:] %}

{%- set features_body %}
SELECT
    h.customer_id,
    h.feature_time,
{%- for name in feature_names %}
    h.{{ name | ident }}{{ "," if not loop.last }}
{%- endfor %}
FROM feats.customer_feature_history AS h
WHERE {{ versions.in_version('h', versions.current_version()) }}
{%- endset %}

{%- set features_versions_body %}
SELECT
    v.feature_version,
    v.version_number,
    h.customer_id,
    h.feature_time,
{%- for name in feature_names %}
    h.{{ name | ident }}{{ "," if not loop.last }}
{%- endfor %}
FROM meta.feature_versions AS v
INNER JOIN feats.customer_feature_history AS h
    ON {{ versions.in_version('h', 'v.version_number') }}
WHERE
    v.dropped_at IS NULL
    -- a feature_version published twice (back to earlier data) is its latest version
    AND v.version_number = (
        SELECT max(w.version_number) FROM meta.feature_versions AS w WHERE w.feature_version = v.feature_version
    )
{%- endset %}

{%- set splits_body %}
SELECT
    h.customer_id,
    h.feature_time,
    h.split,
    -- the run that assigned the row this split
    v.run_id
FROM meta.dataset_split_history AS h
INNER JOIN meta.feature_versions AS v ON h.valid_from = v.version_number
WHERE
    h.split IN ('train', 'val', 'test')
    AND {{ versions.in_version('h', versions.current_version()) }}
{%- endset %}

{%- set splits_versions_body %}
SELECT
    v.feature_version,
    v.version_number,
    h.customer_id,
    h.feature_time,
    h.split
FROM meta.feature_versions AS v
INNER JOIN meta.dataset_split_history AS h
    ON {{ versions.in_version('h', 'v.version_number') }}
WHERE
    h.split IN ('train', 'val', 'test')
    AND v.dropped_at IS NULL
    AND v.version_number = (
        SELECT max(w.version_number) FROM meta.feature_versions AS w WHERE w.feature_version = v.feature_version
    )
{%- endset %}

{#- A row is censored in a version when its label window ends after the version's observed
    end (V013): its labels are NULL there. `end_at` is that end (for the current view a
    scalar subquery, computed once, so the planner keeps its row estimates). -#}
{%- macro label_select(end_at) %}
    h.customer_id,
    h.feature_time,
    h.label_window_end,
    h.label_window_end > {{ end_at }} AS is_censored,
{%- for name in label_values %}
    CASE WHEN h.label_window_end <= {{ end_at }} THEN h.{{ name | ident }} END AS {{ name | ident }}
{{- "," if not loop.last }}
{%- endfor %}
{%- endmacro %}

{%- set labels_body %}
SELECT
{{- label_select('(SELECT v.observed_end FROM meta.feature_versions AS v WHERE v.version_number = '
    ~ versions.current_version() ~ ')') }}
FROM feats.customer_label_history AS h
WHERE {{ versions.in_version('h', versions.current_version()) }}
{%- endset %}

{%- set labels_versions_body %}
SELECT
    v.feature_version,
    v.version_number,
{{- label_select('v.observed_end') }}
FROM meta.feature_versions AS v
INNER JOIN feats.customer_label_history AS h
    ON {{ versions.in_version('h', 'v.version_number') }}
WHERE
    v.dropped_at IS NULL
    AND v.version_number = (
        SELECT max(w.version_number) FROM meta.feature_versions AS w WHERE w.feature_version = v.feature_version
    )
{%- endset %}

{%- set training_columns %}
    f.customer_id,
    f.feature_time,
{%- for name in feature_names %}
    f.{{ name | ident }},
{%- endfor %}
{%- for name in label_values %}
    l.{{ name | ident }},
{%- endfor %}
    s.split,
{%- endset %}

{%- set training_body %}
SELECT
{{- training_columns }}
    v.feature_version
FROM feats.customer_features AS f
INNER JOIN feats.customer_labels AS l
    ON f.customer_id = l.customer_id AND f.feature_time = l.feature_time
INNER JOIN meta.dataset_splits AS s
    ON f.customer_id = s.customer_id AND f.feature_time = s.feature_time
INNER JOIN meta.feature_versions AS v
    ON v.version_number = {{ versions.current_version() }}
WHERE NOT l.is_censored
{%- endset %}

{%- set training_versions_body %}
SELECT
{{- training_columns }}
    f.feature_version,
    f.version_number
FROM feats.customer_features_versions AS f
INNER JOIN feats.customer_labels_versions AS l
    ON f.version_number = l.version_number AND f.customer_id = l.customer_id AND f.feature_time = l.feature_time
INNER JOIN meta.dataset_splits_versions AS s
    ON f.version_number = s.version_number AND f.customer_id = s.customer_id AND f.feature_time = s.feature_time
WHERE NOT l.is_censored
{%- endset %}

{{ versions.index_friendly() }}

-- The views, created or replaced only when their definition changed.
{{ versions.ensure_view('feats.customer_features', features_body,
    'Point-in-time customer features of the latest published version: one row per customer and order instant. '
    ~ 'See sql/050_feats_customer_features.sql for the definitions.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ versions.ensure_view('feats.customer_features_versions', features_versions_body,
    'feats.customer_features in every retained version: filter on feature_version.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ versions.ensure_view('meta.dataset_splits', splits_body,
    'The split of every feature row kept (train, val, test) in the latest published version. '
    ~ 'See sql/060_meta_dataset_splits.sql.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ versions.ensure_view('meta.dataset_splits_versions', splits_versions_body,
    'meta.dataset_splits in every retained version: filter on feature_version.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}
{%- if labels %}

{{ versions.ensure_view('feats.customer_labels', labels_body,
    'Forward-looking labels per feature row of the latest published version; NULL when censored. '
    ~ 'See sql/055_feats_customer_labels.sql for the definitions.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ versions.ensure_view('feats.customer_labels_versions', labels_versions_body,
    'feats.customer_labels in every retained version: filter on feature_version.',
    dependents=['feats.training_set_versions', 'feats.training_set']) }}

{{ versions.ensure_view('feats.training_set', training_body,
    'One row per labelled feature row kept in a split: features, labels, split, feature_version '
    ~ '(the latest published version).',
    dependents=['feats.training_set_versions']) }}

{{ versions.ensure_view('feats.training_set_versions', training_versions_body,
    'feats.training_set in every retained version: filter on feature_version.') }}
{%- else %}

-- No labels in this config: no label or training-set views.
DROP VIEW IF EXISTS feats.training_set_versions;
DROP VIEW IF EXISTS feats.training_set;
DROP VIEW IF EXISTS feats.customer_labels_versions;
DROP VIEW IF EXISTS feats.customer_labels;
{%- endif %}

-- The same feature_version as the published one means the same rows: prove it, and
-- publish nothing new.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM meta.feature_versions AS v
        WHERE
            v.version_number = {{ versions.published() }}
            AND v.feature_version = current_setting('raw_to_ready.feature_version')
    ) AND (
        EXISTS (SELECT 1 FROM feats.customer_feature_history AS h WHERE h.valid_from = {{ versions.version() }})
        OR EXISTS (SELECT 1 FROM meta.dataset_split_history AS h WHERE h.valid_from = {{ versions.version() }})
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

INSERT INTO meta.feature_versions (version_number, feature_version, run_id, definition_sha256, observed_end)
SELECT
    {{ versions.version() }} AS version_number,
    current_setting('raw_to_ready.feature_version') AS feature_version,
    current_setting('raw_to_ready.run_id') AS run_id,
    current_setting('raw_to_ready.definition_sha256') AS definition_sha256,
    {{ counted.observed_end(labels) if labels else 'NULL::timestamptz' }} AS observed_end
WHERE NOT EXISTS (
        SELECT 1
        FROM meta.feature_versions AS v
        WHERE
            v.version_number = {{ versions.published() }}
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
    WHERE r.version_number = {{ versions.published() }}
    ORDER BY r.created_at DESC
    LIMIT 1
),

changes AS (
    SELECT
        'customer_features' AS counted,
        (
            SELECT count(*) FROM feats.customer_feature_history AS h
            WHERE h.valid_from = {{ versions.version() }}
        ) - (
            SELECT count(*) FROM feats.customer_feature_history AS h
            WHERE h.valid_to = {{ versions.version() }}
        ) AS delta
    UNION ALL
    SELECT
        'dataset_splits' AS counted,
        (
            SELECT count(*)
            FROM meta.dataset_split_history AS h
            WHERE h.valid_from = {{ versions.version() }} AND h.split IN ('train', 'val', 'test')
        ) - (
            SELECT count(*)
            FROM meta.dataset_split_history AS h
            WHERE h.valid_to = {{ versions.version() }} AND h.split IN ('train', 'val', 'test')
        ) AS delta
    {%- if labels %}
    UNION ALL
    SELECT
        'customer_labels' AS counted,
        (
            SELECT count(*) FROM feats.customer_label_history AS h
            WHERE h.valid_from = {{ versions.version() }}
        ) - (
            SELECT count(*) FROM feats.customer_label_history AS h
            WHERE h.valid_to = {{ versions.version() }}
        ) AS delta
    {%- endif %}
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
    jsonb_strip_nulls(jsonb_build_object(
        'raw_events', (
            SELECT coalesce(sum(i.record_count), 0)
            FROM raw.ingested_files AS i
            WHERE i.file_sha256 = ANY({{ batch_file_sha256s | literal }}::text[])
        ),
        -- each staged order has one file as lineage (V012): no scan of stg.orders
        'stg_orders', (SELECT coalesce(sum(s.order_count), 0) FROM stg.staged_files AS s),
        -- with labels (else NULL, left out): every feature row has labels and a split row,
        -- so the training set is the kept, uncensored split rows, which 060 counted
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
    {{ versions.current_version() }} AS version_number;

-- Retention: the last retention.versions versions stay; the rows only older ones held go.
UPDATE meta.feature_versions AS v
SET dropped_at = now()
WHERE
    v.dropped_at IS NULL
    AND v.version_number <= {{ versions.current_version() }} - {{ retention.versions | literal }};

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
WHERE version_number <= {{ versions.version() }};

-- The run's scratch is spent once its version is published. Emptied here, so that the next
-- run does not pay for it: dropping a full refresh's scratch unlinks its files when the
-- dropping transaction commits (about 0.2 s per table of 10M rows). A run that stops
-- earlier (make model, make features) leaves it to look at.
TRUNCATE stg.model_orders, work.feature_scope, work.feature_rows, work.split_scope, work.split_rows,
work.profile_values
{%- if labels %}, work.label_scope, work.label_rows{% endif %};
