"""The comparator of `make bench`: DuckDB, in-process, doing the pipeline's stages on the same
file, each timed. Bench-only (requirements-bench.txt); nothing in the pipeline imports it.

The same work, stage for stage, as the PostgreSQL pipeline does on a full rebuild:
  ingest    every CSV record, as text, with its line number, into a table of JSON payloads
  validate  the shipped expectations (configs/expectations.yaml) over the payloads: one
            aggregate scan (required fields, non-null, types, range, allowed values, decimal
            places), then the repeated order ids and exact repeats
  model     one typed row per order (the latest record of an id), status trimmed, lower-cased
  stage     the orders into a table keyed by order_id
  features  per customer and instant: orders and revenue over 7 and 30 days (RANGE frames),
            days since the previous instant
  labels    per feature row: any order, and the revenue, in the next 30 days (t, t + 30 d]
  splits    time cut-offs at 70 % and 85 % of the rows; rows whose label window reaches the
            next split purged
  profile   quantiles of the amount and of every feature
What it leaves out, and the pipeline pays for: durability (WAL, logged tables), versioned
history rows and their indexes, the failure history, the registry. The ratio measures them too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


STATUSES = ["completed", "paid", "cancelled", "refunded", "pending"]


def field(name: str) -> str:
    return f"json_extract_string(payload, '$.{name}')"


STAGES: list[tuple[str, list[str]]] = [
    ("ingest", [
        """CREATE TABLE raw_events AS
           SELECT row_number() OVER () + 1 AS line_number,
                  to_json(struct_pack(order_id, customer_id, order_ts, amount, status)) AS payload
           FROM read_csv({path}, header = true, all_varchar = true)""",
    ]),
    ("validate", [
        f"""CREATE TABLE validation_counts AS
           SELECT count(*) AS row_count,
             count(*) FILTER (WHERE json_extract(payload, '$.order_id') IS NULL) AS missing_order_id,
             count(*) FILTER (WHERE nullif(trim({field('order_id')}), '') IS NULL) AS null_order_id,
             count(*) FILTER (WHERE nullif(trim({field('customer_id')}), '') IS NULL) AS null_customer_id,
             count(*) FILTER (WHERE nullif(trim({field('order_ts')}), '') IS NULL) AS null_order_ts,
             count(*) FILTER (WHERE nullif(trim({field('amount')}), '') IS NULL) AS null_amount,
             count(*) FILTER (WHERE {field('order_ts')} IS NOT NULL
                              AND TRY_CAST({field('order_ts')} AS TIMESTAMPTZ) IS NULL) AS bad_order_ts,
             count(*) FILTER (WHERE {field('amount')} IS NOT NULL
                              AND TRY_CAST({field('amount')} AS DECIMAL(38, 10)) IS NULL) AS bad_amount,
             count(*) FILTER (WHERE TRY_CAST({field('amount')} AS DECIMAL(38, 10)) < 0) AS negative_amount,
             count(*) FILTER (WHERE {field('status')} IS NOT NULL
                              AND lower(trim({field('status')})) NOT IN ({', '.join(repr(s) for s in STATUSES)}))
                 AS bad_status,
             count(*) FILTER (WHERE TRY_CAST({field('amount')} AS DECIMAL(38, 10))
                              != round(TRY_CAST({field('amount')} AS DECIMAL(38, 10)), 2)) AS too_many_places
           FROM raw_events""",
        f"""CREATE TABLE validation_repeats AS
           SELECT trim({field('order_id')}) AS order_id, count(*) AS records, count(DISTINCT payload) AS variants
           FROM raw_events GROUP BY 1 HAVING count(*) > 1""",
    ]),
    ("model", [
        f"""CREATE TABLE model_orders AS
           SELECT DISTINCT ON (order_id) *
           FROM (SELECT trim({field('order_id')}) AS order_id,
                        nullif(trim({field('customer_id')}), '') AS customer_id,
                        CAST({field('order_ts')} AS TIMESTAMPTZ) AS order_at,
                        round(CAST({field('amount')} AS DECIMAL(18, 2)), 2) AS amount,
                        nullif(lower(trim({field('status')})), '') AS status,
                        line_number
                 FROM raw_events)
           ORDER BY order_id, line_number DESC""",
    ]),
    ("stage", [
        """CREATE TABLE orders (order_id VARCHAR PRIMARY KEY, customer_id VARCHAR, order_at TIMESTAMPTZ,
                                amount DECIMAL(18, 2), status VARCHAR, line_number BIGINT)""",
        "INSERT INTO orders SELECT * FROM model_orders",
    ]),
    ("features", [
        """CREATE TABLE features AS
           WITH instants AS (
               SELECT customer_id, order_at AS feature_time, count(*) AS order_count, sum(amount) AS revenue
               FROM orders WHERE customer_id IS NOT NULL GROUP BY 1, 2)
           SELECT customer_id, feature_time,
                  sum(order_count) OVER w7 AS orders_7d, coalesce(sum(revenue) OVER w7, 0) AS revenue_7d,
                  sum(order_count) OVER w30 AS orders_30d, coalesce(sum(revenue) OVER w30, 0) AS revenue_30d,
                  floor(epoch(feature_time - lag(feature_time) OVER w7) / 86400) AS days_since_last_order
           FROM instants
           WINDOW w7 AS (PARTITION BY customer_id ORDER BY feature_time
                         RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW),
                  w30 AS (PARTITION BY customer_id ORDER BY feature_time
                          RANGE BETWEEN INTERVAL 30 DAYS PRECEDING AND CURRENT ROW)""",
    ]),
    ("labels", [
        """CREATE TABLE labels AS
           WITH instants AS (
               SELECT customer_id, order_at AS feature_time, count(*) AS order_count, sum(amount) AS revenue
               FROM orders WHERE customer_id IS NOT NULL GROUP BY 1, 2)
           SELECT customer_id, feature_time, feature_time + INTERVAL 30 DAYS AS label_window_end,
                  coalesce(sum(order_count) OVER next30, 0) > 0 AS repeat_30d,
                  coalesce(sum(revenue) OVER next30, 0) AS revenue_next_30d
           FROM instants
           WINDOW next30 AS (PARTITION BY customer_id ORDER BY feature_time
                             RANGE BETWEEN INTERVAL 1 MICROSECOND FOLLOWING AND INTERVAL 30 DAYS FOLLOWING)""",
    ]),
    ("splits", [
        """CREATE TABLE cuts AS
           SELECT quantile_disc(feature_time, 0.70) AS val_starts_at,
                  quantile_disc(feature_time, 0.85) AS test_starts_at
           FROM features""",
        """CREATE TABLE splits AS
           SELECT f.customer_id, f.feature_time,
                  CASE WHEN f.feature_time >= c.test_starts_at THEN 'test'
                       WHEN f.feature_time >= c.val_starts_at
                            AND f.feature_time + INTERVAL 30 DAYS >= c.test_starts_at THEN 'purged'
                       WHEN f.feature_time >= c.val_starts_at THEN 'val'
                       WHEN f.feature_time + INTERVAL 30 DAYS >= c.val_starts_at THEN 'purged'
                       ELSE 'train' END AS split
           FROM features AS f CROSS JOIN cuts AS c""",
    ]),
    ("profile", [
        """CREATE TABLE profile AS
           SELECT quantile_disc(amount, [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]) AS amount_q,
                  count(*) FILTER (WHERE amount IS NULL) AS amount_nulls,
                  count(DISTINCT customer_id) AS customers
           FROM model_orders""",
        """CREATE TABLE feature_profile AS
           SELECT s.split,
                  quantile_disc(f.orders_7d, [0.1, 0.5, 0.9]) AS orders_7d_q,
                  quantile_disc(f.revenue_7d, [0.1, 0.5, 0.9]) AS revenue_7d_q,
                  quantile_disc(f.orders_30d, [0.1, 0.5, 0.9]) AS orders_30d_q,
                  quantile_disc(f.revenue_30d, [0.1, 0.5, 0.9]) AS revenue_30d_q,
                  quantile_disc(f.days_since_last_order, [0.1, 0.5, 0.9]) AS days_q
           FROM features AS f JOIN splits AS s USING (customer_id, feature_time)
           GROUP BY ROLLUP (s.split)""",
    ]),
]


def run(path: Path, database: Path | None = None) -> dict[str, Any]:
    """Run every stage on the CSV at ``path``; return each stage's seconds and rows, and
    figures to compare with the pipeline's output (features, split sizes)."""
    import duckdb  # a bench-only dependency (requirements-bench.txt): imported when the comparison runs

    conn = duckdb.connect(str(database) if database else ":memory:")
    stages = []
    try:
        for stage, statements in STAGES:
            started = time.perf_counter()
            for statement in statements:
                conn.execute(statement.format(path=repr(str(path))))
            stages.append({"stage": stage, "seconds": round(time.perf_counter() - started, 3)})
        rows = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                for table in ("raw_events", "orders", "features", "labels", "splits")}
        checks = conn.execute(
            "SELECT sum(orders_7d), sum(orders_30d), round(sum(revenue_30d), 2) FROM features").fetchone()
        version = conn.execute("SELECT version()").fetchone()[0]
    finally:
        conn.close()
    return {"version": version, "stages": stages, "rows": rows,
            "feature_sums": {"orders_7d": int(checks[0]), "orders_30d": int(checks[1]), "revenue_30d": str(checks[2])}}
