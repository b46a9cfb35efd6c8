-- Assigns every feature row to train, val or test by time. Cut-offs fall on timestamp
-- boundaries chosen so that the split fractions come as close to the configured ratios
-- as whole instants allow: no feature_time is in two splits, and every train time <
-- every val time < every test time. Rows in the gap_days before val and before test
-- are left out (counted in meta.split_cutoffs).
-- grain: meta.dataset_splits one row per feature row kept; meta.split_cutoffs one row
--        per split for this run
-- requires: 050_feats_customer_features.sql
-- settings: raw_to_ready.run_id
CREATE TEMPORARY TABLE split_cuts ON COMMIT DROP AS
WITH time_counts AS (
    SELECT
        feature_time,
        count(*) AS row_count
    FROM feats.customer_features
    GROUP BY feature_time
),

candidate_cuts AS (
    -- a cut before each distinct instant, plus one after the last
    SELECT
        feature_time AS cut_at,
        sum(row_count) OVER (ORDER BY feature_time) - row_count AS rows_before
    FROM time_counts
    UNION ALL
    SELECT
        'infinity'::timestamptz AS cut_at,
        coalesce(sum(row_count), 0) AS rows_before
    FROM time_counts
),

totals AS (
    SELECT greatest(sum(row_count), 1) AS total_rows FROM time_counts
)

SELECT DISTINCT ON (t.split)
    t.split,
    t.target_start_fraction,
    c.cut_at
FROM candidate_cuts AS c
CROSS JOIN totals
CROSS JOIN (
    VALUES
    ('val', {{ splits.train | literal }}::numeric),
    ('test', {{ splits.train | literal }}::numeric + {{ splits.val | literal }}::numeric)
) AS t (split, target_start_fraction)
-- the cut whose share of rows before it is closest to the target; earliest on a tie
ORDER BY t.split, abs(c.rows_before / totals.total_rows - t.target_start_fraction), c.cut_at;

TRUNCATE meta.dataset_splits;

INSERT INTO meta.dataset_splits (customer_id, feature_time, split, run_id)
WITH cuts AS (
    SELECT
        max(cut_at) FILTER (WHERE split = 'val') AS val_starts_at,
        -- the test cut can never come before the val cut
        greatest(max(cut_at) FILTER (WHERE split = 'test'), max(cut_at) FILTER (WHERE split = 'val'))
            AS test_starts_at,
        make_interval(secs => {{ splits.gap_days | literal }}::double precision * 86400) AS gap
    FROM split_cuts
),

labelled AS (
    SELECT
        f.customer_id,
        f.feature_time,
        CASE
            WHEN f.feature_time >= cuts.test_starts_at THEN 'test'
            WHEN f.feature_time >= cuts.test_starts_at - cuts.gap THEN 'gap'
            WHEN f.feature_time >= cuts.val_starts_at THEN 'val'
            WHEN f.feature_time >= cuts.val_starts_at - cuts.gap THEN 'gap'
            ELSE 'train'
        END AS split
    FROM feats.customer_features AS f
    CROSS JOIN cuts
)

SELECT
    customer_id,
    feature_time,
    split,
    current_setting('raw_to_ready.run_id') AS run_id
FROM labelled
-- rows in a gap (embargo) are left out of every split
WHERE split != 'gap';

INSERT INTO meta.split_cutoffs (
    run_id, split, starts_at, ends_before, row_count, gap_row_count, fraction, target_fraction
)
WITH cuts AS (
    SELECT
        max(cut_at) FILTER (WHERE split = 'val') AS val_starts_at,
        greatest(max(cut_at) FILTER (WHERE split = 'test'), max(cut_at) FILTER (WHERE split = 'val'))
            AS test_starts_at
    FROM split_cuts
),

totals AS (
    SELECT count(*) AS total_rows FROM feats.customer_features
),

split_bounds AS (
    SELECT
        b.split,
        b.starts_at,
        b.ends_before,
        b.target_fraction
    FROM cuts
    CROSS JOIN LATERAL (
        VALUES
        ('train', NULL::timestamptz, cuts.val_starts_at, {{ splits.train | literal }}::numeric),
        ('val', cuts.val_starts_at, cuts.test_starts_at, {{ splits.val | literal }}::numeric),
        ('test', cuts.test_starts_at, NULL::timestamptz, {{ splits.test | literal }}::numeric)
    ) AS b (split, starts_at, ends_before, target_fraction)
),

split_rows AS (
    SELECT
        split,
        count(*) AS row_count
    FROM meta.dataset_splits
    GROUP BY split
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    b.split,
    -- 'infinity' marks a split with no instant; report it as no boundary
    nullif(b.starts_at, 'infinity') AS starts_at,
    nullif(b.ends_before, 'infinity') AS ends_before,
    coalesce(r.row_count, 0) AS row_count,
    -- the rows of the whole span between the split's boundaries that the gap removed
    (
        SELECT count(*)
        FROM feats.customer_features AS f
        WHERE
            (b.starts_at IS NULL OR f.feature_time >= b.starts_at)
            AND (b.ends_before IS NULL OR f.feature_time < b.ends_before)
    ) - coalesce(r.row_count, 0) AS gap_row_count,
    round(coalesce(r.row_count, 0)::numeric / greatest(totals.total_rows, 1), 5) AS fraction,
    b.target_fraction
FROM split_bounds AS b
CROSS JOIN totals
LEFT JOIN split_rows AS r ON b.split = r.split;
