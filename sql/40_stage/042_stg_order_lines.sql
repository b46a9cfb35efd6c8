{%- import 'macros/versions.sql' as versions -%}
-- Merges the lines the lines models produced (stg.model_lines, 37_model/039) into
-- stg.order_lines beside their orders: the lines of every order this run staged (new or
-- changed) are replaced by the batch's, and the lines of orders that left staging leave.
-- grain: one row per (order, line_number)
-- requires: 37_model/039_model_lines.sql, 40_stage/040_stg_orders.sql in the same
--           transaction, V018__create_order_lines.sql
-- writes: stg.order_lines
-- settings: raw_to_ready.run_id, raw_to_ready.full_refresh (sql/macros/versions.sql)
-- A full refresh stages exactly the batch's orders, so it replaces every line. Incremental:
-- every model order is new or replaces a staged one (37_model/037), so its lines are the
-- batch's; the removed files' orders that no new file holds left stg.orders (040), and
-- their lines leave here. An order's customer and instant are copied from the batch, where
-- 040 took them too.

-- the lines removed (the stage counts orders)
DELETE FROM stg.order_lines AS l
WHERE
    {{ versions.full_refresh() }}
    OR EXISTS (
        SELECT 1
        FROM stg.model_orders AS b
        WHERE b.customer_key = l.customer_key AND b.order_id = l.order_id
    )
    OR NOT EXISTS (
        SELECT 1
        FROM stg.orders AS o
        WHERE o.customer_key = l.customer_key AND o.order_id = l.order_id
    );

-- the lines added (the stage counts orders)
INSERT INTO stg.order_lines (
    customer_key, order_id, line_number, customer_id, order_at, item, quantity, unit_price, amount,
    staged_run_id
)
SELECT
    m.customer_key,
    m.order_id,
    m.line_number,
    m.customer_id,
    m.order_at,
    m.item,
    m.quantity,
    m.unit_price,
    m.amount,
    current_setting('raw_to_ready.run_id') AS staged_run_id
FROM stg.model_lines AS m;

{{ versions.analyze_after_full_refresh('stg.order_lines') }}
