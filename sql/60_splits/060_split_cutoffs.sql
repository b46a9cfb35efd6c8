{%- import 'macros/versions.sql' as versions with context -%}
-- The splits stage assigns every feature row to train, val or test by time, as rows of the
-- version this run writes (published by 70_registry/070; readers see meta.dataset_splits).
-- This file finds the cut-offs: timestamp boundaries chosen so that the split fractions
-- come as close to the configured ratios as whole instants allow, so no feature_time is in
-- two splits and every train time < every val time < every test time. 062 assigns the
-- rows, 063 and 064 count them into meta.split_cutoffs, 068 proves the purge.
-- grain: the temporary tables split_previous (one row: the published version's cut-offs
--        and counts), split_brackets (one row: the rows around each cut's target) and
--        split_boundaries (one row: where val and test start, and the gap before each)
-- requires: 50_features/050_customer_feature_history.sql (the current feature rows),
--           V010__versioned_publishing.sql
-- writes: meta.dataset_split_history
-- settings: raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
-- Incremental: a row's split follows from its feature_time, the cut-offs and (with
-- labels) its censoring alone: it changes where t crosses a cut, the start of the gap
-- before it (cut - gap) or the start of the purge (cut - horizon). So the rows whose split
-- can change are the rows this version wrote or closed (features or labels) and the rows
-- between where the old and the new cut put each of those edges. Only those are assigned again
-- (every row on a full refresh: 062), and only the rows whose split changed are written.
SELECT meta.set_run_setting('work_mem', '512MB');
{{ versions.index_friendly() }}

{{ versions.discard_unpublished('meta.dataset_split_history') }}

-- The cut-offs of the published version ('infinity': an empty split), and the rows before
-- each then: a daily run finds its cut-offs from there (and moves the rows near them).
CREATE TEMPORARY TABLE split_previous ON COMMIT DROP AS
SELECT
    coalesce(max(c.starts_at) FILTER (WHERE c.split = 'val'), 'infinity') AS val_starts_at,
    coalesce(max(c.starts_at) FILTER (WHERE c.split = 'test'), 'infinity') AS test_starts_at,
    coalesce(sum(c.row_count + c.gap_row_count + c.purged_row_count) FILTER (WHERE c.split = 'train'), 0)
        AS rows_before_val,
    coalesce(sum(c.row_count + c.gap_row_count + c.purged_row_count) FILTER (WHERE c.split IN ('train', 'val')), 0)
        AS rows_before_test,
    coalesce(sum(c.row_count + c.gap_row_count + c.purged_row_count), 0) AS total_rows,
    -- censoring is by version (V013): a row is censored when t + H is after the observed end
    max(v.observed_end) AS observed_end
FROM meta.feature_versions AS v
INNER JOIN meta.split_cutoffs AS c ON v.run_id = c.run_id
WHERE v.version_number = {{ versions.published_version() }};

-- The two cut-offs' brackets: for each cut, the instant holding its target row (the pivot),
-- the rows before it (below), up to and including it (above), and the next instant.
-- A block of single-table statements, each an aggregate or an ordered scan of the current
-- rows; on Citus each runs on the shards (a query correlating the history with this run's
-- temporary tables could not be planned there).
CREATE TEMPORARY TABLE split_brackets (
    total_rows bigint,
    pivot_at timestamptz[],
    val_rows_below bigint,
    val_rows_above bigint,
    val_next_at timestamptz,
    test_rows_below bigint,
    test_rows_above bigint,
    test_next_at timestamptz
) ON COMMIT DROP;

-- A full refresh: one sort finds, for each cut, the instant holding its target row: the
-- first instant at which the share of rows up to and including it reaches the target.
-- Rows before a cut only grow with time, so the best cut is just before the pivot instant
-- or just after it: the rows on either side of each pivot are counted.
DO $full_refresh_brackets$
DECLARE
    total bigint;
    pivots timestamptz [];
    shares constant float8 [] := ARRAY[
        {{ splits.train | literal }}, {{ splits.train | literal }} + {{ splits.val | literal }}
    ]::float8 [];
BEGIN
    IF {{ versions.full_refresh() }} THEN
        SELECT count(*), percentile_disc(shares) WITHIN GROUP (ORDER BY h.feature_time)
        INTO total, pivots
        FROM feats.customer_feature_history AS h
        WHERE h.valid_to IS NULL;
        INSERT INTO split_brackets
        SELECT
            total,
            pivots,
            count(*) FILTER (WHERE h.feature_time < pivots[1]),
            count(*) FILTER (WHERE h.feature_time <= pivots[1]),
            min(h.feature_time) FILTER (WHERE h.feature_time > pivots[1]),
            count(*) FILTER (WHERE h.feature_time < pivots[2]),
            count(*) FILTER (WHERE h.feature_time <= pivots[2]),
            min(h.feature_time) FILTER (WHERE h.feature_time > pivots[2])
        FROM feats.customer_feature_history AS h
        WHERE h.valid_to IS NULL;
    END IF;
END
$full_refresh_brackets$;

-- A daily run: the same numbers from the published version's, through the time index.
-- The rows this version added or closed give the new total and the new counts before the
-- old cuts; the target row (the same position percentile_disc takes: ceil(share x total))
-- lies a few rows from an old cut, and so do the counts around it.
DO $daily_brackets$
DECLARE
    previous record;
    changed record;
    total bigint;
    pivots timestamptz [];
    shares constant float8 [] := ARRAY[
        {{ splits.train | literal }}, {{ splits.train | literal }} + {{ splits.val | literal }}
    ]::float8 [];
    old_cuts timestamptz [];
    rows_before bigint [];
    target bigint;
    pivot timestamptz;
    counted bigint;
    below bigint [] := ARRAY[0, 0];
    above bigint [] := ARRAY[0, 0];
    next_at timestamptz [] := ARRAY[NULL, NULL]::timestamptz [];
BEGIN
    IF {{ versions.full_refresh() }} THEN
        RETURN;
    END IF;
    SELECT * INTO previous FROM split_previous;
    old_cuts := ARRAY[previous.val_starts_at, previous.test_starts_at];
    SELECT
        count(*) FILTER (WHERE h.valid_from = {{ versions.writing_version() }}) AS added,
        count(*) FILTER (WHERE h.valid_to = {{ versions.writing_version() }}) AS closed,
        count(*) FILTER (WHERE h.valid_from = {{ versions.writing_version() }} AND h.feature_time < old_cuts[1])
            AS added_before_val,
        count(*) FILTER (WHERE h.valid_to = {{ versions.writing_version() }} AND h.feature_time < old_cuts[1])
            AS closed_before_val,
        count(*) FILTER (WHERE h.valid_from = {{ versions.writing_version() }} AND h.feature_time < old_cuts[2])
            AS added_before_test,
        count(*) FILTER (WHERE h.valid_to = {{ versions.writing_version() }} AND h.feature_time < old_cuts[2])
            AS closed_before_test
    INTO changed
    FROM feats.customer_feature_history AS h
    WHERE h.valid_from = {{ versions.writing_version() }} OR h.valid_to = {{ versions.writing_version() }};
    total := previous.total_rows + changed.added - changed.closed;
    rows_before := ARRAY[
        previous.rows_before_val + changed.added_before_val - changed.closed_before_val,
        previous.rows_before_test + changed.added_before_test - changed.closed_before_test
    ];
    pivots := ARRAY[NULL, NULL]::timestamptz [];
    FOR cut IN 1..2 LOOP
        CONTINUE WHEN total = 0;
        target := greatest(ceil(shares[cut] * total)::bigint, 1);
        IF target > rows_before[cut] THEN
            SELECT h.feature_time INTO pivot
            FROM feats.customer_feature_history AS h
            WHERE h.valid_to IS NULL AND h.feature_time >= old_cuts[cut]
            ORDER BY h.feature_time
            LIMIT 1 OFFSET target - rows_before[cut] - 1;
        ELSE
            SELECT h.feature_time INTO pivot
            FROM feats.customer_feature_history AS h
            WHERE h.valid_to IS NULL AND h.feature_time < old_cuts[cut]
            ORDER BY h.feature_time DESC
            LIMIT 1 OFFSET rows_before[cut] - target;
        END IF;
        pivots[cut] := pivot;
        -- rows before the pivot: the rows before the old cut, plus or less those between
        SELECT
            rows_before[cut]
            + count(*) FILTER (WHERE h.feature_time >= old_cuts[cut] AND h.feature_time < pivots[cut])
            - count(*) FILTER (WHERE h.feature_time >= pivots[cut] AND h.feature_time < old_cuts[cut])
        INTO counted
        FROM feats.customer_feature_history AS h
        WHERE
            h.valid_to IS NULL
            AND h.feature_time >= least(old_cuts[cut], pivots[cut])
            AND h.feature_time < greatest(old_cuts[cut], pivots[cut]);
        below[cut] := counted;
        SELECT below[cut] + count(*) INTO counted
        FROM feats.customer_feature_history AS h
        WHERE h.valid_to IS NULL AND h.feature_time = pivots[cut];
        above[cut] := counted;
        SELECT min(h.feature_time) INTO pivot
        FROM feats.customer_feature_history AS h
        WHERE h.valid_to IS NULL AND h.feature_time > pivots[cut];
        next_at[cut] := pivot;
    END LOOP;
    INSERT INTO split_brackets
    VALUES (total, pivots, below[1], above[1], next_at[1], below[2], above[2], next_at[2]);
END
$daily_brackets$;

-- One row: where val and test start, and the gap before each.
CREATE TEMPORARY TABLE split_boundaries ON COMMIT DROP AS
WITH candidates AS (
    SELECT
        c.split,
        c.target_rows,
        c.pivot_at,
        c.rows_below,
        c.rows_above,
        c.next_at
    FROM split_brackets AS b
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
