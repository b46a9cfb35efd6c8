-- Indexes the staged orders by customer and time, for point-in-time retrieval
-- (feats.features_as_of): each entity reads its customer's orders in a window ending at
-- its as_of, and its latest order before as_of, with one index range scan each.
-- grain: an index only
-- requires: V003__create_stg_orders.sql
-- Kept up to date by the staging merge (040); the features stage (050) does not use it.
CREATE INDEX orders_customer_id_order_at_idx
ON stg.orders (customer_id, order_at);
