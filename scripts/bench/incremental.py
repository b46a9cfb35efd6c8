"""Benchmark a daily run against the full run it replaces (make bench-incremental ROWS=1000000).

For each ROWS (several may be given):
1. A history of ROWS generated orders over two years (scripts/bench/generate_orders.py, seeded, the
   same file `make bench` uses) and the next day's file: NEW_ROWS new orders (default 1,370,
   a day of the 1M history) of the same customers, dated the day after the history ends,
   with order ids of their own. The same size at every history, so that the daily runs
   compare what the history costs.
2. In a throwaway database (on DATABASE_URL's server, or the embedded one): the full run on
   the history, a VACUUM (ANALYZE) and a CHECKPOINT (as the day between would bring), then
   the daily run on the history plus
   the next day's file, each in a child process exactly as `make all` runs.
3. Prints both runs' per-stage seconds, the daily run's share of the full run, and writes them
   to artifacts/bench/<timestamp>-incremental.json. Drops the database.

The goal: the daily run takes <= 5 % of the full run at 1M history, and at 10M
history no more than twice the 1M-history daily run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from scripts.bench import generate_orders
from scripts.bench.stages import dataset, elapsed, run_config
from scripts.db import server as embedded
from scripts.paths import REPO_ROOT

HISTORY_DAYS = 730  # generate_orders' default span, from 2024-01-01


def next_day_file(rows: int, new_rows: int, seed: int) -> Path:
    """The day after the history: its customers, new order ids (N...), dated 2025-12-31."""
    path = REPO_ROOT / "data" / "bench" / f"orders_{rows}_s{seed}_next_day_{new_rows}.csv"
    if path.exists():
        return path
    raw = path.with_suffix(".tmp")
    generate_orders.generate(raw, rows=new_rows, seed=seed + 1,
                             customers=max(50, rows // 12), start="2025-12-31", days=1)
    with raw.open(newline="") as source, path.open("w", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target, lineterminator="\n")
        writer.writerow(next(reader))
        for row in reader:  # a day's generated file: a few thousand lines
            writer.writerow(["N" + row[0][1:], *row[1:]])
    raw.unlink()
    return path


def run_once(url: str, config: Path, paths: list[Path]) -> dict[str, Any]:
    report = run_config(url, config, {
        "sources": [{"name": "orders", "paths": [str(p) for p in paths]}],
        "expectations": str(REPO_ROOT / "configs" / "expectations.yaml"),
        "labels": {"horizon_days": 30},  # as configs/pipeline.yaml
    })
    if report["exit_code"] != 0:
        raise SystemExit(f"the pipeline failed (exit {report['exit_code']}): {report['errors']}")
    return report


def day_between(url: str, admin_url: str) -> None:
    """What the day between the full run and the daily run brings, done now: autovacuum's
    vacuum and analyze of the tables the full run wrote, and a checkpoint. Measured straight
    after a 10M full run, the daily run otherwise shared the disk with both: with the server
    writing out gigabytes of dirty pages, and with autovacuum reading the ten million new raw
    events (its validate stage took 9.4 s instead of 0.03 s)."""
    started = time.perf_counter()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        print(f"vacuum, analyze and checkpoint before the daily run ({time.perf_counter() - started:.1f} s)", flush=True)
    except psycopg.Error as exc:  # a role that may not: measure as it is
        print(f"no vacuum or checkpoint before the daily run ({str(exc).strip()})", flush=True)


def measure(admin_url: str, rows: int, new_rows: int, seed: int, work: Path) -> dict[str, Any]:
    history, next_day = dataset(rows, False, seed), next_day_file(rows, new_rows, seed)
    name = f"r2r_bench_{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_database(admin_url, name)
    print(f"throwaway database {name}: full run on {rows:,} orders, then the next day's file", flush=True)
    try:
        full = run_once(url, work / "bench_incremental.yaml", [history])
        day_between(url, admin_url)
        daily = run_once(url, work / "bench_incremental.yaml", [history, next_day])
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return {"rows": rows, "new_rows": next_day.read_text().count("\n") - 1, "full": full, "daily": daily}


def table(result: dict[str, Any]) -> list[str]:
    full, daily = result["full"], result["daily"]
    total_full, total_daily = elapsed(full["stages"]), elapsed(daily["stages"])
    seconds = {s["stage"]: s["seconds"] for s in daily["stages"]}
    lines = [f"history {result['rows']:,} orders + next day {result['new_rows']:,} orders "
             f"({daily['refresh']['reason'] if daily.get('refresh') else ''})",
             f"{'stage':<10} {'full s':>9} {'daily s':>9} {'daily rows':>11}"]
    for stage in full["stages"]:
        rows = next((s["rows"] for s in daily["stages"] if s["stage"] == stage["stage"]), None)
        lines.append(f"{stage['stage']:<10} {stage['seconds']:>9.2f} {seconds.get(stage['stage'], 0):>9.2f} "
                     f"{'' if rows is None else f'{rows:,}':>11}")
    lines.append(f"{'total':<10} {total_full:>9.2f} {total_daily:>9.2f}   daily / full = "
                 f"{100 * total_daily / total_full:.1f} %")
    lines.append(f"wall time with start-up: full {full['wall_seconds']:.2f} s, daily {daily['wall_seconds']:.2f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.incremental", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--new-rows", type=int, default=1_000_000 // HISTORY_DAYS, help="orders in the next day's file")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL", "").strip() or embedded.start_server()
    out_dir = REPO_ROOT / "artifacts" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [measure(admin_url, rows, args.new_rows, args.seed, out_dir) for rows in args.rows]
    with psycopg.connect(admin_url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    lines = [f"raw-to-ready daily-run benchmark: PostgreSQL {server}, {os.cpu_count()} cores"]
    for result in results:
        lines += [""] + table(result)
    if len(results) > 1:
        daily = [elapsed(r["daily"]["stages"]) for r in results]
        lines += ["", "daily run by history: " + ", ".join(f"{r['rows']:,}: {d:.2f} s" for r, d in zip(results, daily))
                  + f"; largest / smallest = {daily[-1] / daily[0]:.2f}x"]
    print("\n".join(lines))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{stamp}-incremental.json"
    path.write_text(json.dumps({"server_version": server, "results": results, "table": lines}, indent=2,
                               default=str) + "\n", encoding="utf-8")
    print(f"written to {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
