{%- import 'macros/versions.sql' as versions with context -%}
{%- import 'macros/splits.sql' as place with context -%}
-- A daily run's changes to the split counts: the rows the published version counted that
-- this run moved (-1 where they were, +1 where they are now), each in the span its
-- version's cut-offs put it in and censored by its version's observed end. 064 adds them
-- to the published version's counts. Empty on a full refresh (064 counts every row).
-- grain: the temporary table split_changed_rows, one row per changed row and side
-- requires: 60_splits/060_split_cutoffs.sql and 061_split_assignments.sql in the same
--           transaction (split_previous, split_boundaries, work.split_scope),
--           55_labels/055_customer_label_history.sql (work.label_observed_end)
-- writes: nothing
-- settings: raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
{#- A feature row `h` this run did not assign again (062): its split did not move. -#}
{%- macro outside_scope(h) -%}
NOT EXISTS (
            SELECT 1
            FROM work.split_scope AS s
            WHERE s.customer_id = {{ h }}.customer_id AND s.feature_time = {{ h }}.feature_time
        )
{%- endmacro %}
{#- The current split row `h` (feature_time, split) of each scope row `s`; with
    `published_only`, one the published version holds too. Citus: a join on the shards (the
    scope and the history are co-located); one server: a lookup in the current rows' index
    per scope row. -#}
{%- macro current_split_row(published_only=false) %}
{%- if distribution %}
    INNER JOIN meta.dataset_split_history AS h
        ON
            s.customer_id = h.customer_id AND s.feature_time = h.feature_time AND h.valid_to IS NULL
{%- if published_only %}
            AND h.valid_from <= {{ versions.published_version() }}
{%- endif %}
{%- else %}
    CROSS JOIN
        LATERAL (
            SELECT
                a.feature_time,
                a.split
            FROM meta.dataset_split_history AS a
            WHERE
                a.customer_id = s.customer_id AND a.feature_time = s.feature_time AND a.valid_to IS NULL
{%- if published_only %}
                AND a.valid_from <= {{ versions.published_version() }}
{%- endif %}
            OFFSET 0  -- noqa: AM09
        ) AS h
{%- endif %}
{%- endmacro %}
CREATE TEMPORARY TABLE split_changed_rows ON COMMIT DROP AS
{% if labels -%}
WITH censoring_band AS (
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
        p.observed_end IS DISTINCT FROM e.observed_end
        AND h.valid_to IS NULL
        AND h.feature_time > least(p.observed_end, e.observed_end) - {{ place.horizon() }}
        AND h.feature_time <= greatest(p.observed_end, e.observed_end) - {{ place.horizon() }}
        AND {{ outside_scope('h') }}
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
                AND f.feature_time > least(p.observed_end, e.observed_end) - {{ place.horizon() }}
                AND f.feature_time <= greatest(p.observed_end, e.observed_end) - {{ place.horizon() }}
            OFFSET 0  -- noqa: AM09
        ) AS h
    WHERE
        p.observed_end IS DISTINCT FROM e.observed_end
        AND {{ outside_scope('h') }}
    {%- endif %}
),

{% else -%}
WITH
{% endif -%}
changed_rows AS (
    -- incremental: the scope's rows as they are now (+1) and as the published version had
    -- them (-1), each in the span its version's cut-offs put it in and censored by its
    -- version's observed end; no other row moved
    SELECT
        {{ place.counted_row('cuts', place.new_observed_end(), 1) }}
    FROM work.split_scope AS s
    CROSS JOIN split_boundaries AS cuts
    {{- current_split_row() }}
    UNION ALL
    SELECT
        {{ place.counted_row('p', 'p.observed_end', -1) }}
    FROM work.split_scope AS s
    CROSS JOIN split_previous AS p
    -- a published row this run left as it was
    {{- current_split_row(published_only=true) }}
    UNION ALL
    SELECT
        {{ place.counted_row('p', 'p.observed_end', -1) }}
    -- a published row this run closed (all of them are the scope's)
    FROM meta.dataset_split_history AS h
    CROSS JOIN split_previous AS p
    WHERE h.valid_to = {{ versions.writing_version() }}
    {%- if labels %}
    UNION ALL
    -- the rows outside the scope whose censoring the moved observed end flips (t + H
    -- between the old end and the new one): same split and span, censored as each
    -- version's end says (-1 as published, +1 as now)
    SELECT
        {{ place.span_of('b.feature_time', 'cuts') }} AS span,
        {{ place.split_of('b.feature_time') }} AS split,
        c.is_censored,
        c.sign
    FROM censoring_band AS b
    CROSS JOIN split_boundaries AS cuts
    CROSS JOIN
        LATERAL (
            VALUES
            ({{ place.censored('b.feature_time', 'b.new_end') }}, 1),
            ({{ place.censored('b.feature_time', 'b.previous_end') }}, -1)
        ) AS c (is_censored, sign)
    {%- endif %}
)

SELECT
    c.span,
    c.split,
    c.is_censored,
    c.sign
FROM changed_rows AS c
WHERE NOT {{ versions.full_refresh() }};
