{%- import 'macros/orders.sql' as counted -%}
-- Rebuilds the point-in-time customer features from stg.orders.
-- grain: one row per (customer_id, feature_time), feature_time being an instant at which
--        the customer ordered; orders at the same instant share one row
-- requires: 040_stg_orders.sql
-- Definitions (customer c, feature_time t, over c's staged orders that count: every
-- status but features.exclude_statuses):
--   orders_<N>d  = count of orders with t - N days <= order_at <= t
--   revenue_<N>d = sum of amount over the same orders (0 when none has an amount)
--   days_since_last_order = floor((t - latest order_at strictly before t) / 24 h);
--                           NULL (or the configured value) when there is none
-- Only orders at or before t are in any frame, so nothing later can leak into a row.
-- Days are 24-hour days: the frames are computed in UTC, whatever the session's zone.
SET LOCAL timezone = 'UTC';
-- The window sort of a million instants fits in memory.
SET LOCAL work_mem = '512MB';

DROP TABLE IF EXISTS feats.customer_features;

-- Unlogged: derived data, rebuilt from stg.orders by every run; after a crash
-- PostgreSQL empties it and the next run rebuilds it.
CREATE UNLOGGED TABLE feats.customer_features AS
WITH {{ counted.order_instants(features) }},

windowed AS (
    SELECT
        customer_id,
        feature_time,
        {% for days in features.windows_days %}
        sum(order_count) OVER {{ ('last_' ~ days ~ 'd') | ident }} AS {{ ('orders_' ~ days ~ 'd') | ident }},
        sum(revenue) OVER {{ ('last_' ~ days ~ 'd') | ident }} AS {{ ('revenue_' ~ days ~ 'd') | ident }},
        {% endfor %}
        -- rows are distinct instants, so the previous row is strictly earlier. lag()
        -- ignores the frame, so it shares the first window's pass over the rows.
        lag(feature_time) OVER {{ ('last_' ~ features.windows_days[0] ~ 'd') | ident }} AS previous_order_at
    FROM order_instants
    WINDOW
    {% for days in features.windows_days %}
    {{ ('last_' ~ days ~ 'd') | ident }} AS (
        PARTITION BY customer_id ORDER BY feature_time
        RANGE BETWEEN INTERVAL {{ (days ~ ' days') | literal }} PRECEDING AND CURRENT ROW
    ){{ "," if not loop.last }}
    {% endfor %}
)

SELECT
    customer_id,
    feature_time,
    {% for days in features.windows_days %}
    {{ ('orders_' ~ days ~ 'd') | ident }}::bigint AS {{ ('orders_' ~ days ~ 'd') | ident }},
    coalesce({{ ('revenue_' ~ days ~ 'd') | ident }}, 0) AS {{ ('revenue_' ~ days ~ 'd') | ident }},
    {% endfor %}
    coalesce(
        floor(extract(EPOCH FROM feature_time - previous_order_at) / 86400)::integer,
        {{ features.days_since_last_order_if_none | literal }}::integer
    ) AS days_since_last_order
FROM windowed;

ALTER TABLE feats.customer_features
ADD CONSTRAINT customer_features_pkey PRIMARY KEY (customer_id, feature_time);

COMMENT ON TABLE feats.customer_features IS
'Point-in-time customer features: one row per customer and order instant. '
'See sql/050_feats_customer_features.sql for the definitions.';

-- Fresh statistics for the splits stage's plan.
ANALYZE feats.customer_features;
