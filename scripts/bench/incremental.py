"""Benchmark the runs a user meets besides a full rebuild (make bench-incremental ROWS=1000000).

For each ROWS (several may be given), in throwaway databases (on DATABASE_URL's server, or the
embedded one), each run in a child process exactly as `make all` runs:
1. **daily**: a history of ROWS generated orders over two years (scripts/bench/generate_orders.py,
   seeded, the same file `make bench` uses) and the next day's file: NEW_ROWS new orders
   (default 1,369, a day of the 1M history) of the same customers, dated the day after the
   history ends, with order ids of their own. The full run on the history, a VACUUM (ANALYZE)
   and a CHECKPOINT (as the day between would bring), then the daily run on the history plus
   the next day's file. Goal: the daily run's wall time <= 5 % of the full run's.
2. **first-load**: the bundled sample (data/raw/orders.csv, as `make all` runs it first), then
   the history in its place: what a new user does after the README's first command. Goal: at
   most 1.1x the full run on an empty database.
3. **many-files**: the same history as one file per day (730 files, written once into
   data/bench/), a full run on an empty database. Goal: a few milliseconds per file beyond
   the full run of the one file.
Prints each case's per-stage seconds beside the full run's, and writes them to
artifacts/bench/<timestamp>-incremental.json. Drops the databases.
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
from scripts.bench.stages import checkpoint, dataset, elapsed, run_config
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


def daily_files(rows: int, seed: int) -> list[Path]:
    """The history file split by the day of its orders (the generated file is in date order),
    written once into data/bench/."""
    history = dataset(rows, False, seed)
    folder = REPO_ROOT / "data" / "bench" / f"{history.stem}_by_day"
    if not folder.exists():
        partial = folder.with_name(folder.name + ".tmp")
        partial.mkdir(exist_ok=True)
        with history.open(newline="") as source:
            header, day, target, seen = source.readline(), None, None, set()
            for line in source:  # bench data, written once: the pipeline never loops over rows
                if (today := line.split(",", 3)[2][:10]) != day:  # order_ts's date
                    day = today
                    if target:
                        target.close()
                    target = (partial / f"orders_{day}.csv").open("a", newline="")
                    if day not in seen:
                        target.write(header)
                        seen.add(day)
                target.write(line)
            if target:
                target.close()
        partial.rename(folder)
    return sorted(folder.glob("orders_*.csv"))


def throwaway(admin_url: str, label: str, runs: list[list[Path]], config: Path,
              between: bool = False) -> list[dict[str, Any]]:
    """Run the pipeline on each list of files in turn, in a throwaway database; their reports."""
    name = f"r2r_bench_{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_database(admin_url, name)
    print(f"throwaway database {name}: {label}", flush=True)
    reports = []
    try:
        for index, paths in enumerate(runs):
            if between and index:
                day_between(url, admin_url)
            checkpoint(admin_url)
            reports.append(run_once(url, config, paths))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return reports


def measure(admin_url: str, rows: int, new_rows: int, seed: int, work: Path, cases: list[str]) -> dict[str, Any]:
    history, next_day = dataset(rows, False, seed), next_day_file(rows, new_rows, seed)
    config = work / "bench_incremental.yaml"
    result: dict[str, Any] = {"rows": rows}
    full, daily = throwaway(admin_url, f"full run on {rows:,} orders, then the next day's file",
                            [[history], [history, next_day]], config, between=True)
    result.update(full=full, daily=daily, new_rows=next_day.read_text().count("\n") - 1)
    if "first-load" in cases:
        sample = REPO_ROOT / "data" / "raw" / "orders.csv"
        result["sample"], result["first_load"] = throwaway(
            admin_url, f"the bundled sample, then {rows:,} orders in its place", [[sample], [history]], config)
    if "many-files" in cases:
        days = daily_files(rows, seed)
        result["files"] = len(days)
        [result["many_files"]] = throwaway(admin_url, f"{rows:,} orders in {len(days)} daily files", [days], config)
    return result


CASES = {"daily": "daily s", "first_load": "1st load s", "many_files": "files s"}


def table(result: dict[str, Any]) -> list[str]:
    full = result["full"]
    runs = {key: result[key] for key in CASES if key in result}
    lines = [f"history {result['rows']:,} orders; next day {result['new_rows']:,} orders"
             + (f"; {result['files']} daily files" if "files" in result else ""),
             f"{'stage':<10} {'full s':>9}" + "".join(f" {CASES[key]:>11}" for key in runs)]
    for stage in full["stages"]:
        cells = []
        for report in runs.values():
            seconds = next((s["seconds"] for s in report["stages"] if s["stage"] == stage["stage"]), None)
            cells.append(f" {'' if seconds is None else f'{seconds:.2f}':>11}")
        lines.append(f"{stage['stage']:<10} {stage['seconds']:>9.2f}" + "".join(cells))
    lines.append(f"{'total':<10} {elapsed(full['stages']):>9.2f}"
                 + "".join(f" {elapsed(r['stages']):>11.2f}" for r in runs.values()))
    lines.append(f"{'wall':<10} {full['wall_seconds']:>9.2f}" + "".join(f" {r['wall_seconds']:>11.2f}" for r in runs.values())
                 + "   (start-up included, as `make all` waits)")
    daily = runs["daily"]
    lines.append(f"daily run: {100 * daily['wall_seconds'] / full['wall_seconds']:.1f} % of the full run's wall time "
                 f"({100 * elapsed(daily['stages']) / elapsed(full['stages']):.1f} % of its stages; goal <= 5 %): "
                 f"{daily['refresh']['reason']}")
    if "first_load" in runs:
        first = runs["first_load"]
        lines.append(f"first load after the sample: {first['wall_seconds'] / full['wall_seconds']:.2f}x the full run "
                     f"(goal <= 1.1x; the sample itself {result['sample']['wall_seconds']:.2f} s): "
                     f"{first['refresh']['reason']}")
    if "many_files" in runs:
        extra = runs["many_files"]["wall_seconds"] - full["wall_seconds"]
        lines.append(f"{result['files']} daily files: {1000 * extra / result['files']:.1f} ms per file beyond the one "
                     f"file's full run ({extra:+.2f} s in all; stages {elapsed(runs['many_files']['stages']) - elapsed(full['stages']):+.2f} s)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.incremental", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--new-rows", type=int, default=1_000_000 // HISTORY_DAYS, help="orders in the next day's file")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cases", nargs="+", choices=["first-load", "many-files"], default=["first-load", "many-files"],
                        help="besides the daily run (default: both)")
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL", "").strip() or embedded.start_server()
    out_dir = REPO_ROOT / "artifacts" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [measure(admin_url, rows, args.new_rows, args.seed, out_dir, args.cases) for rows in args.rows]
    with psycopg.connect(admin_url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    lines = [f"raw-to-ready daily-run, first-load and many-files benchmark: PostgreSQL {server}, {os.cpu_count()} cores"]
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
