-- The purge, proven on every run: no row this run assigned to a split has a label window
-- that reaches the start of a later split (the other rows did not move). And a split whose
-- labelled rows the purge removed entirely stops the run. Without labels there is no
-- purge: nothing to prove.
-- grain: the temporary table split_purge_check (one row), then an assertion
-- requires: 60_splits/060_split_cutoffs.sql, 061_split_assignments.sql and
--           063_split_counts.sql in the same transaction (split_boundaries, work.split_rows,
--           split_counts), 55_labels/055_customer_label_history.sql
-- writes: nothing
{%- if labels %}
CREATE TEMPORARY TABLE split_purge_check ON COMMIT DROP AS
SELECT
    (
        SELECT count(*)
        FROM work.split_rows AS d
        INNER JOIN feats.customer_label_history AS l
            ON d.customer_id = l.customer_id AND d.feature_time = l.feature_time AND l.valid_to IS NULL
        CROSS JOIN split_boundaries AS cuts
        WHERE
            (d.split = 'train' AND l.{{ label_names.window_end | ident }} >= cuts.val_starts_at)
            OR (d.split = 'val' AND l.{{ label_names.window_end | ident }} >= cuts.test_starts_at)
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
