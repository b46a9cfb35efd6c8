{#-
  Which staged orders count, written once: the features (50_features/050), the labels
  (55_labels/055) and the point-in-time retrieval (50_features/052) must count the same
  orders, or a label would describe orders its row's features never saw. The macros emit
  fragments that the stage files place at their own indentation, so their layout is linted
  there (sqlfluff misreads a Jinja if's whitespace inside a macro).
-#}
-- sqlfluff:exclude_rules:layout.indent

{#- True for an order `alias` that counts: it has a customer (an order without one cannot
    describe one), and its status is not in features.exclude_statuses (no status counts). -#}
{%- import 'macros/versions.sql' as versions -%}

{%- macro counts(alias, features) -%}
{{ alias }}.customer_id IS NOT NULL
{%- if features.exclude_statuses %}
        AND NOT coalesce({{ alias }}.status = ANY({{ features.exclude_statuses | literal }}::text[]), FALSE)
{%- endif -%}
{%- endmacro -%}

{#- The session settings of a window pass over the order instants (features, labels). Days
    are 24-hour days: the frames are computed in UTC, whatever the session's zone. The
    window sort of a million instants fits in memory. The instants (one row per customer and
    order time: about one per order) are grouped by sorting, in the order the windows need:
    the planner, which expects far fewer groups, would build a hash table of 400 MB and then
    sort its output anyway (1.1 s at 1M). -#}
{%- macro window_settings() -%}
SELECT meta.set_run_setting('timezone', 'UTC');
SELECT meta.set_run_setting('work_mem', '512MB');
SELECT meta.set_run_setting('enable_hashagg', 'off');
{%- endmacro -%}

{#- Two CTEs: `orders` (the orders that count) and `order_instants` (one row per customer
    and instant: same-instant orders are peers, counted together), over every staged order
    on a full refresh, else over the caller's text: a query of the orders a daily run's
    scope reads (customer_id: the customer_key, order_at, amount, status). Orders are read by
    customer_key, which is the customer of every order that has one (V016): on Citus it is
    what places them on the customer's shard; an equality on customer_id beside it lets one
    server use the (customer_id, order_at) index. -#}
{%- macro order_instants(features) -%}
orders AS (
    SELECT
        o.customer_id,
        o.order_at,
        o.amount
    FROM (
        SELECT a.customer_key AS customer_id, a.order_at, a.amount, a.status
        FROM stg.orders AS a
        WHERE {{ versions.full_refresh() }} AND a.customer_id IS NOT NULL
        UNION ALL
        {{ caller() | trim }}
    ) AS o
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

{#- A daily run's orders of the scope (work.feature_scope AS s): each customer's from its
    instant on, reaching back `lookback_hours` (the widest window) or to its previous order
    that counts, whichever is earlier; none: its whole history. `columns`: the select list,
    over the order alias a. Base indentation 0: the caller indents it. -#}
{%- macro scope_orders(features, columns, lookback_hours) -%}
SELECT {{ columns }}
{%- if lookback_hours is not none %}
FROM (
    -- each customer's first instant to read, found once per customer with one step of the
    -- index (grouped, so that PostgreSQL computes it before the join: beside the join the
    -- lookup ran once per order read, 123,209 times for a day's 1,255 customers, 0.7 s)
    SELECT
        s.customer_id,
        least(s.from_at - INTERVAL {{ (lookback_hours ~ ' hours') | literal }}, previous.previous_at) AS read_from
    FROM work.feature_scope AS s
    CROSS JOIN LATERAL (
        SELECT max(p.order_at) AS previous_at
        FROM stg.orders AS p
        WHERE
            p.customer_key = s.customer_id AND p.customer_id = s.customer_id AND p.order_at < s.from_at
            AND {{ counts('p', features) }}
    ) AS previous
    GROUP BY s.customer_id, s.from_at, previous.previous_at
) AS s
INNER JOIN stg.orders AS a
    ON a.customer_key = s.customer_id AND a.customer_id = s.customer_id AND a.order_at >= s.read_from
{%- else %}
FROM work.feature_scope AS s
INNER JOIN stg.orders AS a
    ON a.customer_key = s.customer_id AND a.customer_id = s.customer_id
{%- endif %}
{%- endmacro -%}

{#- The windows of an entity `e` over its orders `o` as of e.as_of (50_features/052, in both
    its forms; [as_of - W, as_of], or [as_of - W, as_of) with features.window_end:
    exclusive), and its latest earlier order within the widest window. `feature_windows`: the
    context's, each window's days and column names. -#}
{%- macro window_aggregates(feature_windows, features) %}
{%- set before = ' AND o.order_at < e.as_of' if features.window_end == 'exclusive' else '' %}
{%- for window in feature_windows %}
            count(*) FILTER (WHERE o.order_at >= e.as_of - {{ (window.days * 24 ~ ' hours') | literal }}::interval{{ before }})
                AS {{ window.orders | ident }},
            sum(o.amount) FILTER (WHERE o.order_at >= e.as_of - {{ (window.days * 24 ~ ' hours') | literal }}::interval{{ before }})
                AS {{ window.revenue | ident }},
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
