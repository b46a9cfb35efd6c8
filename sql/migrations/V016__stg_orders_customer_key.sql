-- stg.orders gets customer_key: the order's customer, or its order id when it has none.
-- It is what Citus distributes staged orders by (issue 11, sql/005_distribute_tables.sql):
-- a distribution column may never be NULL, and an order without a customer still needs
-- a shard. Orders with a customer land with the customer's features, labels and splits;
-- orders without one spread evenly. On one server it is only written (040) and joined on.
-- grain: one row per order_id (unchanged)
-- requires: V003__create_stg_orders.sql
ALTER TABLE stg.orders ADD COLUMN customer_key text COLLATE "C";

UPDATE stg.orders SET customer_key = coalesce(customer_id, order_id);

ALTER TABLE stg.orders ALTER COLUMN customer_key SET NOT NULL;

COMMENT ON COLUMN stg.orders.customer_key IS
'coalesce(customer_id, order_id): the customer, or the order itself; what Citus shards orders by.';
