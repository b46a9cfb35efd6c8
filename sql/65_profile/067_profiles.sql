-- Writes this run's profile to meta.profiles: the batch's columns, the batch's amount and
-- every feature (per split and over all), and with labels the label's outcomes by split.
-- grain: meta.profiles one row per (subject, column, split) for this run
-- requires: 65_profile/065_profile_values.sql and 066_profile_bins.sql in the same
--           transaction (their temporary tables), 60_splits/063_split_counts.sql
--           (meta.split_cutoffs), 55_labels/055 (work.label_observed_end)
-- writes: meta.profiles
-- settings: raw_to_ready.run_id
-- The batch: exact counts over every order it staged.
-- rows: profile rows
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
-- rows: profile rows
INSERT INTO meta.profiles (
    run_id, subject, column_name, split, row_count, profiled_row_count, null_count, distinct_count,
    quantiles, psi_edges, psi_counts, histogram_edges, histogram_counts
)
WITH sampled AS (
    SELECT count(*) AS profiled_row_count
    FROM profile_feature_rows
),

-- every feature row of the version has a place in the splits (60_splits/064 counted them)
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
-- rows: profile rows
INSERT INTO meta.profiles (
    run_id, subject, column_name, split, row_count, profiled_row_count, null_count, value_counts
)
SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    'labels' AS subject,
    {{ label_names.target | literal }} AS column_name,
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
        count(*) FILTER (WHERE l.{{ label_names.target | ident }} AND NOT e.is_censored) AS positive,
        count(*) FILTER (WHERE NOT l.{{ label_names.target | ident }} AND NOT e.is_censored) AS negative,
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
