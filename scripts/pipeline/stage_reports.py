"""What a stage reports besides its checks and row count (the ``report`` of its row in
scripts/pipeline/stages.py): read back from what the stage wrote, logged, kept for the report."""

from __future__ import annotations

from typing import Any

from scripts.console import log
from scripts.pipeline.state import Run
from scripts.reports import results


def splits(run: Run, record: dict[str, Any]) -> None:
    run.splits = results.fetch_splits(run.conn, run.run_id)
    record["read"] = sum(split["row_count"] for split in run.splits)  # rows assigned to a split
    record["read_what"] = "rows in a split"
    for split in run.splits:
        span = (f"from {split['starts_at'] or 'the start'} to before {split['ends_before'] or 'the end'}"
                if split["row_count"] else "empty")
        labels = (f"; purged {split['purged_row_count']:,}; censored {split['censored_row_count']:,}"
                  if run.config.labels else "")
        log(f"  {split['split']:<5} {split['row_count']:>10,} rows ({split['fraction']:.3f}, "
            f"target {split['target_fraction']:.3f}) {span}; gap left out {split['gap_row_count']:,}{labels}")


def profile(run: Run, record: dict[str, Any]) -> None:
    run.profile = results.fetch_profile(run.conn, run.run_id)
    record["read"] = run.profile["batch"]["row_count"]
    record["read_what"] = f"batch orders and {run.profile['features']['sampled_rows']:,} feature rows profiled"
    baseline = run.profile["baseline_run_id"]
    log(f"  profiled {run.profile['batch']['row_count']:,} batch orders, {run.profile['features']['sampled_rows']:,}"
        f" of {run.profile['features']['row_count']:,} feature rows; drift against "
        + (f"run {baseline}" if baseline else "no baseline (no earlier run passed with a profile)"))
