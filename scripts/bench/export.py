"""Benchmark the export (and optionally the training) on ROWS generated orders.

    python -m scripts.bench.export --rows 1000000 [--train] [--keep]

1. Generates ROWS orders with scripts/bench/generate_orders.py (seeded; the same file make bench
   uses, under data/bench/), unless it is there already.
2. Creates a throwaway database (on DATABASE_URL's server, or the embedded one) and runs the
   full pipeline on it with `labels: {horizon_days: 30}`, in a child process.
3. Runs `python -m scripts.serve.export` in a child process, exactly as `make export` would, and
   measures its wall time and its peak RSS (the child's own, from wait4); with --train, then
   `python -m scripts.serve.train` on the exported files the same way.
4. Prints rows, seconds, rows/s and peak RSS; writes them to
   artifacts/bench/<timestamp>-export-<rows>.json; drops the database and (unless --keep)
   the exported files.

Memory is the point: the export streams, so its peak RSS must not grow with ROWS (compare
--rows 1000000 with --rows 10000000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import psycopg
import yaml
from psycopg import sql

from scripts.bench import stages as bench
from scripts.db import server as embedded
from scripts.paths import REPO_ROOT



def run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a child to the end; its exit code, output, wall seconds and own peak RSS."""
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(args, cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=errors)
        out = child.stdout.read()  # to the end; then reap the child ourselves, for its own rusage
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        err = errors.read()
    return {"exit_code": child.returncode, "stdout": out, "stderr": err,
            "seconds": time.perf_counter() - started, "peak_rss_mib": usage.ru_maxrss / 1024}


def show(result: dict[str, Any]) -> None:
    sys.stdout.write("".join(f"    | {line}\n" for line in result["stdout"].splitlines()))
    if result["stderr"]:
        sys.stderr.write(result["stderr"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.export", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train", action="store_true", help="also train the baseline models on the export")
    parser.add_argument("--keep", action="store_true", help="keep the exported files and models")
    args = parser.parse_args(argv)

    data = bench.dataset(args.rows, False, args.seed)
    admin_url = os.environ.get("DATABASE_URL", "").strip() or embedded.start_server()
    name = f"r2r_bench_{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_database(admin_url, name)
    work = REPO_ROOT / "artifacts" / "bench" / f"export-{args.rows}"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "orders", "paths": str(data)}],
        "expectations": str(REPO_ROOT / "configs" / "expectations.yaml"),
        "labels": {"horizon_days": 30},
    }), encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    py = [sys.executable, "-m"]
    print(f"throwaway database {name}; the pipeline with labels on {args.rows:,} orders", flush=True)
    results: dict[str, Any] = {}
    try:
        pipeline = run_child(py + ["scripts.run", "--config", str(config)], env)
        show(pipeline)
        if pipeline["exit_code"] != 0:
            raise SystemExit(f"the pipeline failed (exit {pipeline['exit_code']})")
        with psycopg.connect(url) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            counts = dict(conn.execute("SELECT split, count(*) FROM feats.training_set GROUP BY split").fetchall())
        print("export:", flush=True)
        results["export"] = run_child(py + ["scripts.serve.export", "--config", str(config),
                                            "--out", str(work / "datasets")], env)
        show(results["export"])
        if results["export"]["exit_code"] != 0:
            raise SystemExit(f"the export failed (exit {results['export']['exit_code']})")
        if args.train:
            print("train:", flush=True)
            results["train"] = run_child(py + ["scripts.serve.train", "--config", str(config),
                                               "--datasets", str(work / "datasets"),
                                               "--models", str(work / "models")], env)
            show(results["train"])
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not args.keep:
            shutil.rmtree(work / "datasets", ignore_errors=True)
            shutil.rmtree(work / "models", ignore_errors=True)

    rows = sum(counts.values())
    export_run = results["export"]
    lines = [
        f"raw-to-ready export benchmark: {args.rows:,} orders -> {rows:,} labelled rows "
        f"(train {counts.get('train', 0):,}, val {counts.get('val', 0):,}, test {counts.get('test', 0):,}), "
        f"PostgreSQL {server}, {os.cpu_count()} cores",
        f"export: {export_run['seconds']:.2f} s with start-up, {rows / export_run['seconds']:,.0f} rows/s; "
        f"peak RSS {export_run['peak_rss_mib']:.1f} MiB",
    ]
    if "train" in results:
        lines.append(f"train:  {results['train']['seconds']:.2f} s with start-up; peak RSS "
                     f"{results['train']['peak_rss_mib']:.1f} MiB; exit code {results['train']['exit_code']}")
    print("\n".join(lines))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = REPO_ROOT / "artifacts" / "bench" / f"{stamp}-export-{args.rows}.json"
    path.write_text(json.dumps({
        "orders": args.rows, "seed": args.seed, "server_version": server, "labelled_rows": counts,
        **{step: {k: v for k, v in r.items() if k != "stderr"} for step, r in results.items()},
        "table": lines,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"written to {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
