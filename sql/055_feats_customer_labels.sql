{%- import 'macros/orders.sql' as counted -%}
{%- import 'macros/versions.sql' as versions -%}
-- Brings the forward-looking labels of every feature row up to date, as rows of the
-- version this run writes (published by 070; readers see feats.customer_labels).
-- grain: one row per (customer_id, feature_time) of the features
-- requires: 050_feats_customer_features.sql (work.feature_scope)
-- settings: raw_to_ready.full_refresh, raw_to_ready.version_number,
--           raw_to_ready.published_version (sql/macros/versions.sql)
-- Definitions (customer c, feature_time t, horizon H = labels.horizon_days, over c's
-- staged orders that count: every status but features.exclude_statuses):
--   repeat_<H>d       = c places an order with t < order_at <= t + H days
--   revenue_next_<H>d = sum of amount over those orders (0 when none)
--   label_window_end  = t + H days
--   is_censored       = label_window_end is after the data's observed end (the last
--                       staged order instant, or labels.observed_until): the labels are
--                       NULL, never "no repeat", and the row is in no training set
-- Incremental: an order changed at instant x changes the labels of its customer's rows
-- with t >= x - H days only; and when the observed end moves from e0 to e1, the rows of
-- any customer with t + H days between them (and only those) change censoring. Those rows are recomputed
-- (every row on a full refresh); only the rows that differ are written.
-- Days are 24-hour days: the frames are computed in UTC, whatever the session's zone.
{%- if labels %}
{%- set label_columns = [
    ('label_window_end', 'timestamptz'), ('is_censored', 'boolean'),
    ('repeat_' ~ labels.horizon_days ~ 'd', 'boolean'), ('revenue_next_' ~ labels.horizon_days ~ 'd', 'numeric')] %}
-- labels.observed_until, when given, is read like a source timestamp.
SET LOCAL timezone = {{ staging.source_timezone | literal }};

DROP TABLE IF EXISTS work.label_observed_end;

CREATE UNLOGGED TABLE work.label_observed_end AS
SELECT
    {{ counted.observed_end(labels) }} AS observed_end,
    (
        SELECT v.observed_end
        FROM meta.feature_versions AS v
        WHERE v.version_number = {{ versions.published() }}
    ) AS previous_end;

SET LOCAL timezone = 'UTC';
SET LOCAL work_mem = '512MB';
{{ versions.index_friendly() }}

CREATE TABLE IF NOT EXISTS feats.customer_label_history (
    customer_id text COLLATE "C" NOT NULL,
    feature_time timestamptz NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint
);

{{ versions.ensure_columns('feats.customer_label_history', label_columns) }}

CREATE UNIQUE INDEX IF NOT EXISTS customer_label_history_current_idx
ON feats.customer_label_history (customer_id, feature_time) WHERE valid_to IS NULL;

CREATE INDEX IF NOT EXISTS customer_label_history_valid_from_idx
ON feats.customer_label_history (valid_from);

CREATE INDEX IF NOT EXISTS customer_label_history_valid_to_idx
ON feats.customer_label_history (valid_to) WHERE valid_to IS NOT NULL;

{{ versions.discard_unpublished('feats.customer_label_history') }}

-- The customers to relabel and the instant from which: the changed customers from H days
-- before their earliest change, and the customers with rows whose window end the moved
-- observed end passes. None on a full refresh.
DROP TABLE IF EXISTS work.label_scope;

CREATE UNLOGGED TABLE work.label_scope AS
WITH band AS (
    SELECT
        least(e.observed_end, e.previous_end) - make_interval(days => {{ labels.horizon_days | literal }}) AS low,
        greatest(e.observed_end, e.previous_end) - make_interval(days => {{ labels.horizon_days | literal }}) AS high
    FROM work.label_observed_end AS e
    WHERE e.observed_end IS DISTINCT FROM e.previous_end
),

starts AS (
    SELECT
        s.customer_id,
        s.from_at - make_interval(days => {{ labels.horizon_days | literal }}) AS from_at,
        'infinity'::timestamptz AS until_at
    FROM work.feature_scope AS s
    UNION ALL
    -- only the band's rows change censoring: the rows after it keep theirs
    SELECT
        f.customer_id,
        b.low AS from_at,
        b.high AS until_at
    FROM band AS b
    INNER JOIN feats.customer_feature_history AS f
        ON b.low < f.feature_time AND b.high >= f.feature_time
    WHERE f.valid_to IS NULL
)

-- one span per customer, covering both kinds (recomputing a row in between is harmless)
SELECT
    customer_id,
    min(from_at) AS from_at,
    max(until_at) AS until_at
FROM starts
WHERE NOT {{ versions.full_refresh() }}
GROUP BY customer_id;

ALTER TABLE work.label_scope ADD PRIMARY KEY (customer_id);

ANALYZE work.label_scope;

DROP TABLE IF EXISTS work.label_rows;

CREATE UNLOGGED TABLE work.label_rows AS
WITH {{ counted.order_instants(features, '(
        SELECT a.customer_id, a.order_at, a.amount, a.status
        FROM stg.orders AS a
        WHERE ' ~ versions.full_refresh() ~ '
        UNION ALL
        SELECT a.customer_id, a.order_at, a.amount, a.status
        FROM work.label_scope AS s
        INNER JOIN stg.orders AS a
            ON
                a.customer_id = s.customer_id
                AND a.order_at >= s.from_at
                -- the window of a row reads H days past it
                AND a.order_at <= s.until_at + make_interval(days => ' ~ (labels.horizon_days | literal) ~ ')
    ) AS o') }},

forward AS (
    SELECT
        customer_id,
        feature_time,
        -- one row per instant, so the frame less the current row is exactly (t, t + H].
        -- Subtracted, not EXCLUDE CURRENT ROW: an excluding frame makes PostgreSQL sum
        -- every frame afresh (rows x frame), a moving one adds and removes one row per step.
        sum(order_count) OVER next_window - order_count AS next_orders,
        CASE
            -- NULL when no later order in the window has an amount, as a sum of none is
            WHEN count(revenue) OVER next_window > (revenue IS NOT NULL)::integer
                THEN sum(revenue) OVER next_window - coalesce(revenue, 0)
        END AS next_revenue
    FROM order_instants
    WINDOW next_window AS (
        PARTITION BY customer_id ORDER BY feature_time
        RANGE BETWEEN CURRENT ROW AND INTERVAL {{ (labels.horizon_days ~ ' days') | literal }} FOLLOWING
    )
)

SELECT
    f.customer_id,
    f.feature_time,
    f.feature_time + make_interval(days => {{ labels.horizon_days | literal }}) AS label_window_end,
    f.feature_time + make_interval(days => {{ labels.horizon_days | literal }}) > e.observed_end AS is_censored,
    CASE
        WHEN f.feature_time + make_interval(days => {{ labels.horizon_days | literal }}) <= e.observed_end
            THEN coalesce(f.next_orders, 0) > 0
    END AS {{ ('repeat_' ~ labels.horizon_days ~ 'd') | ident }},
    CASE
        WHEN f.feature_time + make_interval(days => {{ labels.horizon_days | literal }}) <= e.observed_end
            THEN coalesce(f.next_revenue, 0)
    END AS {{ ('revenue_next_' ~ labels.horizon_days ~ 'd') | ident }}
FROM forward AS f
CROSS JOIN work.label_observed_end AS e
LEFT JOIN work.label_scope AS s ON f.customer_id = s.customer_id
WHERE {{ versions.full_refresh() }} OR (f.feature_time >= s.from_at AND f.feature_time <= s.until_at);

ALTER TABLE work.label_rows ADD PRIMARY KEY (customer_id, feature_time);

ANALYZE work.label_rows;

{{ versions.close_changed('feats.customer_label_history', 'work.label_rows',
    ['customer_id', 'feature_time'], label_columns | map('first') | list,
    scope_where=versions.full_refresh()) }}

{{ versions.close_changed('feats.customer_label_history', 'work.label_rows',
    ['customer_id', 'feature_time'], label_columns | map('first') | list,
    scope_from='work.label_scope AS s',
    scope_where='h.customer_id = s.customer_id AND h.feature_time >= s.from_at AND h.feature_time <= s.until_at') }}

{{ versions.add_changed('feats.customer_label_history', 'work.label_rows',
    ['customer_id', 'feature_time'], label_columns | map('first') | list) }}

{{ versions.analyze_after_full_refresh('feats.customer_label_history') }}
{%- else %}
-- No labels: nothing to compute (070 drops the label views).
SELECT 1 AS no_labels;
{%- endif %}
