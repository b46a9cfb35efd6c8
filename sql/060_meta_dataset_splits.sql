-- Assigns every feature row to train, val or test by time. Cut-offs fall on timestamp
-- boundaries chosen so that the split fractions come as close to the configured ratios
-- as whole instants allow: no feature_time is in two splits, and every train time <
-- every val time < every test time. Rows in the gap_days before val and before test
-- are left out (counted in meta.split_cutoffs); with labels, so are the rows whose label
-- window reaches a later split (purged), and an assertion proves none is left.
-- grain: meta.dataset_splits one row per feature row kept; meta.split_cutoffs one row
--        per split for this run
-- requires: 050_feats_customer_features.sql, 055_feats_customer_labels.sql
-- settings: raw_to_ready.run_id
SET LOCAL work_mem = '512MB';

-- One row: where val and test start, and the gap before each.
CREATE TEMPORARY TABLE split_boundaries ON COMMIT DROP AS
WITH pivots AS (
    -- one sort finds, for each cut, the instant holding its target row: the first
    -- instant at which the share of rows up to and including it reaches the target
    SELECT
        count(*) AS total_rows,
        percentile_disc(
            ARRAY[{{ splits.train | literal }}, {{ splits.train | literal }} + {{ splits.val | literal }}]::float8[]
        ) WITHIN GROUP (ORDER BY feature_time) AS pivot_at
    FROM feats.customer_features
),

brackets AS (
    -- rows before a cut only grow with time, so the best cut is just before the pivot
    -- instant or just after it: count the rows on either side of each pivot
    SELECT
        p.total_rows,
        p.pivot_at,
        count(f.feature_time) FILTER (WHERE f.feature_time < p.pivot_at[1]) AS val_rows_below,
        count(f.feature_time) FILTER (WHERE f.feature_time <= p.pivot_at[1]) AS val_rows_above,
        min(f.feature_time) FILTER (WHERE f.feature_time > p.pivot_at[1]) AS val_next_at,
        count(f.feature_time) FILTER (WHERE f.feature_time < p.pivot_at[2]) AS test_rows_below,
        count(f.feature_time) FILTER (WHERE f.feature_time <= p.pivot_at[2]) AS test_rows_above,
        min(f.feature_time) FILTER (WHERE f.feature_time > p.pivot_at[2]) AS test_next_at
    FROM pivots AS p
    LEFT JOIN feats.customer_features AS f ON TRUE
    GROUP BY p.total_rows, p.pivot_at
),

candidates AS (
    SELECT
        c.split,
        c.target_rows,
        c.pivot_at,
        c.rows_below,
        c.rows_above,
        c.next_at
    FROM brackets AS b
    CROSS JOIN LATERAL (
        VALUES
        (
            'val', b.total_rows * {{ splits.train | literal }}::numeric,
            b.pivot_at[1], b.val_rows_below, b.val_rows_above, b.val_next_at
        ),
        (
            'test', b.total_rows * ({{ splits.train | literal }}::numeric + {{ splits.val | literal }}::numeric),
            b.pivot_at[2], b.test_rows_below, b.test_rows_above, b.test_next_at
        )
    ) AS c (split, target_rows, pivot_at, rows_below, rows_above, next_at)
),

chosen_cuts AS (
    SELECT
        split,
        CASE
            -- no rows at all: every split is empty
            WHEN pivot_at IS NULL THEN 'infinity'::timestamptz
            -- the closer of the two cuts; the earlier one on a tie
            WHEN target_rows - rows_below <= rows_above - target_rows THEN pivot_at
            -- 'infinity' is the cut after the last instant (an empty split)
            ELSE coalesce(next_at, 'infinity'::timestamptz)
        END AS cut_at
    FROM candidates
)

SELECT
    max(cut_at) FILTER (WHERE split = 'val') AS val_starts_at,
    -- the test cut can never come before the val cut
    greatest(max(cut_at) FILTER (WHERE split = 'test'), max(cut_at) FILTER (WHERE split = 'val'))
        AS test_starts_at,
    make_interval(secs => {{ splits.gap_days | literal }}::double precision * 86400) AS gap
FROM chosen_cuts;

-- Every feature row's place: its split by time, or the gap (embargo) before val and test,
-- or, with labels, purged: a row whose label window (t, t + H] reaches the start of a
-- later split would see that split's orders through its label (the purge of purged
-- cross-validation, Lopez de Prado, Advances in Financial Machine Learning, ch. 7).
CREATE TEMPORARY TABLE split_assignments ON COMMIT DROP AS
WITH by_time AS (
    SELECT
        f.customer_id,
        f.feature_time,
        CASE
            WHEN f.feature_time >= cuts.test_starts_at THEN 'test'
            WHEN f.feature_time >= cuts.test_starts_at - cuts.gap THEN 'gap'
            WHEN f.feature_time >= cuts.val_starts_at THEN 'val'
            WHEN f.feature_time >= cuts.val_starts_at - cuts.gap THEN 'gap'
            ELSE 'train'
        END AS split,
        {%- if labels %}
        l.label_window_end,
        l.is_censored
        {%- else %}
        NULL::timestamptz AS label_window_end,
        FALSE AS is_censored
        {%- endif %}
    FROM feats.customer_features AS f
    CROSS JOIN split_boundaries AS cuts
    {%- if labels %}
    INNER JOIN feats.customer_labels AS l
        ON f.customer_id = l.customer_id AND f.feature_time = l.feature_time
    {%- endif %}
)

SELECT
    t.customer_id,
    t.feature_time,
    t.split AS time_split,
    CASE
        WHEN t.split = 'train' AND t.label_window_end >= cuts.val_starts_at THEN 'purged'
        WHEN t.split = 'val' AND t.label_window_end >= cuts.test_starts_at THEN 'purged'
        ELSE t.split
    END AS split,
    t.is_censored
FROM by_time AS t
CROSS JOIN split_boundaries AS cuts;

-- A temporary table has no statistics until analyzed; the counts and checks below need them.
ANALYZE split_assignments;

TRUNCATE meta.dataset_splits;

INSERT INTO meta.dataset_splits (customer_id, feature_time, split, run_id)
SELECT
    customer_id,
    feature_time,
    split,
    current_setting('raw_to_ready.run_id') AS run_id
FROM split_assignments
-- rows in a gap (embargo) or purged are left out of every split
WHERE split IN ('train', 'val', 'test');

INSERT INTO meta.split_cutoffs (
    run_id, split, starts_at, ends_before, row_count, gap_row_count, fraction, target_fraction,
    purged_row_count, censored_row_count
)
WITH totals AS (
    SELECT count(*) AS total_rows FROM feats.customer_features
),

split_bounds AS (
    SELECT
        b.split,
        b.starts_at,
        b.ends_before,
        b.target_fraction
    FROM split_boundaries AS cuts
    CROSS JOIN LATERAL (
        VALUES
        ('train', NULL::timestamptz, cuts.val_starts_at, {{ splits.train | literal }}::numeric),
        ('val', cuts.val_starts_at, cuts.test_starts_at, {{ splits.val | literal }}::numeric),
        ('test', cuts.test_starts_at, NULL::timestamptz, {{ splits.test | literal }}::numeric)
    ) AS b (split, starts_at, ends_before, target_fraction)
),

split_rows AS (
    -- the split a row would have by time alone: a gap row counts in the span it lies in
    SELECT
        b.split,
        count(*) FILTER (WHERE a.split = b.split) AS row_count,
        count(*) FILTER (WHERE a.split = 'gap') AS gap_row_count,
        count(*) FILTER (WHERE a.split = 'purged') AS purged_row_count,
        count(*) FILTER (WHERE a.split = b.split AND a.is_censored) AS censored_row_count
    FROM split_bounds AS b
    INNER JOIN split_assignments AS a
        ON
            (b.starts_at IS NULL OR b.starts_at <= a.feature_time)
            AND (b.ends_before IS NULL OR b.ends_before > a.feature_time)
    GROUP BY b.split
)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    b.split,
    -- 'infinity' marks a split with no instant; report it as no boundary
    nullif(b.starts_at, 'infinity') AS starts_at,
    nullif(b.ends_before, 'infinity') AS ends_before,
    coalesce(r.row_count, 0) AS row_count,
    coalesce(r.gap_row_count, 0) AS gap_row_count,
    round(coalesce(r.row_count, 0)::numeric / greatest(totals.total_rows, 1), 5) AS fraction,
    b.target_fraction,
    coalesce(r.purged_row_count, 0) AS purged_row_count,
    coalesce(r.censored_row_count, 0) AS censored_row_count
FROM split_bounds AS b
CROSS JOIN totals
LEFT JOIN split_rows AS r ON b.split = r.split;
{%- if labels %}

-- The purge, proven on every run: no row kept in a split has a label window that reaches
-- the start of a later split (checked on what is published, joined to the labels). And a
-- split whose labelled rows the purge removed entirely stops the run.
ANALYZE meta.dataset_splits;

CREATE TEMPORARY TABLE split_purge_check ON COMMIT DROP AS
SELECT
    (
        SELECT count(*)
        FROM meta.dataset_splits AS d
        INNER JOIN feats.customer_labels AS l
            ON d.customer_id = l.customer_id AND d.feature_time = l.feature_time
        CROSS JOIN split_boundaries AS cuts
        WHERE
            (d.split = 'train' AND l.label_window_end >= cuts.val_starts_at)
            OR (d.split = 'val' AND l.label_window_end >= cuts.test_starts_at)
    ) AS leaking_rows,
    (
        SELECT string_agg(p.time_split, ', ' ORDER BY p.time_split DESC)
        FROM (
            SELECT a.time_split
            FROM split_assignments AS a
            WHERE a.time_split IN ('train', 'val') AND NOT a.is_censored
            GROUP BY a.time_split
            HAVING count(*) FILTER (WHERE a.split = a.time_split) = 0
        ) AS p
    ) AS emptied_splits;

DO $$
DECLARE
    result record;
BEGIN
    SELECT * INTO result FROM split_purge_check;
    IF result.leaking_rows > 0 THEN
        RAISE EXCEPTION 'splits: % row(s) have a label window reaching a later split', result.leaking_rows;
    END IF;
    IF result.emptied_splits IS NOT NULL THEN
        RAISE EXCEPTION 'splits: purging left no labelled row in %', result.emptied_splits
            USING HINT = format(
                'every row''s %s-day label window reaches the next split: lower labels.horizon_days '
                'or give the split a larger share', {{ labels.horizon_days | literal }}
            );
    END IF;
END
$$;
{%- endif %}
