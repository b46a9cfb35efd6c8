{%- import 'macros/orders.sql' as counted -%}
-- Computes forward-looking labels for every feature row, from the staged orders that count.
-- grain: one row per (customer_id, feature_time) of feats.customer_features
-- requires: 050_feats_customer_features.sql
-- Definitions (customer c, feature_time t, horizon H = labels.horizon_days, over c's
-- staged orders that count: every status but features.exclude_statuses):
--   repeat_<H>d       = c places an order with t < order_at <= t + H days
--   revenue_next_<H>d = sum of amount over those orders (0 when none)
--   label_window_end  = t + H days
--   is_censored       = label_window_end is after the data's observed end (the last
--                       staged order instant, or labels.observed_until): the labels are
--                       NULL, never "no repeat", and the row is in no training set
-- Days are 24-hour days: the frames are computed in UTC, whatever the session's zone.
DROP TABLE IF EXISTS feats.customer_labels;
{%- if labels %}
-- labels.observed_until, when given, is read like a source timestamp.
SET LOCAL timezone = {{ staging.source_timezone | literal }};

CREATE TEMPORARY TABLE label_observed_end ON COMMIT DROP AS
SELECT
    coalesce(
        {{ labels.observed_until | literal }}::timestamptz,
        (SELECT max(o.order_at) FROM stg.orders AS o)
    ) AS observed_end;

SET LOCAL timezone = 'UTC';
SET LOCAL work_mem = '512MB';

-- Unlogged: derived data, rebuilt from stg.orders by every run.
CREATE UNLOGGED TABLE feats.customer_labels AS
WITH {{ counted.order_instants(features) }},

forward AS (
    SELECT
        customer_id,
        feature_time,
        -- one row per instant, so excluding the current row leaves exactly (t, t + H]
        sum(order_count) OVER next_window AS next_orders,
        sum(revenue) OVER next_window AS next_revenue
    FROM order_instants
    WINDOW next_window AS (
        PARTITION BY customer_id ORDER BY feature_time
        RANGE BETWEEN CURRENT ROW AND INTERVAL {{ (labels.horizon_days ~ ' days') | literal }} FOLLOWING
        EXCLUDE CURRENT ROW
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
CROSS JOIN label_observed_end AS e;

ALTER TABLE feats.customer_labels
ADD CONSTRAINT customer_labels_pkey PRIMARY KEY (customer_id, feature_time);

COMMENT ON TABLE feats.customer_labels IS
'Forward-looking labels per feature row; NULL when censored. '
'See sql/055_feats_customer_labels.sql for the definitions.';

ANALYZE feats.customer_labels;
{%- endif %}
