-- Source model for the UCI "Online Retail" export (and any line-grain export like it):
-- one record per invoice line, one order per invoice.
-- grain: one row per InvoiceNo
-- requires: the source's raw events (source_events: its files in this run, quarantined
--           records left out; lines without a CustomerID are quarantined by the config);
--           record-level types checks on Quantity, UnitPrice and InvoiceDate passed
-- Semantics (docs/sources.md, "UCI Online Retail"):
--   order_id    = InvoiceNo; a leading C marks a cancellation (status cancelled, a
--                 negative amount); A... "Adjust bad debt" rows are not customer orders
--   customer_id = CustomerID without the float export's ".0" (17850.0 -> 17850)
--   order_at    = the invoice's earliest line, InvoiceDate read in staging.source_timezone
--                 (Europe/London: naive UK local time, BST in summer)
--   amount      = sum of Quantity * UnitPrice over the invoice's lines, rounded to
--                 staging.amount_scale; a line repeated verbatim counts once
--   lineage     = the invoice's first line in the batch (file order, then line)
--   country     = the Country of the invoice's first line (staging.attributes)
-- The invoice lines are those of the lines model, uci_online_retail_lines.sql.
WITH order_lines AS (
    -- the invoice lines, as the lines model defines them
    {% filter indent(4) %}{% include 'sources/uci_online_retail_lines.sql' %}{% endfilter %}
)

SELECT
    order_id COLLATE "C" AS order_id,  -- noqa: RF01, RF03
    min(customer_id) COLLATE "C" AS customer_id,  -- noqa: RF01, RF03
    min(line_at) AS order_at,
    round(sum(amount), {{ staging.amount_scale | literal }}) AS amount,
    CASE WHEN order_id LIKE 'C%' THEN 'cancelled' ELSE 'completed' END AS status,
    (array_agg(event_id ORDER BY file_position, record_number))[1] AS source_event_id,
    (array_agg(file_sha256 ORDER BY file_position, record_number))[1] AS file_sha256,
    (array_agg(file_line_number ORDER BY file_position, record_number))[1] AS line_number,
    -- staging.attributes: the invoice's country (its first line's)
    (array_agg(country ORDER BY file_position, record_number))[1] AS country
FROM order_lines
GROUP BY order_id
