{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/distribution.sql' as dist with context -%}
{%- import 'macros/splits.sql' as place with context -%}
-- Assigns the feature rows whose split may have changed to train, val or test, or to the
-- gap (embargo) before val and test, or, with labels, purged: a row whose label window
-- (t, t + H] reaches the start of a later split would see that split's orders through its
-- label (the purge of purged cross-validation, Lopez de Prado, Advances in Financial
-- Machine Learning, ch. 7). Gap and purged rows are kept in the history (counted in
-- meta.split_cutoffs by 064); meta.dataset_splits shows the rows kept.
-- grain: meta.dataset_split_history one row per feature row (gap and purged rows too) per
--        range of versions; work.split_scope, work.split_rows one row per feature row to
--        assign
-- requires: 60_splits/060_split_cutoffs.sql in the same transaction (split_previous,
--           split_boundaries), 50_features/050_customer_feature_history.sql,
--           V010__versioned_publishing.sql
-- writes: meta.dataset_split_history, work.split_scope, work.split_rows
-- settings: raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
-- Incremental: the rows this version's features added, changed or closed, and the rows
-- between where the old and the new cut put each edge (060's header); a full refresh
-- assigns every current row. Only the rows whose split changed are written.

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
        ({{ place.horizon() }})
    ) AS o (offset_by)
),

bands AS (
    -- where the old and the new cut (val's, test's) put those edges: the rows between them change
    SELECT
        least(c.old_at, c.new_at) - o.offset_by AS low,
        greatest(c.old_at, c.new_at) - o.offset_by AS high
    FROM split_previous AS p
    CROSS JOIN split_boundaries AS n
    CROSS JOIN LATERAL (
        VALUES
        (p.val_starts_at, n.val_starts_at),
        (p.test_starts_at, n.test_starts_at)
    ) AS c (old_at, new_at)
    CROSS JOIN offsets AS o
),

candidates AS (
    -- the feature rows this version added, changed or closed (a removed file's orders
    -- take their instants with them: those rows leave the splits)
    SELECT
        f.customer_id,
        f.feature_time
    FROM feats.customer_feature_history AS f
    WHERE f.valid_from = {{ versions.writing_version() }}
    UNION
    SELECT
        f.customer_id,
        f.feature_time
    FROM feats.customer_feature_history AS f
    WHERE f.valid_to = {{ versions.writing_version() }}
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

-- Every scoped row's place (the header says which).
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
    {{ place.split_of('f.feature_time') }} AS split
FROM scoped AS f
CROSS JOIN split_boundaries AS cuts
{%- endcall %}

{{ dist.scratch_key('work.split_rows') }}

ANALYZE work.split_rows;

-- Write what changed: close the current rows whose split changed or that left (on a full
-- refresh any, else the scope's), add the new ones; fresh statistics after a full refresh
-- (the training set's joins are planned from them).
{{ versions.apply_changes('meta.dataset_split_history', 'work.split_rows',
    ['customer_id', 'feature_time'], ['split'],
    scope_from='work.split_scope AS s',
    scope_where='h.customer_id = s.customer_id AND h.feature_time = s.feature_time') }}
