"""The benchmark's floors (scripts/bench/floors.py) do the work of the stage they bound: on a
small generated file, run through the pipeline, each floor's counts equal a brute-force Python
computation over the CSV, and a floor leaves nothing behind."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal

from scripts.bench import floors as bench_floors
from scripts.bench import generate_orders
from scripts.bench import stages as bench
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import query

DAY = dt.timedelta(days=1)


def brute_force(path):
    """Per customer, the distinct order instants with their order counts, from the CSV alone."""
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    instants: dict[str, dict[dt.datetime, int]] = defaultdict(lambda: defaultdict(int))
    for record in records:
        at = dt.datetime.fromisoformat(record["order_ts"].replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
        instants[record["customer_id"]][at] += 1
    orders_7d = orders_30d = next_30d = rows = 0
    for times in instants.values():
        for t in times:
            rows += 1
            orders_7d += sum(n for u, n in times.items() if t - 7 * DAY <= u <= t)
            orders_30d += sum(n for u, n in times.items() if t - 30 * DAY <= u <= t)
            next_30d += sum(n for u, n in times.items() if t < u <= t + 30 * DAY)
    order_ids = {record["order_id"] for record in records}
    return {"records": len(records), "order_ids": len(order_ids), "rows": rows,
            "orders_7d": orders_7d, "orders_30d": orders_30d, "next_30d": next_30d,
            "amount": sum(Decimal(record["amount"]) for record in records)}


def test_floors_do_the_stages_work(project, db_url):
    path = project.root / "data" / "raw" / "orders.csv"
    generate_orders.generate(path, rows=1500, seed=7, customers=60)
    expected = brute_force(path)
    code, report = run_pipeline(project.write_config(labels={"horizon_days": 30}), db_url)
    assert code == EXIT_PASSED, report.get("errors")
    bench.copy_floor(db_url, path)

    measured = bench_floors.measure(db_url)
    floors = {f["stage"]: f for f in measured}

    assert [f["stage"] for f in measured] == ["ingest", "ingest", "validate", "model", "stage", "features", "labels",
                                              "splits"]
    assert all(f["seconds"] >= 0 for f in measured)
    assert measured[0]["result"] == [str(expected["records"])]
    assert measured[1]["result"] is None  # an INSERT: its rows are written, then rolled back
    # every order id once, and the four other fields of every record read
    assert floors["validate"]["result"] == [str(expected["order_ids"]), str(4 * expected["records"])]
    model = floors["model"]["result"]
    assert model[:2] == [str(expected["order_ids"])] * 2
    assert Decimal(model[2]) == expected["amount"]
    assert floors["features"]["result"] == [str(expected["rows"]), str(expected["orders_7d"]),
                                            str(expected["orders_30d"])]
    assert floors["labels"]["result"] == [str(expected["rows"]), str(expected["next_30d"])]
    below_val, from_test = (int(value) for value in floors["splits"]["result"])
    # the cut-offs sit near 70 % and 85 % of the feature rows (whole instants apart)
    assert abs(below_val - 0.70 * expected["rows"]) <= 0.02 * expected["rows"]
    assert abs(from_test - 0.15 * expected["rows"]) <= 0.02 * expected["rows"]
    # the floors ran in transactions that were rolled back
    assert query(db_url, "SELECT to_regclass('public.bench_write_floor'), to_regclass('public.bench_ingest_floor')") \
        == [(None, None)]
