-- Runs every source's model over its batch and keeps the orders they produce in
-- stg.model_orders, for the order-level checks (038) and the merge into stg.orders (040).
-- grain: one row per order a source model produced in this run
-- requires: 030/033_validate_*.sql passed for this batch (the runner stops before this
--           file otherwise), V006__create_quarantine_and_model_orders.sql
-- settings: raw_to_ready.run_id
-- Naive source timestamps are read in the configured source time zone; timestamps
-- with an explicit offset keep it. Either way order_at is an absolute instant.
SET LOCAL timezone = {{ staging.source_timezone | literal }};
-- Ambiguous dates (01/02/2024) are read in the configured order, never the server's.
SET LOCAL datestyle = {{ ('ISO, ' ~ staging.date_order) | literal }};
-- Casting, sorting and grouping a million records wants memory, not temporary files.
SET LOCAL work_mem = '512MB';

TRUNCATE stg.model_orders;
{% for model in models %}
-- source {{ model.source_name }}: the model {{ model.path }}
INSERT INTO stg.model_orders (
    source_name, order_id, customer_id, order_at, amount, status,
    source_event_id, file_sha256, line_number, run_id
)
SELECT
    {{ model.source_name | literal }} AS source_name,
    m.order_id,
    m.customer_id,
    m.order_at,
    m.amount,
    m.status,
    m.source_event_id,
    m.file_sha256,
    m.line_number,
    current_setting('raw_to_ready.run_id') AS run_id
FROM (
    {{ model.sql }}
) AS m;
{% endfor %}
-- Fresh statistics for the checks' and the merge's plans.
ANALYZE stg.model_orders;
