{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/distribution.sql' as dist with context -%}
{#- A row's place, from its time t and the cut-offs (`cuts`: split_boundaries) alone: its
    split by time, or the gap before val and test, or, with labels, purged when its label
    window (t, t + H] reaches the start of a later split. -#}
{%- macro split_of(t) -%}
CASE
            WHEN {{ t }} >= cuts.test_starts_at THEN 'test'
            WHEN {{ t }} >= cuts.test_starts_at - cuts.gap THEN 'gap'
            WHEN {{ t }} >= cuts.val_starts_at AND {{ reaches(t, 'cuts.test_starts_at') }} THEN 'purged'
            WHEN {{ t }} >= cuts.val_starts_at THEN 'val'
            WHEN {{ t }} >= cuts.val_starts_at - cuts.gap THEN 'gap'
            WHEN {{ reaches(t, 'cuts.val_starts_at') }} THEN 'purged'
            ELSE 'train'
        END
{%- endmacro -%}
{#- The span a row at `t` lies in under the cut-offs `cuts` (a gap row counts in its span). -#}
{%- macro span_of(t, cuts) -%}
CASE WHEN {{ t }} >= {{ cuts }}.test_starts_at THEN 'test' WHEN {{ t }} >= {{ cuts }}.val_starts_at THEN 'val' ELSE 'train' END
{%- endmacro -%}
{#- With labels: the label window of a row at `t` reaches `cut` (never without labels). -#}
{%- macro reaches(t, cut) -%}
{%- if labels -%}
{{ t }} + {{ horizon() }} >= {{ cut }}
{%- else -%}
FALSE
{%- endif -%}
{%- endmacro -%}
{%- set new_end = '(SELECT e.observed_end FROM work.label_observed_end AS e)' if labels else 'NULL::timestamptz' %}
{%- macro horizon() -%}
make_interval(days => {{ (labels.horizon_days if labels else 0) | literal }})
{%- endmacro -%}
{#- Censored in a version whose observed end is `end_at` (V013): the label window ends after it. -#}
{%- macro censored(t, end_at) -%}
{%- if labels -%}
coalesce({{ t }} + {{ horizon() }} > {{ end_at }}, FALSE)
{%- else -%}
FALSE
{%- endif -%}
{%- endmacro -%}
-- Assigns every feature row to train, val or test by time, as rows of the version this run
-- writes (published by 070; readers see meta.dataset_splits). Cut-offs fall on timestamp
-- boundaries chosen so that the split fractions come as close to the configured ratios
-- as whole instants allow: no feature_time is in two splits, and every train time <
-- every val time < every test time. Rows in the gap_days before val and before test
-- are left out (counted in meta.split_cutoffs); with labels, so are the rows whose label
-- window reaches a later split (purged), and an assertion proves none is left.
-- grain: meta.dataset_split_history one row per feature row (gap and purged rows too);
--        meta.split_cutoffs one row per split for this run
-- requires: 050_feats_customer_features.sql, 055_feats_customer_labels.sql
-- settings: raw_to_ready.run_id, raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
-- Incremental: a row's split follows from its feature_time, the cut-offs and (with
-- labels) its censoring alone: it changes where t crosses a cut, the start of the gap
-- before it (cut - gap) or the start of the purge (cut - horizon). So the rows whose split
-- can change are the rows this version wrote or closed (features or labels) and the rows
-- between where the old and the new cut put each of those edges. Only those are assigned again
-- (every row on a full refresh), and only the rows whose split changed are written.
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
WHERE v.version_number = {{ versions.published() }};

-- The two cut-offs' brackets: for each cut, the instant holding its target row (the pivot),
-- the rows before it (below), up to and including it (above), and the next instant.
-- A block of single-table statements, each an aggregate or an ordered scan of the current
-- rows: on Citus each runs on the shards (a query correlating the history with this run's
-- temporary tables could not be planned there).
CREATE TEMPORARY TABLE split_brackets (
    total_rows bigint,
    pivot_at timestamptz [],
    val_rows_below bigint,
    val_rows_above bigint,
    val_next_at timestamptz,
    test_rows_below bigint,
    test_rows_above bigint,
    test_next_at timestamptz
) ON COMMIT DROP;

DO $brackets$
DECLARE
    previous record;
    changed record;
    total bigint;
    pivots timestamptz [];
    shares float8 [] := ARRAY[
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
        -- a full refresh: one sort finds, for each cut, the instant holding its target row:
        -- the first instant at which the share of rows up to and including it reaches the
        -- target
        SELECT count(*), percentile_disc(shares) WITHIN GROUP (ORDER BY h.feature_time)
        INTO total, pivots
        FROM feats.customer_feature_history AS h
        WHERE h.valid_to IS NULL;
        -- rows before a cut only grow with time, so the best cut is just before the pivot
        -- instant or just after it: count the rows on either side of each pivot
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
        RETURN;
    END IF;

    -- A daily run: the same numbers from the published version's, through the time index.
    -- The rows this version added or closed give the new total and the new counts before
    -- the old cuts; the target row (the same position percentile_disc takes: ceil(share x
    -- total)) lies a few rows from an old cut, and so do the counts around it.
    SELECT * INTO previous FROM split_previous;
    old_cuts := ARRAY[previous.val_starts_at, previous.test_starts_at];
    SELECT
        count(*) FILTER (WHERE h.valid_from = {{ versions.version() }}) AS added,
        count(*) FILTER (WHERE h.valid_to = {{ versions.version() }}) AS closed,
        count(*) FILTER (WHERE h.valid_from = {{ versions.version() }} AND h.feature_time < old_cuts[1])
            AS added_before_val,
        count(*) FILTER (WHERE h.valid_to = {{ versions.version() }} AND h.feature_time < old_cuts[1])
            AS closed_before_val,
        count(*) FILTER (WHERE h.valid_from = {{ versions.version() }} AND h.feature_time < old_cuts[2])
            AS added_before_test,
        count(*) FILTER (WHERE h.valid_to = {{ versions.version() }} AND h.feature_time < old_cuts[2])
            AS closed_before_test
    INTO changed
    FROM feats.customer_feature_history AS h
    WHERE h.valid_from = {{ versions.version() }} OR h.valid_to = {{ versions.version() }};
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
$brackets$;

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

-- The rows to assign: every current feature row on a full refresh, else the rows whose
-- split may have changed (see the header).
{% call dist.scratch_table('work.split_scope', 'customer_id') -%}
WITH offsets AS (
    -- a row's split changes where t crosses a cut, or the start of the gap before it
    -- (t >= cut - gap), or the start of the purge before it (t + H >= cut)
    SELECT o.offset_by
    FROM split_boundaries AS n
    CROSS JOIN LATERAL (
        VALUES
        ('0 seconds'::interval),
        (n.gap),
        (make_interval(days => {{ (labels.horizon_days if labels else 0) | literal }}))
    ) AS o (offset_by)
),

bands AS (
    -- where the old and the new cuts put those edges: the rows between them change
    SELECT
        least(p.val_starts_at, n.val_starts_at) - o.offset_by AS low,
        greatest(p.val_starts_at, n.val_starts_at) - o.offset_by AS high
    FROM split_previous AS p
    CROSS JOIN split_boundaries AS n
    CROSS JOIN offsets AS o
    UNION ALL
    SELECT
        least(p.test_starts_at, n.test_starts_at) - o.offset_by AS low,
        greatest(p.test_starts_at, n.test_starts_at) - o.offset_by AS high
    FROM split_previous AS p
    CROSS JOIN split_boundaries AS n
    CROSS JOIN offsets AS o
),

candidates AS (
    -- the feature rows this version added, changed or closed (a removed file's orders
    -- take their instants with them: those rows leave the splits)
    SELECT
        f.customer_id,
        f.feature_time
    FROM feats.customer_feature_history AS f
    WHERE f.valid_from = {{ versions.version() }}
    UNION
    SELECT
        f.customer_id,
        f.feature_time
    FROM feats.customer_feature_history AS f
    WHERE f.valid_to = {{ versions.version() }}
    UNION
    SELECT
        f.customer_id,
        f.feature_time
    {%- if distribution %}
    -- Citus: the bands (a few rows) go to every shard, which joins them to its rows
    FROM feats.customer_feature_history AS f
    INNER JOIN bands AS b ON f.feature_time >= b.low AND f.feature_time <= b.high
    WHERE f.valid_to IS NULL AND b.low < b.high
    {%- else %}
    FROM bands AS b
    -- a range scan of the current rows' time index per band
    CROSS JOIN
        LATERAL (
            SELECT
                h.customer_id,
                h.feature_time
            FROM feats.customer_feature_history AS h
            WHERE h.valid_to IS NULL AND h.feature_time >= b.low AND h.feature_time <= b.high
            -- a fence: without it the planner joins the bands to a scan of every row
            OFFSET 0  -- noqa: AM09
        ) AS f
    WHERE b.low < b.high
    {%- endif %}
)

SELECT
    customer_id,
    feature_time
FROM candidates
WHERE NOT {{ versions.full_refresh() }}
{%- endcall %}

ALTER TABLE work.split_scope ADD PRIMARY KEY (customer_id, feature_time);

ANALYZE work.split_scope;

-- Every row's place: its split by time, or the gap (embargo) before val and test, or,
-- with labels, purged: a row whose label window (t, t + H] reaches the start of a later
-- split would see that split's orders through its label (the purge of purged
-- cross-validation, Lopez de Prado, Advances in Financial Machine Learning, ch. 7).
{% call dist.scratch_table('work.split_rows', 'customer_id') -%}
WITH scoped AS (
    -- a full refresh: every current row
    SELECT
        f.customer_id,
        f.feature_time
    FROM feats.customer_feature_history AS f
    WHERE f.valid_to IS NULL AND {{ versions.full_refresh() }}
    UNION ALL
    -- else the scope's rows (a scope row may be one the features no longer have), looked
    -- up one by one in the current rows' index
    SELECT
        f.customer_id,
        f.feature_time
    FROM work.split_scope AS s
    CROSS JOIN
        LATERAL (
            SELECT
                h.customer_id,
                h.feature_time
            FROM feats.customer_feature_history AS h
            WHERE h.customer_id = s.customer_id AND h.feature_time = s.feature_time AND h.valid_to IS NULL
        ) AS f
)

SELECT
    f.customer_id,
    f.feature_time,
    {{ split_of('f.feature_time') }} AS split
FROM scoped AS f
CROSS JOIN split_boundaries AS cuts
{%- endcall %}

ALTER TABLE work.split_rows ADD PRIMARY KEY (customer_id, feature_time);

ANALYZE work.split_rows;

{{ versions.close_changed('meta.dataset_split_history', 'work.split_rows',
    ['customer_id', 'feature_time'], ['split'],
    scope_where=versions.full_refresh()) }}

{{ versions.close_changed('meta.dataset_split_history', 'work.split_rows',
    ['customer_id', 'feature_time'], ['split'],
    scope_from='work.split_scope AS s',
    scope_where='h.customer_id = s.customer_id AND h.feature_time = s.feature_time') }}

{{ versions.drop_indexes_if_empty('meta.dataset_split_history') }}

{{ versions.add_changed('meta.dataset_split_history', 'work.split_rows',
    ['customer_id', 'feature_time'], ['split']) }}

{{ versions.restore_indexes('meta.dataset_split_history') }}

-- Fresh statistics after a full refresh: the training set's joins are planned from them.
{{ versions.analyze_after_full_refresh('meta.dataset_split_history') }}

-- The counts of every split: the span of each split by time, and the rows of it kept, in
-- the gap, purged and censored. A full refresh counts every current row; a daily run adds
-- what changed to the published version's counts.
CREATE TEMPORARY TABLE split_counts ON COMMIT DROP AS
WITH split_bounds AS (
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
{% if labels %}
censoring_band AS (
    SELECT
        h.feature_time,
        e.observed_end AS new_end,
        p.observed_end AS previous_end
    {%- if distribution %}
    -- Citus: the two one-row tables go to every shard, which scans its rows in the band
    FROM feats.customer_feature_history AS h
    CROSS JOIN split_previous AS p
    CROSS JOIN work.label_observed_end AS e
    WHERE
        h.valid_to IS NULL
        AND h.feature_time > least(p.observed_end, e.observed_end) - {{ horizon() }}
        AND h.feature_time <= greatest(p.observed_end, e.observed_end) - {{ horizon() }}
        AND
    {%- else %}
    FROM split_previous AS p
    CROSS JOIN work.label_observed_end AS e
    CROSS JOIN
        LATERAL (
            SELECT
                f.customer_id,
                f.feature_time
            FROM feats.customer_feature_history AS f
            WHERE
                f.valid_to IS NULL
                AND f.feature_time > least(p.observed_end, e.observed_end) - {{ horizon() }}
                AND f.feature_time <= greatest(p.observed_end, e.observed_end) - {{ horizon() }}
            OFFSET 0  -- noqa: AM09
        ) AS h
    WHERE
    {%- endif %}
        p.observed_end IS DISTINCT FROM e.observed_end
        AND NOT EXISTS (
            SELECT 1
            FROM work.split_scope AS s
            WHERE s.customer_id = h.customer_id AND s.feature_time = h.feature_time
        )
),
{% endif %}
changed_rows AS (
    -- incremental: the scope's rows as they are now (+1) and as the published version had
    -- them (-1), each in the span its version's cut-offs put it in and censored by its
    -- version's observed end; no other row moved
    SELECT
        {{ span_of('h.feature_time', 'cuts') }} AS span,
        h.split,
        {{ censored('h.feature_time', new_end) }} AS is_censored,
        1 AS sign
    FROM work.split_scope AS s
    CROSS JOIN split_boundaries AS cuts
    {%- if distribution %}
    -- Citus: a join on the shards (the scope and the history are co-located)
    INNER JOIN meta.dataset_split_history AS h
        ON s.customer_id = h.customer_id AND s.feature_time = h.feature_time AND h.valid_to IS NULL
    {%- else %}
    CROSS JOIN
        LATERAL (
            SELECT
                a.feature_time,
                a.split
            FROM meta.dataset_split_history AS a
            WHERE a.customer_id = s.customer_id AND a.feature_time = s.feature_time AND a.valid_to IS NULL
            OFFSET 0  -- noqa: AM09
        ) AS h
    {%- endif %}
    UNION ALL
    SELECT
        {{ span_of('h.feature_time', 'p') }} AS span,
        h.split,
        {{ censored('h.feature_time', 'p.observed_end') }} AS is_censored,
        -1 AS sign
    FROM work.split_scope AS s
    CROSS JOIN split_previous AS p
    {%- if distribution %}
    -- a published row this run left as it was
    INNER JOIN meta.dataset_split_history AS h
        ON
            s.customer_id = h.customer_id AND s.feature_time = h.feature_time
            AND h.valid_to IS NULL AND h.valid_from <= {{ versions.published() }}
    {%- else %}
    CROSS JOIN
        LATERAL (
            -- a published row this run left as it was
            SELECT
                a.feature_time,
                a.split
            FROM meta.dataset_split_history AS a
            WHERE
                a.customer_id = s.customer_id AND a.feature_time = s.feature_time
                AND a.valid_to IS NULL AND a.valid_from <= {{ versions.published() }}
            OFFSET 0  -- noqa: AM09
        ) AS h
    {%- endif %}
    UNION ALL
    SELECT
        {{ span_of('h.feature_time', 'p') }} AS span,
        h.split,
        {{ censored('h.feature_time', 'p.observed_end') }} AS is_censored,
        -1 AS sign
    -- a published row this run closed (all of them are the scope's)
    FROM meta.dataset_split_history AS h
    CROSS JOIN split_previous AS p
    WHERE h.valid_to = {{ versions.version() }}
    {%- if labels %}
    UNION ALL
    -- the rows outside the scope whose censoring the moved observed end flips (t + H
    -- between the old end and the new one): same split and span, censored as each
    -- version's end says (-1 as published, +1 as now)
    SELECT
        {{ span_of('b.feature_time', 'cuts') }} AS span,
        {{ split_of('b.feature_time') }} AS split,
        c.is_censored,
        c.sign
    FROM censoring_band AS b
    CROSS JOIN split_boundaries AS cuts
    CROSS JOIN
        LATERAL (
            VALUES
            ({{ censored('b.feature_time', 'b.new_end') }}, 1),
            ({{ censored('b.feature_time', 'b.previous_end') }}, -1)
        ) AS c (is_censored, sign)
    {%- endif %}
),

span_rows AS (
    -- a full refresh: one pass over every current row (a gap row counts in the span it
    -- lies in)
    SELECT
        {{ span_of('a.feature_time', 'cuts') }} AS span,
        a.split,
        {{ censored('a.feature_time', new_end) }} AS is_censored,
        1 AS sign
    FROM meta.dataset_split_history AS a
    CROSS JOIN split_boundaries AS cuts
    WHERE a.valid_to IS NULL AND {{ versions.full_refresh() }}
    UNION ALL
    SELECT
        c.span,
        c.split,
        c.is_censored,
        c.sign
    FROM changed_rows AS c
    WHERE NOT {{ versions.full_refresh() }}
),

span_counts AS (
    SELECT
        r.span,
        coalesce(sum(r.sign) FILTER (WHERE r.split IN ('train', 'val', 'test')), 0) AS kept,
        coalesce(sum(r.sign) FILTER (WHERE r.split = 'gap'), 0) AS gap_row_count,
        coalesce(sum(r.sign) FILTER (WHERE r.split = 'purged'), 0) AS purged_row_count,
        coalesce(sum(r.sign) FILTER (WHERE r.split = 'purged' AND NOT r.is_censored), 0) AS purged_labelled_count,
        coalesce(sum(r.sign) FILTER (WHERE r.split IN ('train', 'val', 'test') AND r.is_censored), 0)
            AS censored_row_count
    FROM span_rows AS r
    GROUP BY r.span
    UNION ALL
    -- incremental: the published version's counts, to which the changes add
    SELECT
        c.split AS span,
        c.row_count AS kept,
        c.gap_row_count,
        c.purged_row_count,
        c.purged_labelled_row_count AS purged_labelled_count,
        c.censored_row_count
    FROM meta.feature_versions AS v
    INNER JOIN meta.split_cutoffs AS c ON v.run_id = c.run_id
    WHERE v.version_number = {{ versions.published() }} AND NOT {{ versions.full_refresh() }}
),

totals AS (
    SELECT
        c.span,
        sum(c.kept) AS kept,
        sum(c.gap_row_count) AS gap_row_count,
        sum(c.purged_row_count) AS purged_row_count,
        sum(c.purged_labelled_count) AS purged_labelled_count,
        sum(c.censored_row_count) AS censored_row_count
    FROM span_counts AS c
    GROUP BY c.span
)

SELECT
    b.split,
    b.starts_at,
    b.ends_before,
    b.target_fraction,
    coalesce(c.kept, 0) AS row_count,
    coalesce(c.gap_row_count, 0) AS gap_row_count,
    coalesce(c.purged_row_count, 0) AS purged_row_count,
    coalesce(c.purged_labelled_count, 0) AS purged_labelled_count,
    coalesce(c.censored_row_count, 0) AS censored_row_count
FROM split_bounds AS b
LEFT JOIN totals AS c ON b.split = c.span;

INSERT INTO meta.split_cutoffs (
    run_id, split, starts_at, ends_before, row_count, gap_row_count, fraction, target_fraction,
    purged_row_count, censored_row_count, purged_labelled_row_count
)
WITH t AS (SELECT sum(s.row_count + s.gap_row_count + s.purged_row_count) AS total_rows FROM split_counts AS s)

SELECT
    current_setting('raw_to_ready.run_id') AS run_id,
    c.split,
    -- 'infinity' marks a split with no instant; report it as no boundary
    nullif(c.starts_at, 'infinity') AS starts_at,
    nullif(c.ends_before, 'infinity') AS ends_before,
    c.row_count,
    c.gap_row_count,
    round(c.row_count::numeric / greatest(t.total_rows, 1), 5) AS fraction,
    c.target_fraction,
    c.purged_row_count,
    c.censored_row_count,
    c.purged_labelled_count AS purged_labelled_row_count
FROM split_counts AS c
CROSS JOIN t;
{%- if labels %}

-- The purge, proven on every run: no row this run assigned to a split has a label window
-- that reaches the start of a later split (the other rows did not move). And a split whose
-- labelled rows the purge removed entirely stops the run.
CREATE TEMPORARY TABLE split_purge_check ON COMMIT DROP AS
SELECT
    (
        SELECT count(*)
        FROM work.split_rows AS d
        INNER JOIN feats.customer_label_history AS l
            ON d.customer_id = l.customer_id AND d.feature_time = l.feature_time AND l.valid_to IS NULL
        CROSS JOIN split_boundaries AS cuts
        WHERE
            (d.split = 'train' AND l.label_window_end >= cuts.val_starts_at)
            OR (d.split = 'val' AND l.label_window_end >= cuts.test_starts_at)
    ) AS leaking_rows,
    (
        SELECT string_agg(c.split, ', ' ORDER BY c.split DESC)
        FROM split_counts AS c
        WHERE c.split IN ('train', 'val') AND c.row_count - c.censored_row_count = 0 AND c.purged_labelled_count > 0
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
