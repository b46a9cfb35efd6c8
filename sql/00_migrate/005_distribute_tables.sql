{%- import 'macros/distribution.sql' as dist with context -%}
-- With distribution: citus in the config (docs/scale-out.md), makes the migrations'
-- tables Citus tables, once; without it this file does nothing. Run by the migrate stage,
-- after the migrations, as the user the runner connects as.
-- grain: none (distribution of existing tables)
-- requires: the migrations (sql/migrations/), the citus extension in the database
-- writes: stg.orders, raw.raw_events, meta.dataset_split_history, stg.order_lines
-- The feature and label histories (V017) are distributed by their stages once their value
-- columns are added (50_features/050, 55_labels/055), and the scratch tables where they
-- are created (sql/macros/distribution.sql).
{%- if distribution %}

-- Citus connects to the workers as the role a statement runs as: the pipeline's roles
-- (V011) must be able to log in there. Authentication between the nodes is the DBA's:
-- trust on a local cluster (make citus-up), a password file or certificates elsewhere.
DO $login$
DECLARE
    pipeline_role record;
BEGIN
    FOR pipeline_role IN
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
        WHERE r.rolname IN ('raw_to_ready_owner', 'raw_to_ready_loader', 'raw_to_ready_reader') AND NOT r.rolcanlogin
    LOOP
        EXECUTE format('ALTER ROLE %I LOGIN', pipeline_role.rolname);
    END LOOP;
END
$login$;

-- stg.orders: one row per order, sharded by its customer (V016): its key must hold the
-- distribution column, so it is (customer_key, order_id) on Citus; validation keeps order
-- ids unique (the unique rules of 30_validate/030 and 37_model/038).
DO $orders_key$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'stg.orders'::regclass) THEN
        ALTER TABLE stg.orders DROP CONSTRAINT orders_pkey;
        ALTER TABLE stg.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (customer_key, order_id);
        CREATE INDEX IF NOT EXISTS orders_order_id_idx ON stg.orders (order_id);
    END IF;
END
$orders_key$;

{{ dist.distribute('stg.orders', 'customer_key', anchor=true) }}

-- The raw events spread over the workers by event id: COPY and the batch's scans run on
-- every shard. Their immutability triggers go with them to every shard.
SELECT set_config('citus.enable_unsafe_triggers', 'on', TRUE);

{{ dist.distribute('raw.raw_events', 'event_id', anchor=true) }}

{{ dist.distribute('meta.dataset_split_history', 'customer_id') }}

-- Citus draws an identity column's values with nextval() itself, which needs USAGE on its
-- sequence (one server needs only INSERT on the table): the loader quarantines records.
GRANT USAGE ON SEQUENCE meta.quarantine_quarantine_id_seq TO raw_to_ready_loader;

-- the lines of the staged orders lie with their orders (V018: keyed by customer_key)
{{ dist.distribute('stg.order_lines', 'customer_key') }}
{%- endif %}
