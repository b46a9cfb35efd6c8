{#-
  Which staged orders count, written once: the features (050), the labels (055) and the
  point-in-time retrieval (052) must count the same orders, or a label would describe
  orders its row's features never saw.
-#}

{#- True for an order `alias` that counts: it has a customer (an order without one cannot
    describe one), and its status is not in features.exclude_statuses (no status counts). -#}
{%- macro counts(alias, features) -%}
{{ alias }}.customer_id IS NOT NULL
{%- if features.exclude_statuses %}
        AND NOT coalesce({{ alias }}.status = ANY({{ features.exclude_statuses | literal }}::text[]), FALSE)
{%- endif -%}
{%- endmacro -%}

{#- Two CTEs: `orders` (the orders that count) and `order_instants` (one row per customer
    and instant: same-instant orders are peers, counted together). `source` is a FROM item
    with alias o and the columns of stg.orders (default: all of stg.orders). -#}
{%- macro order_instants(features, source='stg.orders AS o') -%}
orders AS (
    SELECT
        o.customer_id,
        o.order_at,
        o.amount
    FROM {{ source }}
    WHERE
        {{ counts('o', features) }}
),

order_instants AS (
    SELECT
        customer_id,
        order_at AS feature_time,
        count(*)::integer AS order_count,
        sum(amount) AS revenue
    FROM orders
    GROUP BY customer_id, order_at
)
{%- endmacro -%}

{#- The windows of an entity `e` over its orders `o` as of e.as_of (052, in both its forms),
    and its latest earlier order within the widest window. -#}
{%- macro window_aggregates(features) %}
{%- for days in features.windows_days %}
            count(*) FILTER (WHERE o.order_at >= e.as_of - {{ (days * 24 ~ ' hours') | literal }}::interval)
                AS {{ ('orders_' ~ days ~ 'd') | ident }},
            sum(o.amount) FILTER (WHERE o.order_at >= e.as_of - {{ (days * 24 ~ ' hours') | literal }}::interval)
                AS {{ ('revenue_' ~ days ~ 'd') | ident }},
{%- endfor %}
            max(o.order_at) FILTER (WHERE o.order_at < e.as_of) AS previous_order_at
{%- endmacro -%}

{#- The end of what the data has observed: labels.observed_until, or the latest staged order.
    A label window ending after it is censored. Read source_timezone for observed_until. -#}
{%- macro observed_end(labels) -%}
coalesce(
    {{ labels.observed_until | literal }}::timestamptz,
    (SELECT max(o.order_at) FROM stg.orders AS o)
)
{%- endmacro -%}
