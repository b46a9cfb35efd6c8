{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/splits.sql' as place with context -%}
-- The counts of every split into meta.split_cutoffs: the span of each split by time, and
-- the rows of it kept, in the gap, purged and censored. A full refresh counts every current
-- row; a daily run adds what changed (063) to the published version's counts.
-- grain: meta.split_cutoffs one row per split for this run; the temporary table
--        split_counts the same rows (068 proves the purge from them)
-- requires: 60_splits/060_split_cutoffs.sql, 061_split_assignments.sql and
--           062_split_count_changes.sql in the same transaction (split_boundaries,
--           split_changed_rows), V004__create_meta_tables.sql
-- writes: meta.split_cutoffs
-- settings: raw_to_ready.run_id, raw_to_ready.full_refresh,
--           raw_to_ready.published_version (sql/macros/versions.sql)
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

span_rows AS (
    -- a full refresh: one pass over every current row (a gap row counts in the span it
    -- lies in)
    SELECT
        {{ place.counted_row('cuts', place.new_observed_end(), 1) }}
    FROM meta.dataset_split_history AS h
    CROSS JOIN split_boundaries AS cuts
    WHERE h.valid_to IS NULL AND {{ versions.full_refresh() }}
    UNION ALL
    SELECT
        c.span,
        c.split,
        c.is_censored,
        c.sign
    -- a daily run: the rows that moved (063)
    FROM split_changed_rows AS c
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
    WHERE v.version_number = {{ versions.published_version() }} AND NOT {{ versions.full_refresh() }}
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
