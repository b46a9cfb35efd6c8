"""What bounds each stage of `make bench`: the one statement at the heart of the stage, run bare
on the rows the pipeline just wrote (same database, same run), its result counted and thrown
away. A floor is work PostgreSQL does in one process whatever the SQL around it (a window
aggregate, building JSONB, writing a logged table and its index never run in parallel), so a
stage cannot get below its floor on this server without splitting the rows over connections
(or over Citus workers: docs/scale-out.md).

Each floor runs in its own transaction with the settings the stage sets (work_mem, UTC, and
grouping by sorting for the windows) and is rolled back; only its last statement is timed. Fixed SQL: no value is formatted into it.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

SETTINGS = ["SET LOCAL work_mem = '512MB'", "SET LOCAL timezone = 'UTC'", "SET LOCAL datestyle = 'ISO, MDY'"]
# 050 and 055 group the instants by sorting, in the windows' order
BY_SORTING = "SET LOCAL enable_hashagg = off"

PAYLOAD = """jsonb_build_object('order_id', order_id, 'customer_id', customer_id, 'order_ts', order_ts,
                                'amount', amount, 'status', status)"""

# The instants of every customer, as 050 and 055 group them.
INSTANTS = """(SELECT customer_id, order_at AS t, count(*) AS n, sum(amount) AS r
               FROM stg.orders WHERE customer_id IS NOT NULL GROUP BY customer_id, order_at) AS i"""

# (stage, what the floor is, statements: the last one is timed). A stage may have several
# floors, each holding the one before; the largest bounds it.
FLOORS: list[tuple[str, str, list[str]]] = [
    ("ingest", "build the JSONB payloads of the COPY landing, not stored", [
        f"SELECT count(p.payload) FROM (SELECT {PAYLOAD} AS payload FROM public.bench_copy_floor) AS p",
    ]),
    ("ingest", "build them and write them into a new logged table keyed as raw.raw_events", [
        "CREATE TABLE public.bench_ingest_floor (LIKE raw.raw_events INCLUDING IDENTITY INCLUDING INDEXES)",
        f"""INSERT INTO public.bench_ingest_floor (
               file_sha256, source_name, file_path, line_number, record_number, run_id, ingested_at, payload)
           SELECT 'f', 'orders', 'f.csv', 1, 1, 'bench', now(), {PAYLOAD} FROM public.bench_copy_floor""",
    ]),
    ("validate", "group every payload by its order id (the unique check), four fields read", [
        """SELECT count(*), sum(g.fields) FROM (
               SELECT payload ->> 'order_id' AS order_id,
                      count(payload ->> 'customer_id') + count(payload ->> 'order_ts') + count(payload ->> 'amount')
                      + count(payload ->> 'status') AS fields
               FROM raw.raw_events GROUP BY 1) AS g""",
    ]),
    ("model", "type the fields and keep one row per order id (DISTINCT ON), not stored", [
        """SELECT count(*), count(m.order_at), sum(m.amount), count(m.status) FROM (
               SELECT DISTINCT ON (order_id) order_id, order_at, amount, status FROM (
                   SELECT btrim(payload ->> 'order_id') COLLATE "C" AS order_id,
                          (payload ->> 'order_ts')::timestamptz AS order_at,
                          round((payload ->> 'amount')::numeric, 2) AS amount,
                          lower(btrim(payload ->> 'status')) AS status, line_number
                   FROM raw.raw_events) AS t
               ORDER BY order_id, line_number DESC) AS m""",
    ]),
    ("stage", "write the staged orders into a new logged table, then its primary key", [
        "CREATE TABLE public.bench_write_floor (LIKE stg.orders)",
        """INSERT INTO public.bench_write_floor SELECT * FROM stg.orders;
           ALTER TABLE public.bench_write_floor ADD PRIMARY KEY (order_id)""",
    ]),
    ("features", "sort and group the instants, two RANGE windows (7 d, 30 d) and lag, not stored", [
        BY_SORTING,
        f"""SELECT count(*), sum(o7), sum(o30) FROM (
               SELECT sum(n) OVER w7 AS o7, sum(r) OVER w7 AS r7, sum(n) OVER w30 AS o30, sum(r) OVER w30 AS r30,
                      lag(t) OVER w7 AS previous_at
               FROM {INSTANTS}
               WINDOW w7 AS (PARTITION BY customer_id ORDER BY t RANGE BETWEEN '7 days' PRECEDING AND CURRENT ROW),
                      w30 AS (PARTITION BY customer_id ORDER BY t RANGE BETWEEN '30 days' PRECEDING AND CURRENT ROW)
           ) AS w""",
    ]),
    ("labels", "sort and group the instants, the 30-day window after each, not stored", [
        BY_SORTING,
        f"""SELECT count(*), sum(next_orders) FROM (
               SELECT sum(n) OVER next30 - n AS next_orders, sum(r) OVER next30 AS next_revenue
               FROM {INSTANTS}
               WINDOW next30 AS (PARTITION BY customer_id ORDER BY t RANGE BETWEEN CURRENT ROW AND '30 days' FOLLOWING)
           ) AS w""",
    ]),
    ("splits", "the two cut-offs (one sort of every feature time), then each row's split counted", [
        """WITH cuts AS (
               SELECT percentile_disc(ARRAY[0.7, 0.85]) WITHIN GROUP (ORDER BY feature_time) AS at
               FROM feats.customer_feature_history WHERE valid_to IS NULL)
           SELECT count(*) FILTER (WHERE f.feature_time < c.at[1]), count(*) FILTER (WHERE f.feature_time >= c.at[2])
           FROM feats.customer_feature_history AS f CROSS JOIN cuts AS c
           WHERE f.valid_to IS NULL""",
    ]),
]


def measure(url: str) -> list[dict[str, Any]]:
    """Seconds of each floor on the database at ``url`` (public.bench_copy_floor must hold the
    COPY landing), with the row it counted (so that a floor is seen to do the stage's work);
    nothing is left behind."""
    results = []
    with psycopg.connect(url) as conn:
        for stage, what, statements in FLOORS:
            with conn.transaction(force_rollback=True):
                for setting in SETTINGS:
                    conn.execute(setting)
                for statement in statements[:-1]:
                    conn.execute(statement)
                started = time.perf_counter()
                cur = conn.execute(statements[-1])
                seconds = time.perf_counter() - started
                row = cur.fetchone() if cur.description else None
            results.append({"stage": stage, "floor": what, "seconds": round(seconds, 3),
                            "result": [str(value) for value in row] if row else None})
            print(f"  floor of {stage:<9} {seconds:6.2f} s  {what}", flush=True)
    return results
