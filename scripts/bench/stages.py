"""Benchmark every stage of the pipeline on generated orders (make bench ROWS=1000000).

1. Generates ROWS orders with scripts/bench/generate_orders.py (seeded, so every run measures the
   same bytes) into data/bench/, unless that file is already there.
2. Creates a throwaway database (on DATABASE_URL's server, or the embedded one) and runs the
   full pipeline on it in a child process, exactly as `make all` would.
3. Measures the floors: a bare COPY of the same file into an unlogged table of text columns,
   and the statement that bounds each stage, run bare on the rows the pipeline wrote
   (scripts/bench/floors.py).
4. Unless --no-defined, runs the pipeline again on the same file in a second throwaway
   database, with the defined features of scripts/bench/twelve_features.yaml merged into the
   config's features: section, and checksums each defined column (scripts/bench/twelve.py).
5. Runs the comparator: DuckDB in-process doing the same stages on the same file
   (scripts/bench/duckdb_stages.py; requirements-bench.txt), and checks that its features agree;
   and DuckDB computing the twelve defined features (scripts/bench/duckdb_defined.py), checked
   column by column against the pipeline's.
6. Prints per-stage seconds and rows/s beside DuckDB's, the ratio (the goal: a full
   rebuild within 1.5x of DuckDB), the runner's peak RSS and the ratio to the floor, then the
   features stage with and without the twelve (the goal: at most 2x) and beside DuckDB; writes
   the same to artifacts/bench/<timestamp>.json. Drops the databases.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from scripts.bench import duckdb_defined, duckdb_stages, generate_orders, twelve
from scripts.bench import floors as floor_statements
from scripts.bench import plans
from scripts.db import citus
from scripts.db import server as embedded
from scripts.db.execute import PROFILE_ENV
from scripts.paths import REPO_ROOT

COLUMNS = ["order_id", "customer_id", "order_ts", "amount", "status"]
BENCH_FEATURES: dict[str, Any] = {}  # the bench config's features: section (the defaults: windows_days [7, 30])


def dataset(rows: int, dirty: bool, seed: int) -> Path:
    path = REPO_ROOT / "data" / "bench" / f"orders_{rows}{'_dirty' if dirty else ''}_s{seed}.csv"
    if path.exists():
        print(f"using {path.relative_to(REPO_ROOT)} (delete it to regenerate)", flush=True)
        return path
    started = time.perf_counter()
    generate_orders.generate(path, rows=rows, seed=seed, dirty=dirty)
    print(f"generated {rows:,} orders into {path.relative_to(REPO_ROOT)} in {time.perf_counter() - started:.1f} s",
          flush=True)
    return path


def copy_floor(url: str, path: Path) -> float:
    """Seconds for a bare COPY of the file into an unlogged table of text columns (left in
    public.bench_copy_floor for the ingest floor)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE public.bench_copy_floor ("
                     + ", ".join(f"{c} text" for c in COLUMNS) + ")")
        started = time.perf_counter()
        with conn.cursor() as cur, path.open("rb") as handle:
            with cur.copy(sql.SQL("COPY public.bench_copy_floor FROM STDIN WITH (FORMAT csv, HEADER true)")) as copy:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
        seconds = time.perf_counter() - started
        conn.execute("ANALYZE public.bench_copy_floor")
    return seconds


def run_pipeline(url: str, data: Path, work: Path, distribution: dict[str, Any] | None = None,
                 features: dict[str, Any] | None = None, profile: Path | None = None) -> dict[str, Any]:
    """Run the pipeline on `data` in the database at `url` (features: the config's features:
    section, BENCH_FEATURES when None; profile: a file for its statements' times and plans,
    scripts/bench/plans.py); return its report with the wall time."""
    name = "bench_pipeline_citus" if distribution else "bench_pipeline"
    config = work / f"{name}{'_defined' if features is not None else ''}.yaml"
    features = BENCH_FEATURES if features is None else features
    return run_config(url, config, {
        "sources": [{"name": "orders", "paths": str(data)}],
        "expectations": str(REPO_ROOT / "configs" / "expectations.yaml"),
        "labels": {"horizon_days": 30},  # as configs/pipeline.yaml: the labels stage is timed too
        **({"features": features} if features else {}),
        **({"distribution": distribution} if distribution else {}),
    }, profile)


def run_config(url: str, config: Path, settings: dict[str, Any], profile: Path | None = None) -> dict[str, Any]:
    """Write `settings` to `config` and run the pipeline on it in a child process, as `make
    all` would, against the database at `url` (profiled into `profile`: scripts/db/execute.py);
    its report, with the wall time."""
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    if profile is not None:
        profile.unlink(missing_ok=True)
        env[PROFILE_ENV] = str(profile)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "scripts.run", "--config", str(config)],
                            cwd=REPO_ROOT, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - started
    sys.stdout.write("".join(f"    | {line}\n" for line in result.stdout.splitlines()))
    if result.stderr:
        sys.stderr.write(result.stderr)
    report_line = [line for line in result.stdout.splitlines() if line.startswith("report: ")]
    if not report_line:
        raise SystemExit(f"the pipeline wrote no report (exit {result.returncode})")
    report = json.loads((REPO_ROOT / report_line[-1].removeprefix("report: ")).read_text())
    report["wall_seconds"] = wall
    return report


def elapsed(stages: list[dict[str, Any]]) -> float:
    """The stages' seconds end to end: a stage run beside another (the report's "beside")
    counts only where it outlasts it."""
    seconds = {s["stage"]: s["seconds"] or 0 for s in stages}
    return sum(seconds.values()) - sum(min(seconds[s["stage"]], seconds.get(s["beside"], 0))
                                       for s in stages if s.get("beside"))


def checkpoint(admin_url: str) -> None:
    """Write out what earlier work left in shared buffers, so that a run does not share the disk
    with its checkpoint (skipped where the role may not: not superuser or pg_checkpoint)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def defined_run(admin_url: str, data: Path, work: Path) -> dict[str, Any]:
    """The pipeline again on the same file, in a second throwaway database, with the twelve
    defined features (scripts/bench/twelve.py); its report with each defined column's checksum."""
    features = twelve.features_section(BENCH_FEATURES)
    name = f"r2r_bench_{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_database(admin_url, name)
    checkpoint(admin_url)
    print(f"throwaway database {name}; the pipeline again with the defined features of "
          f"{twelve.DEFINITIONS.relative_to(REPO_ROOT)}", flush=True)
    try:
        report = run_pipeline(url, data, work, features=features)
        if report["exit_code"] == 0:
            report["checksums"] = twelve.pg_checksums(url, features["define"])
    finally:
        drop_database(admin_url, name)
    return report


def duckdb_defined_comparator(data: Path) -> tuple[dict[str, Any] | None, str]:
    """DuckDB computing the twelve (and the built-ins) on the same file; None and why not."""
    if duckdb_defined.duckdb is None:
        return None, "not installed (pip install -r requirements-bench.txt)"
    print("DuckDB: the built-ins and the twelve defined features on the same file", flush=True)
    features = twelve.features_section(BENCH_FEATURES)
    return duckdb_defined.run(data, features["define"], windows_days=features.get("windows_days"),
                              exclude_statuses=features.get("exclude_statuses"),
                              window_end=features.get("window_end", "inclusive")), ""


def citus_run(data: Path, work: Path, shard_count: int = 8) -> dict[str, Any]:
    """The same pipeline, distributed, on a throwaway database of the local Citus cluster."""

    citus.up()
    name = f"r2r_bench_{uuid.uuid4().hex[:8]}"
    print(f"Citus: throwaway database {name} on the local cluster", flush=True)
    try:
        report = run_pipeline(citus.create_database(name), data, work,
                              {"kind": "citus", "shard_count": shard_count})
    finally:
        citus.drop_database(name)
    return {"stages": report.get("stages", []), "status": report["status"], "exit_code": report["exit_code"],
            "shard_count": shard_count}


def duckdb_comparator(data: Path) -> dict[str, Any] | None:
    """DuckDB doing the same stages (a bench-only dependency: requirements-bench.txt)."""
    if importlib.util.find_spec("duckdb") is None:
        print("DuckDB is not installed (pip install -r requirements-bench.txt): no comparison", flush=True)
        return None
    print("DuckDB: the same stages on the same file", flush=True)
    return duckdb_stages.run(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dirty", action="store_true", help="mix in real-world faults (the gate then fails)")
    parser.add_argument("--no-duckdb", action="store_true", help="leave out the DuckDB comparator")
    parser.add_argument("--no-defined", action="store_true",
                        help="leave out the second run, with the twelve defined features (twelve_features.yaml)")
    parser.add_argument("--citus", action="store_true",
                        help="also run on the local Citus cluster (make citus-up), distributed, beside one server")
    parser.add_argument("--no-profile", action="store_true",
                        help="run the statements as make all does, not one by one under EXPLAIN ANALYZE "
                             "(no plans of the slowest statements)")
    args = parser.parse_args(argv)

    data = dataset(args.rows, args.dirty, args.seed)
    admin_url = os.environ.get("DATABASE_URL", "").strip() or embedded.start_server()
    name = f"r2r_bench_{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_database(admin_url, name)
    out_dir = REPO_ROOT / "artifacts" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"throwaway database {name}; running the pipeline on {args.rows:,} rows", flush=True)
    try:
        checkpoint(admin_url)
        profile = None if args.no_profile else out_dir / f"{name}-statements.jsonl"
        report = run_pipeline(url, data, out_dir, profile=profile)
        statements = plans.load(profile) if profile else []
        if profile:
            profile.unlink(missing_ok=True)  # kept in the result's JSON
        floor = copy_floor(url, data)
        print("what bounds each stage: its core statement, bare, on the same rows", flush=True)
        floors = floor_statements.measure(url) if report["exit_code"] == 0 else []
        with psycopg.connect(url) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            sums = conn.execute("SELECT sum(orders_7d), sum(orders_30d), round(sum(revenue_30d), 2)"
                                " FROM feats.customer_features").fetchone() if report["exit_code"] == 0 else None
    finally:
        drop_database(admin_url, name)

    # the twelve defined features: not on dirty data, whose gate stops the run before features
    defined = None if args.no_defined or args.dirty or report["exit_code"] != 0 else \
        defined_run(admin_url, data, out_dir)
    cluster = citus_run(data, out_dir) if args.citus else None
    duck = None if args.no_duckdb or args.dirty else duckdb_comparator(data)
    duck_defined, duck_note = (None, "left out (--no-duckdb)") if args.no_duckdb or not defined else \
        duckdb_defined_comparator(data)
    stages = report.get("stages", [])
    total = elapsed(stages)
    citus_seconds = {s["stage"]: s["seconds"] for s in cluster["stages"]} if cluster else {}
    duck_seconds = {s["stage"]: s["seconds"] for s in duck["stages"]} if duck else {}
    duck_total = sum(duck_seconds.values())
    floor_seconds: dict[str, float] = {}
    for f in floors:  # a stage's floors nest: the largest bounds it
        floor_seconds[f["stage"]] = max(floor_seconds.get(f["stage"], 0), f["seconds"])
    lines = [
        f"raw-to-ready benchmark: {args.rows:,} {'dirty' if args.dirty else 'clean'} orders, "
        f"PostgreSQL {server}, {os.cpu_count()} cores" + (f"; DuckDB {duck['version']} in-process" if duck else ""),
        f"{'stage':<10} {'status':<7} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'floor s':>8}"
        + (f" {'DuckDB s':>9} {'ratio':>7}" if duck else "") + (f" {'Citus s':>8}" if cluster else ""),
    ]
    for stage in stages:
        # the rows a stage handled: what it read where it reports that (a gate's records
        # checked, the orders profiled, the rows computed), else what it wrote; a data stage's
        # rate is those per second; migrate and registry have none
        handled = stage.get("read") if stage.get("read") is not None else stage["rows"]
        rate = (f"{handled / stage['seconds']:>12,.0f}"
                if stage["seconds"] and handled and stage["stage"] not in ("migrate", "registry") else f"{'':>12}")
        rows = f"{handled:>12,}" if handled is not None else f"{'':>12}"
        theirs = duck_seconds.get(stage["stage"])
        versus = (f" {theirs:>9.2f} {stage['seconds'] / theirs:>6.1f}x" if theirs else f" {'-':>9} {'':>7}") if duck else ""
        # ingest's floor is the COPY plus building the payloads
        bound = floor_seconds.get(stage["stage"], 0) + (floor if stage["stage"] == "ingest" and floors else 0)
        bound_text = f" {bound:>8.2f}" if bound else f" {'':>8}"
        on_cluster = f" {citus_seconds.get(stage['stage'], 0):>8.2f}" if cluster else ""
        lines.append(f"{stage['stage']:<10} {stage['status']:<7} {rows} {stage['seconds']:>9.2f} {rate}{bound_text}{versus}"
                     + on_cluster + (f"  (beside {stage['beside']}: counted in the total where it outlasts it)"
                                     if stage.get("beside") else ""))
    lines += [
        f"{'total':<10} {report['status']:<7} {args.rows:>12,} {total:>9.2f} {args.rows / total:>12,.0f}"
        + f" {floor + sum(floor_seconds.values()):>8.2f}"
        + (f" {duck_total:>9.2f} {total / duck_total:>6.1f}x" if duck else "")
        + (f" {sum(citus_seconds.values()):>8.2f}" if cluster else ""),
        *([f"Citus: a coordinator and 2 workers on this same machine, {cluster['shard_count']} shards per table"
           f" (make citus-up); its run {cluster['status']}, exit {cluster['exit_code']}"] if cluster else []),
        f"COPY floor (bare COPY into an unlogged text table): {floor:.2f} s; pipeline / floor = {total / floor:.1f}x",
        "floor s: the stage's core statement run bare on the same rows (scripts/bench/floors.py):",
        *[f"  {f['stage']:<9} {f['seconds']:6.2f} s  {f['floor']}" for f in floors],
        f"runner peak RSS: {report.get('runner_peak_rss_mib')} MiB",
        f"wall time with start-up: {report['wall_seconds']:.2f} s; exit code {report['exit_code']}",
    ]
    if duck:
        agree = sums is not None and [int(sums[0]), int(sums[1]), str(sums[2])] == list(duck["feature_sums"].values())
        lines += [f"PostgreSQL / DuckDB = {total / duck_total:.2f}x (the goal: at most 2.5x; the longer aim 1.5x); the features "
                  + ("agree" if agree else f"DIFFER: {sums} against {duck['feature_sums']}")
                  + " (sums of orders_7d, orders_30d, revenue_30d)"]
    defined_lines, defined_figures = twelve.summary(report, defined, duck_defined, duck_note) if defined else ([], None)
    lines += defined_lines
    print("\n".join(plans.by_stage(statements) + plans.summary(statements)))
    print("\n".join(lines))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {"rows": args.rows, "dirty": args.dirty, "seed": args.seed, "server_version": server,
              "stages": stages, "total_seconds": total, "copy_floor_seconds": floor,
              "floors": floors, "citus": cluster,
              "runner_peak_rss_mib": report.get("runner_peak_rss_mib"), "exit_code": report["exit_code"],
              "duckdb": duck, "twelve_features": defined_figures, "table": lines,
              "statements": [{key: value for key, value in record.items() if key != "plan"} for record in statements],
              "slowest_plans": plans.slowest(statements)}
    path = out_dir / f"{stamp}-{args.rows}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
