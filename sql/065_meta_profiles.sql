{%- import 'macros/versions.sql' as versions -%}
-- Profiles what this run saw into meta.profiles, for the report and for drift between runs:
--   batch:    the orders this run staged from its new files (stg.model_orders; every
--             order on a full refresh): rows, null and distinct counts per column, the
--             amount's quantiles and bins, the status distribution
--   features: the version's feature rows (as this run leaves them, before publishing),
--             by split: null rates, quantiles, PSI bins and histograms, on a repeatable
--             sample of about profile.sample_rows rows when there are more
--   labels:   with labels, the version's label outcomes by split (positive, censored)
-- grain: meta.profiles one row per (subject, column, split) for this run
-- requires: 037_model_orders.sql, 050, 055, 060 (the version's rows), V014__create_profiles.sql
-- settings: raw_to_ready.run_id (and those of sql/macros/versions.sql)
-- Quantiles are percentile_disc (values that occur). The PSI bins are the distinct deciles
-- (p10 .. p90) as edges; a later run counts its own values in these same bins.
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
    the share that leaves about sample_rows of this version's rows (060 counted them). #}
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
-- work: 066 counts it in the baseline's bins; 070 empties it once the version is published.
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

-- Quantiles per column, per split and over all splits (a feature's 'all' row is the sum
-- of its splits; the batch has no split).
CREATE TEMPORARY TABLE profile_quantiles ON COMMIT DROP AS
SELECT
    v.subject,
    v.column_name,
    CASE WHEN grouping(v.split) = 1 THEN 'all' ELSE v.split END AS split,
    count(*) AS profiled_row_count,
    count(*) FILTER (WHERE v.measure IS NULL) AS null_count,
    count(DISTINCT v.measure) AS distinct_count,
    percentile_disc(ARRAY[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]::float8[])
    WITHIN GROUP (ORDER BY v.measure) AS quantiles,
    percentile_disc(0.99) WITHIN GROUP (ORDER BY v.measure) AS p99
FROM work.profile_values AS v
GROUP BY GROUPING SETS ((v.subject, v.column_name, v.split), (v.subject, v.column_name))
HAVING grouping(v.split) = 1 OR v.subject = 'features';

-- The bins, from the 'all' row: PSI edges (distinct deciles) and histogram edges (equal
-- widths from the minimum to the 99th percentile; whole numbers get a bin each when there
-- are at most 20 of them). The last histogram bin also holds what lies above its edge.
CREATE TEMPORARY TABLE profile_bins ON COMMIT DROP AS
SELECT
    q.subject,
    q.column_name,
    array(
        SELECT DISTINCT d.edge
        FROM unnest(q.quantiles[2:10]) AS d (edge)
        WHERE d.edge IS NOT NULL
        ORDER BY d.edge
    ) AS psi_edges,
    CASE
        WHEN q.quantiles[1] IS NULL THEN NULL
        WHEN q.p99 = q.quantiles[1] THEN ARRAY[q.quantiles[1] - 0.5, q.quantiles[1] + 0.5]
        WHEN
            q.p99 - q.quantiles[1] < 20
            AND q.p99 = trunc(q.p99) AND q.quantiles[1] = trunc(q.quantiles[1])
            THEN array(
                    SELECT q.quantiles[1] - 0.5 + i
                    FROM generate_series(0, (q.p99 - q.quantiles[1])::integer + 1) AS i
                )
        ELSE array(
                SELECT q.quantiles[1] + (q.p99 - q.quantiles[1]) * i / 20
                FROM generate_series(0, 20) AS i
            )
    END AS histogram_edges
FROM profile_quantiles AS q
WHERE q.split = 'all';

-- Rows per bin, zero-filled: PSI bins over the whole column, histogram bins per split.
CREATE TEMPORARY TABLE profile_bin_counts ON COMMIT DROP AS
WITH binned AS (
    SELECT
        v.subject,
        v.column_name,
        v.split,
        width_bucket(v.measure, b.psi_edges) AS psi_bin,
        least(
            greatest(width_bucket(v.measure, b.histogram_edges), 1),
            cardinality(b.histogram_edges) - 1
        ) AS histogram_bin
    FROM work.profile_values AS v
    INNER JOIN profile_bins AS b
        ON v.subject = b.subject AND v.column_name = b.column_name
    WHERE v.measure IS NOT NULL
),

psi_counted AS (
    SELECT
        n.subject,
        n.column_name,
        n.psi_bin,
        count(*) AS row_count
    FROM binned AS n
    GROUP BY n.subject, n.column_name, n.psi_bin
),

histogram_counted AS (
    SELECT
        n.subject,
        n.column_name,
        CASE WHEN grouping(n.split) = 1 THEN 'all' ELSE n.split END AS split,
        n.histogram_bin,
        count(*) AS row_count
    FROM binned AS n
    GROUP BY
        GROUPING SETS (
            (n.subject, n.column_name, n.split, n.histogram_bin), (n.subject, n.column_name, n.histogram_bin)
        )
    HAVING grouping(n.split) = 1 OR n.subject = 'features'
),

psi AS (
    SELECT
        b.subject,
        b.column_name,
        array_agg(coalesce(c.row_count, 0) ORDER BY i.bin) AS psi_counts
    FROM profile_bins AS b
    CROSS JOIN LATERAL generate_series(0, cardinality(b.psi_edges)) AS i (bin)
    LEFT JOIN psi_counted AS c
        ON b.subject = c.subject AND b.column_name = c.column_name AND i.bin = c.psi_bin
    GROUP BY b.subject, b.column_name
),

histogram AS (
    SELECT
        q.subject,
        q.column_name,
        q.split,
        array_agg(coalesce(c.row_count, 0) ORDER BY i.bin) AS histogram_counts
    FROM profile_quantiles AS q
    INNER JOIN profile_bins AS b ON q.subject = b.subject AND q.column_name = b.column_name
    CROSS JOIN LATERAL generate_series(1, cardinality(b.histogram_edges) - 1) AS i (bin)
    LEFT JOIN histogram_counted AS c
        ON q.subject = c.subject AND q.column_name = c.column_name AND q.split = c.split AND i.bin = c.histogram_bin
    GROUP BY q.subject, q.column_name, q.split
)

SELECT
    h.subject,
    h.column_name,
    h.split,
    h.histogram_counts,
    CASE WHEN h.split = 'all' THEN p.psi_counts END AS psi_counts
FROM histogram AS h
INNER JOIN psi AS p ON h.subject = p.subject AND h.column_name = p.column_name;

-- The batch: exact counts over every order it staged.
INSERT INTO meta.profiles (
    run_id, subject, column_name, split, row_count, profiled_row_count, null_count, distinct_count,
    quantiles, psi_edges, psi_counts, histogram_edges, histogram_counts, value_counts
)
WITH -- a hash aggregate, not count(DISTINCT ...)'s sort
customers AS (
    SELECT count(*) AS customer_id_distinct
    FROM (
        SELECT DISTINCT m.customer_id
        FROM stg.model_orders AS m
        WHERE m.customer_id IS NOT NULL
    ) AS d
),

statuses AS (
    SELECT
        count(DISTINCT o.status) AS status_distinct,
        coalesce(jsonb_object_agg(o.status, o.orders) FILTER (WHERE o.status IS NOT NULL), '{}') AS status_counts
    FROM (
        SELECT
            m.status,
            count(*) AS orders
        FROM stg.model_orders AS m
        GROUP BY m.status
    ) AS o
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    'batch' AS subject,
    c.column_name,
    'all' AS split,
    b.row_count,
    b.row_count AS profiled_row_count,
    c.null_count,
    c.distinct_count,
    NULL::numeric[] AS quantiles,
    NULL::numeric[] AS psi_edges,
    NULL::bigint[] AS psi_counts,
    NULL::numeric[] AS histogram_edges,
    NULL::bigint[] AS histogram_counts,
    c.value_counts
FROM profile_batch_counts AS b
CROSS JOIN customers AS u
CROSS JOIN statuses AS s
CROSS JOIN LATERAL (
    VALUES
    ('order_id', b.order_id_nulls, NULL::bigint, NULL::jsonb),
    ('customer_id', b.customer_id_nulls, u.customer_id_distinct, NULL::jsonb),
    ('order_at', b.order_at_nulls, NULL::bigint, NULL::jsonb),
    ('status', b.status_nulls, s.status_distinct, s.status_counts)
) AS c (column_name, null_count, distinct_count, value_counts);

-- The numbers: the batch's amount and every feature, per split and over all.
INSERT INTO meta.profiles (
    run_id, subject, column_name, split, row_count, profiled_row_count, null_count, distinct_count,
    quantiles, psi_edges, psi_counts, histogram_edges, histogram_counts
)
WITH sampled AS (
    SELECT count(*) AS profiled_row_count
    FROM profile_feature_rows
),

-- every feature row of the version has a place in the splits (060 counted them)
version_rows AS (
    SELECT sum(c.row_count + c.gap_row_count + c.purged_row_count) AS row_count
    FROM meta.split_cutoffs AS c
    WHERE c.run_id = current_setting('raw_to_ready.run_id')
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    q.subject,
    q.column_name,
    q.split,
    CASE
        WHEN q.subject = 'batch' THEN batch.row_count
        -- a feature's rows in the version: the split's share of the sample, scaled
        WHEN q.split = 'all' THEN version_rows.row_count
        ELSE round(version_rows.row_count * q.profiled_row_count / greatest(sampled.profiled_row_count, 1))
    END AS row_count,
    q.profiled_row_count,
    CASE WHEN q.subject = 'batch' THEN batch.amount_nulls ELSE q.null_count END AS null_count,
    q.distinct_count,
    q.quantiles,
    CASE WHEN q.split = 'all' THEN b.psi_edges END AS psi_edges,
    n.psi_counts,
    b.histogram_edges,
    n.histogram_counts
FROM profile_quantiles AS q
INNER JOIN profile_bins AS b ON q.subject = b.subject AND q.column_name = b.column_name
LEFT JOIN profile_bin_counts AS n
    ON q.subject = n.subject AND q.column_name = n.column_name AND q.split = n.split
CROSS JOIN sampled
CROSS JOIN version_rows
CROSS JOIN profile_batch_counts AS batch;
{%- if labels %}

-- The label's outcomes by split, censored rows apart (their label is not known yet).
INSERT INTO meta.profiles (
    run_id, subject, column_name, split, row_count, profiled_row_count, null_count, value_counts
)
SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    'labels' AS subject,
    {{ label_columns[1][0] | literal }} AS column_name,
    coalesce(g.split, 'all') AS split,
    g.profiled_row_count AS row_count,
    g.profiled_row_count,
    g.null_count,
    jsonb_build_object('positive', g.positive, 'negative', g.negative, 'censored', g.censored) AS value_counts
FROM (
    SELECT
        f.split,
        count(*) AS profiled_row_count,
        count(*) FILTER (WHERE l.customer_id IS NULL) AS null_count,
        count(*) FILTER (WHERE l.{{ label_columns[1][0] | ident }} AND NOT e.is_censored) AS positive,
        count(*) FILTER (WHERE NOT l.{{ label_columns[1][0] | ident }} AND NOT e.is_censored) AS negative,
        count(*) FILTER (WHERE e.is_censored) AS censored
    FROM profile_feature_rows AS f
    LEFT JOIN feats.customer_label_history AS l
        ON
            f.customer_id = l.customer_id
            AND f.feature_time = l.feature_time
            AND l.valid_to IS NULL
    CROSS JOIN
        LATERAL (
            SELECT
                coalesce(
                    f.feature_time + make_interval(days => {{ labels.horizon_days | literal }}) > o.observed_end, FALSE
                ) AS is_censored
            FROM work.label_observed_end AS o
        ) AS e
    GROUP BY GROUPING SETS ((f.split), ())
) AS g;
{%- endif %}
