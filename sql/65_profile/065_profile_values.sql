{%- import 'macros/versions.sql' as versions -%}
-- The profile stage profiles what this run saw, for the report and for drift between runs
-- (65_profile/069); this file gathers the numbers to profile, 066 bins them and 067 writes
-- meta.profiles:
--   batch:    the orders this run staged from its new files (stg.model_orders; every
--             order on a full refresh): rows, null and distinct counts per column, the
--             amount's quantiles and bins, the status distribution
--   features: the version's feature rows (as this run leaves them, before publishing),
--             by split: null rates, quantiles, PSI bins and histograms, on a repeatable
--             sample of about profile.sample_rows rows when there are more
--   labels:   with labels, the version's label outcomes by split (positive, censored)
-- grain: work.profile_values one row per profiled number (subject, column, split, measure);
--        the temporary tables profile_feature_rows (the sampled feature rows) and
--        profile_batch_counts (one row)
-- requires: 37_model/037_model_orders.sql (stg.model_orders), 50_features/050,
--           55_labels/055, 60_splits/062 (the version's rows), V014__create_profiles.sql
-- writes: meta.profiles, work.profile_values
-- settings: raw_to_ready.run_id (and those of sql/macros/versions.sql)
SELECT meta.set_run_setting('work_mem', '256MB');
-- the sample's split and label rows are looked up by key, not scanned for
{{ versions.index_friendly() }}

DELETE FROM meta.profiles
WHERE run_id = current_setting('raw_to_ready.run_id');

-- The share of the feature history's pages to sample: about sample_rows rows (reltuples is
-- -1 before the table's first ANALYZE: then every page).
SELECT meta.set_run_setting(
    'raw_to_ready.profile_sample_percent',
    (
        SELECT
            CASE
                WHEN c.reltuples > 0 THEN least(100, 100.0 * {{ profile.sample_rows | literal }} / c.reltuples)
                ELSE 100
            END
        FROM pg_catalog.pg_class AS c
        WHERE c.oid = 'feats.customer_feature_history'::regclass
    )::text
);

{%- if distribution %}
{#- Citus: the coordinator's table is an empty shell (its reltuples say nothing) and a
    function cannot read shards: a repeatable sample of the rows by a hash of their key, of
    the share that leaves about sample_rows of this version's rows (60_splits/064 counted them). #}
{%- set sampled_history = 'feats.customer_feature_history' %}
{%- set in_sample -%}
(hashtextextended(f.customer_id || ' ' || f.feature_time::text, 0) & 1048575) < 1048576 * (
        SELECT
            least(
                1, {{ profile.sample_rows | literal }}::float8
                / greatest(sum(c.row_count + c.gap_row_count + c.purged_row_count), 1)
            )
        FROM meta.split_cutoffs AS c
        WHERE c.run_id = current_setting('raw_to_ready.run_id')
    )
{%- endset %}
{%- else %}
{%- set sampled_history = "pg_temp.feature_history_sample("
    ~ "current_setting('raw_to_ready.profile_sample_percent')::float4)" %}
{%- set in_sample = 'TRUE' %}
-- A repeatable sample of the history's pages (a function: sqlfluff cannot parse TABLESAMPLE).
CREATE OR REPLACE FUNCTION pg_temp.feature_history_sample(sample_percent float4)
RETURNS SETOF feats.customer_feature_history
LANGUAGE sql STABLE
AS $$
    SELECT * FROM feats.customer_feature_history TABLESAMPLE SYSTEM (sample_percent) REPEATABLE (0)
$$;
{%- endif %}

-- The feature rows of this version: every current row, or a repeatable sample of the
-- history's pages when the table holds many more rows than sample_rows.
CREATE TEMPORARY TABLE profile_feature_rows ON COMMIT DROP AS
SELECT
    f.customer_id,
    f.feature_time,
    {%- for column, _ in feature_columns %}
    f.{{ column | ident }},
    {%- endfor %}
    coalesce(s.split, 'none') AS split
FROM {{ sampled_history }} AS f
LEFT JOIN meta.dataset_split_history AS s
    ON
        f.customer_id = s.customer_id
        AND f.feature_time = s.feature_time
        AND s.valid_to IS NULL
WHERE f.valid_to IS NULL AND {{ in_sample }};

ANALYZE profile_feature_rows;

-- The batch's rows and nulls per column, exact (one scan).
CREATE TEMPORARY TABLE profile_batch_counts ON COMMIT DROP AS
SELECT
    count(*) AS row_count,
    count(*) FILTER (WHERE o.order_id IS NULL) AS order_id_nulls,
    count(*) FILTER (WHERE o.customer_id IS NULL) AS customer_id_nulls,
    count(*) FILTER (WHERE o.order_at IS NULL) AS order_at_nulls,
    count(*) FILTER (WHERE o.amount IS NULL) AS amount_nulls,
    count(*) FILTER (WHERE o.status IS NULL) AS status_nulls
FROM stg.model_orders AS o;

-- The share of the batch's orders whose amounts are profiled (quantiles, bins): every order
-- up to sample_rows, else a sample of about that many, by a hash of the order id (an order
-- is always in or always out).
SELECT meta.set_run_setting(
    'raw_to_ready.profile_batch_share',
    (
        SELECT least(1, {{ profile.sample_rows | literal }}::float8 / greatest(c.row_count, 1))
        FROM profile_batch_counts AS c
    )::text
);

-- Every profiled number in one long table: (subject, column, split, measure). Scratch, in
-- work: 066 bins it, 069 counts it in the baseline's bins, 70_registry/079 empties it once
-- the version is published.
TRUNCATE work.profile_values;

INSERT INTO work.profile_values (subject, column_name, split, measure)
SELECT
    'batch' AS subject,
    'amount' AS column_name,
    'all' AS split,
    o.amount::numeric AS measure
FROM stg.model_orders AS o
WHERE
    current_setting('raw_to_ready.profile_batch_share')::float8 >= 1
    OR (hashtextextended(o.order_id, 0) & 1048575)
    < 1048576 * current_setting('raw_to_ready.profile_batch_share')::float8
UNION ALL
SELECT
    'features' AS subject,
    v.column_name,
    f.split,
    v.measure
FROM profile_feature_rows AS f
CROSS JOIN LATERAL (
    VALUES
    {%- for column, _ in feature_columns %}
    ({{ column | literal }}, f.{{ column | ident }}::numeric){{ "," if not loop.last }}
    {%- endfor %}
) AS v (column_name, measure);
