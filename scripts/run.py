"""Run the raw-to-ready pipeline: render the SQL in sql/, execute it stage by stage.

    python -m scripts.run --config configs/pipeline.yaml             # every stage
    python -m scripts.run --config configs/pipeline.yaml --stage validate   # up to validate
    python -m scripts.run --render [--out DIR]                         # write the SQL only

Each stage runs in one transaction. Every run writes artifacts/reports/<run_id>.json,
failed runs included, and the rendered SQL it executed to artifacts/runs/<run_id>/sql/.

Exit codes: 0 passed (warnings are printed and reported; --warn-error makes them fail),
1 validation failed, 2 bad config or usage, 3 runtime or database error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from scripts import config as config_mod
from scripts import distribution, ingest, migrate, models, pgembed, profiles, report as report_mod, roles, sourcecache, sqltemplate, versions
from scripts.sqlexec import StageError, execute_sql
from scripts.versions import NeedsFullRefresh, sha256_text
from scripts.config import ConfigError, PipelineConfig

EXIT_PASSED, EXIT_VALIDATION_FAILED, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3
DATA_STAGES = {"ingest", "validate", "model", "stage", "features", "labels", "splits", "profile"}
STAGES = ["migrate", "ingest", "validate", "model", "stage", "features", "labels", "splits", "profile", "registry"]

# The post-ingest stages and the files each executes, in order.
STAGE_FILES = {
    "migrate": ["005_distribute_tables.sql"],  # after the migrations: Citus tables, with distribution
    "validate": ["030_validate_expectations.sql", "033_validate_quarantine.sql", "035_validate_failures.sql"],
    "model": ["037_model_orders.sql", "038_validate_orders.sql"],
    "stage": ["040_stg_orders.sql", "041_stg_order_changes.sql"],
    "features": ["050_feats_customer_features.sql", "052_feats_features_as_of.sql"],
    "labels": ["055_feats_customer_labels.sql"],
    "splits": ["060_meta_dataset_splits.sql"],
    "profile": ["065_meta_profiles.sql", "066_validate_drift.sql"],
    "registry": ["070_meta_feature_registry.sql"],
}
INGEST_FILES = ["010_raw_landing.sql", "011_raw_landing_lines.sql", "012_raw_landing_records.sql",
                "015_raw_landing_line_numbers.sql", "020_raw_events.sql", "025_raw_events_analyze.sql"]
ARTIFACTS = report_mod.ARTIFACTS
# The gates: the stages whose checks can stop a run, and the level of checks each runs.
GATE_LEVELS = {"validate": "records", "model": "orders", "profile": "drift"}


class ValidationFailed(Exception):
    """An error-severity expectation failed; the run stops before staging."""


@dataclass
class Run:
    config: PipelineConfig
    run_id: str
    conn: psycopg.Connection
    out_dir: Path
    warn_error: bool = False
    stages: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # level -> checks
    splits: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] | None = None  # set by the profile stage
    feature_version: str | None = None  # set when the registry stage records it
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)  # what the version is derived from
    full_refresh: bool = False  # --full-refresh
    plan: versions.Plan | None = None  # incremental or full: decided after migrations

    @property
    def settings(self) -> dict[str, str]:
        """What every stage's SQL may read with current_setting('raw_to_ready.*')."""
        return {"run_id": self.run_id, "feature_version": versions.feature_version(self.hashes),
                **(self.plan.settings if self.plan else {})}

    @property
    def batch_file_sha256s(self) -> list[str]:
        return [s["sha256"] for s in self.sources]

    @property
    def checks(self) -> list[dict[str, Any]]:
        return [check for level in GATE_LEVELS.values() for check in self.results.get(level, [])]


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def log(message: str) -> None:
    print(message, flush=True)


def template_context(config: PipelineConfig, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the post-ingest templates may use; values come from configs and the
    content of the named files, never from runs."""
    context = {
        "batch_file_sha256s": [s["sha256"] for s in sources],
        "checks": config.record_checks,
        "drift_checks": [c for c in config.checks if c["level"] == "drift"],
        "profile": {"sample_rows": 20_000},  # feature rows profiled (a sample when more)
        "order_checks": config.order_checks,
        "failure_history_cap": config.validation["failure_history_cap"],
        "columns": config.columns,
        "staging": config.staging,
        "status_map_json": json.dumps(config.staging["status_map"], sort_keys=True),
        "features": config.features,
        "labels": config.labels,
        "splits": config.splits,
        "retention": config.retention,
        "distribution": config.distribution,
        # the value columns of the versioned feature and label rows, with their types
        "feature_columns": [(f"{kind}_{days}d", kind_type) for days in config.features["windows_days"]
                            for kind, kind_type in (("orders", "bigint"), ("revenue", "numeric"))]
                           + [("days_since_last_order", "integer")],
        "label_columns": [("label_window_end", "timestamptz"),
                          (f"repeat_{config.labels['horizon_days']}d", "boolean"),
                          (f"revenue_next_{config.labels['horizon_days']}d", "numeric")] if config.labels else [],
    }
    context["models"] = models.render_models(config, sources, context) if sources else []
    return context


def render_stage(config: PipelineConfig, stage: str, sources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    context = template_context(config, sources)
    return [(name, sqltemplate.render(name, context)) for name in STAGE_FILES[stage]]


# --- execution ----------------------------------------------------------------------------


def save_sql(run: Run, name: str, text: str, suffix: str = "") -> Path:
    stem, ext = os.path.splitext(name)
    path = run.out_dir / "sql" / f"{stem}{suffix}{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def set_run_settings(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    """Transaction-local settings the SQL reads with current_setting('raw_to_ready.*')."""
    for key, value in settings.items():
        conn.execute("SELECT meta.set_run_setting(%s, %s)", (f"raw_to_ready.{key}", value))


@contextmanager
def stage_timer(run: Run, stage: str) -> Iterator[dict[str, Any]]:
    record: dict[str, Any] = {"stage": stage, "status": "running", "rows": None, "seconds": None}
    run.stages.append(record)
    if stage in DATA_STAGES:
        log(f"[{stage:<8}] running ...")  # a long stage shows it started; the ok line follows
    started = time.perf_counter()
    try:
        yield record
        record["status"] = "ok"
    except BaseException as exc:
        record["status"] = "failed" if isinstance(exc, ValidationFailed) else "error"
        record["message"] = str(exc)
        raise
    finally:
        record["seconds"] = round(time.perf_counter() - started, 3)
        rows = "" if record["rows"] is None else f"{record['rows']:>10,} rows"
        rate = ""
        if record["rows"] and record["seconds"] > 0 and stage in DATA_STAGES:
            rate = f"  {record['rows'] / record['seconds']:>12,.0f} rows/s"
        log(f"[{stage:<8}] {record['status']:<6} {rows:>15} {record['seconds']:>8.2f} s{rate}")
        record_stage(run, record)


def record_stage(run: Run, record: dict[str, Any]) -> None:
    """meta.run_stages, in its own transaction so failed stages are recorded too."""
    try:
        with run.conn.transaction():
            run.conn.execute(
                "INSERT INTO meta.run_stages (run_id, stage, status, row_count, seconds, sql_sha256, message)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (run_id, stage) DO UPDATE SET status = EXCLUDED.status,"
                " row_count = EXCLUDED.row_count, seconds = EXCLUDED.seconds, message = EXCLUDED.message",
                (run.run_id, record["stage"], record["status"], record["rows"], record["seconds"],
                 record.get("sql_sha256"), record.get("message")),
            )
    except psycopg.Error:
        pass  # meta.runs may not exist yet (migrations failed): the report still has it


# --- stages -------------------------------------------------------------------------------


def stage_migrate(run: Run, stage: str = "migrate") -> None:
    with stage_timer(run, "migrate") as record:
        applied = migrate.apply_pending(run.conn, log=log)
        record["rows"] = len(applied)
        with run.conn.transaction():
            for name, text in render_stage(run.config, "migrate", run.sources):
                execute_sql(run.conn, name, text, save_sql(run, name, text))
        # this run holds the lock: a run still marked running was killed
        run.conn.execute("UPDATE meta.runs SET status = 'error', finished_at = now() WHERE status = 'running'")
        run.conn.execute(
            "INSERT INTO meta.runs (run_id, config_path) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (run.run_id, str(run.config.path)),
        )
    # from here on the session runs as the loader: no stage can change the raw layer
    roles.become_loader(run.conn)
    # before any data work: every source model returns the canonical columns and types
    models.check_contract(run.conn, template_context(run.config, run.sources)["models"])
    run.plan = versions.plan(run.conn, run.batch_file_sha256s, versions.definition_sha256(run.config),
                             run.full_refresh)
    versions.describe(run.plan, log)


def stage_ingest(run: Run, stage: str = "ingest") -> None:
    with stage_timer(run, "ingest") as record:
        with run.conn.transaction():
            set_run_settings(run.conn, run.settings)
            total = 0
            for index, source in enumerate(run.sources, start=1):
                added = ingest.ingest_file(run.conn, source, index, lambda n, t, s: save_sql(run, n, t, s), log)
                source["ingested_rows"] = added
                total += added
            if total:
                run.conn.execute("SELECT meta.set_run_setting('raw_to_ready.ingested_rows', %s)", (str(total),))
                name = "025_raw_events_analyze.sql"
                text = sqltemplate.render(name, {})
                execute_sql(run.conn, name, text, save_sql(run, name, text))
        record["rows"] = total


def stage_gate(run: Run, stage: str) -> None:
    """A stage whose checks can stop the run: validate (record-level checks, quarantine)
    and model (the source models, then the order-level checks of what they produced)."""
    level = GATE_LEVELS[stage]
    with stage_timer(run, stage) as record:
        ingest.require_ingested(run.conn, run.sources)
        try:
            with run.conn.transaction():
                set_run_settings(run.conn, run.settings)
                run_files(run, stage, record)
        except StageError as exc:
            if exc.sqlstate == versions.FULL_REFRESH_SQLSTATE:
                raise NeedsFullRefresh(str(exc).split(": ERROR: ", 1)[-1].split("\n")[0]) from None
            raise
        checks = report_mod.fetch_checks(run.conn, run.run_id, run.config.checks, level,
                                         run.config.validation["failure_sample_size"])
        run.results[level] = checks
        if checks:  # the rows checked (a conditional check looks at fewer); else the largest statement's
            record["rows"] = max(check["row_count"] for check in checks)
        STAGE_REPORTS.get(stage, lambda run, record: None)(run, record)
        failing = [c for c in checks if c["status"] == "fail"]
        warnings = [c for c in checks if c["status"] == "warn"]
        for check in checks:
            if check["status"] == "quarantine":
                log(f"  QUARANTINE {check['id']}: {check['failing_count']:,} records set aside "
                    f"({check['failing_percent']}%) in meta.quarantine; the run goes on")
            elif check["status"] != "pass":  # a drift check's message holds its figures
                log(f"  {check['status'].upper():<4} {check['id']}: {check['message']}" + ("" if level == "drift" else
                    f" ({check['failing_count']:,} {level}, {check['failing_percent']}%)"))
        if failing or (run.warn_error and warnings):
            raise ValidationFailed(
                f"{len(failing)} check(s) failed"
                + (f" and {len(warnings)} warned (--warn-error)" if run.warn_error and warnings else "")
                + f"; details in meta.validation_failures (run_id {run.run_id})"
            )


def run_files(run: Run, stage: str, record: dict[str, Any]) -> None:
    results: list[tuple[str, int]] = []
    digests = []
    for name, text in render_stage(run.config, stage, run.sources):
        path = save_sql(run, name, text)
        digests.append(sha256_text(text))
        results += execute_sql(run.conn, name, text, path)
        if stage == "stage" and name.startswith("040"):
            # orders removed, changed or added (its first INSERT and 041 are bookkeeping): an
            # unchanged re-run reports 0
            inserted = [rows for command, rows in results if command == "INSERT"][1:]
            record["rows"] = sum(rows for command, rows in results if command in ("DELETE", "UPDATE")) + sum(inserted)
    if stage != "stage":
        # the table a stage builds is its largest statement
        record["rows"] = max((rows for _, rows in results), default=0)
    record["sql_sha256"] = sha256_text("".join(digests))


def stage_sql(run: Run, stage: str) -> None:
    with stage_timer(run, stage) as record:
        with run.conn.transaction():
            set_run_settings(run.conn, run.settings)
            run_files(run, stage, record)
        STAGE_REPORTS.get(stage, lambda run, record: None)(run, record)


def report_splits(run: Run, record: dict[str, Any]) -> None:
    run.splits = report_mod.fetch_splits(run.conn, run.run_id)
    record["rows"] = sum(split["row_count"] for split in run.splits)  # rows assigned to a split
    for split in run.splits:
        span = (f"from {split['starts_at'] or 'the start'} to before {split['ends_before'] or 'the end'}"
                if split["row_count"] else "empty")
        labels = (f"; purged {split['purged_row_count']:,}; censored {split['censored_row_count']:,}"
                  if run.config.labels else "")
        log(f"  {split['split']:<5} {split['row_count']:>10,} rows ({split['fraction']:.3f}, "
            f"target {split['target_fraction']:.3f}) {span}; gap left out {split['gap_row_count']:,}{labels}")


def report_profile(run: Run, record: dict[str, Any]) -> None:
    run.profile = profiles.fetch_profile(run.conn, run.run_id)
    record["rows"] = run.profile["batch"]["row_count"] + run.profile["features"]["sampled_rows"]
    baseline = run.profile["baseline_run_id"]
    log(f"  profiled {run.profile['batch']['row_count']:,} batch orders, {run.profile['features']['sampled_rows']:,}"
        f" of {run.profile['features']['row_count']:,} feature rows; drift against "
        + (f"run {baseline}" if baseline else "no baseline (no earlier run passed with a profile)"))


# What a stage reports besides its checks and row count; a new stage adds an entry here.
STAGE_REPORTS = {"splits": report_splits, "profile": report_profile}


def stage_registry(run: Run, stage: str = "registry") -> None:
    hashes = run.hashes
    run.feature_version = versions.feature_version(hashes)
    with stage_timer(run, "registry") as record:
        with run.conn.transaction():
            set_run_settings(run.conn, {
                **run.settings,
                "git_commit": versions.git_commit(),
                "config_sha256": json.dumps(hashes["config"], sort_keys=True),
                "sql_sha256": json.dumps(hashes["sql"], sort_keys=True),
                "source_sha256": json.dumps(hashes["source"], sort_keys=True),
            })
            run_files(run, "registry", record)
    log(f"  feature_version {run.feature_version}")


# --- report -------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- entry points -------------------------------------------------------------------------


def connect(database_url: str, run_id: str = "") -> psycopg.Connection:
    try:
        # autocommit: every stage opens its own explicit transaction; the application name
        # tells a waiting run (and pg_stat_activity) which run holds the lock
        conn = psycopg.connect(database_url, autocommit=True, application_name=f"raw-to-ready {run_id}".strip())
        # the server ends this session within a second of the runner dying, even in the
        # middle of a statement, so its lock and transaction do not outlive it
        conn.execute("SET client_connection_check_interval = '1s'")
        return conn
    except psycopg.Error as exc:
        raise StageError(
            f"could not connect to {pgembed.masked(database_url)}: {str(exc).strip()}\n"
            "  is PostgreSQL running? set DATABASE_URL, or unset it to use the embedded server"
        ) from None


def check_patterns(conn: psycopg.Connection, config: PipelineConfig) -> None:
    """Have PostgreSQL compile every `matches` pattern before any data work."""
    for check in config.checks:
        if check["rule"] != "matches":
            continue
        try:
            with conn.transaction():
                conn.execute("SELECT '' ~ %s", (check["params"]["pattern"],))
        except psycopg.errors.InvalidRegularExpression as exc:
            message = exc.diag.message_primary or str(exc)
            raise ConfigError(config.expectations_path, check["key"], f"PostgreSQL cannot use this pattern: {message}") \
                from None


# The stages that are not plain SQL stages (stage_sql); a new one adds an entry here.
STAGE_RUNNERS = {"migrate": stage_migrate, "ingest": stage_ingest, "validate": stage_gate, "model": stage_gate,
                 "profile": stage_gate, "registry": stage_registry}


def run_pipeline(
    config_path: str | Path,
    database_url: str | None = None,
    through: str = "registry",
    warn_error: bool = False,
    run_id: str | None = None,
    lock_timeout: float = 600.0,
    full_refresh: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Run every stage up to and including ``through``; return (exit code, report)."""
    run_id = run_id or new_run_id()
    started = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "run_id": run_id, "status": "error", "exit_code": EXIT_RUNTIME, "validation_passed": None,
        "errors": [], "warnings": [], "config": str(config_path), "started_at": started.isoformat(),
        "warn_error": warn_error,
    }
    run: Run | None = None
    code = EXIT_RUNTIME
    try:
        config = config_mod.load(config_path)
        for note in config.notes:
            log(f"note: {note}")
        sources = describe_sources(config, reread=full_refresh)
        ingest.check_rule_columns(config, sources)
        conn = connect(database_url or pgembed.resolve_database_url(), run_id)
        run = Run(config=config, run_id=run_id, conn=conn, out_dir=ARTIFACTS / "runs" / run_id,
                  warn_error=warn_error, sources=sources, full_refresh=full_refresh)
        log(f"run {run_id}: {config.path} -> {len(sources)} source file(s), stages through {through}")
        # content only, so known before any stage: the training set carries it
        run.hashes = versions.content_hashes(config, sources, INGEST_FILES, (
            rendered for stage in STAGE_FILES for rendered in render_stage(config, stage, sources)))
        check_patterns(conn, config)
        ingest.lock_pipeline(conn, lock_timeout, log)
        stages = STAGES[: STAGES.index(through) + 1]
        position = 0
        while position < len(stages):
            try:
                STAGE_RUNNERS.get(stages[position], stage_sql)(run, stages[position])
                position += 1
            except NeedsFullRefresh as exc:  # the gates start over on every named file
                run.plan = run.plan.as_full_refresh(list(dict.fromkeys(run.batch_file_sha256s)), str(exc))
                log(f"  full refresh: {exc}")
                position = stages.index("validate")
        code = EXIT_PASSED
        report["status"] = "passed"
    except ValidationFailed as exc:
        code = EXIT_VALIDATION_FAILED
        report["status"] = "failed"
        log(f"validation failed: {exc}")
    except (ConfigError, ingest.SourceError) as exc:
        code = EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_RUNTIME
        report["errors"].append(str(exc))
        print(f"error: {exc}", file=sys.stderr)
    except (StageError, migrate.MigrationError, ingest.IngestError, sqltemplate.TemplateError,
            pgembed.EmbeddedServerError) as exc:
        code = EXIT_RUNTIME
        report["errors"].append(in_stage(run, str(exc)))
        print(f"error: {report['errors'][-1]}", file=sys.stderr)
    except psycopg.Error as exc:  # e.g. the server stopped in mid-stage
        code = EXIT_RUNTIME
        report["errors"].append(in_stage(run, f"database error: {str(exc).strip()}"))
        print(f"error: {report['errors'][-1]}", file=sys.stderr)
    except OSError as exc:  # a file vanished or became unreadable mid-run
        code = EXIT_RUNTIME
        report["errors"].append(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        print(f"error: {report['errors'][-1]}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - a bug of ours: still a report, a message, exit 3
        code = EXIT_RUNTIME
        report["errors"].append(f"internal error: {type(exc).__name__}: {exc}")
        print(f"error: internal error: {type(exc).__name__}: {exc} (please report it)", file=sys.stderr)
    finally:
        report["exit_code"] = code
        report["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        if run is not None:
            finish_run(run, report, code)
        path = report_mod.write_report(run_id, report, run.config.alerts if run else None, log)
        log(f"report: {path}")
    return code, report


def in_stage(run: Run | None, message: str) -> str:
    """A runtime error names the stage it stopped; the next run starts that stage over."""
    failed = [s["stage"] for s in (run.stages if run else []) if s["status"] == "error"]
    if failed and run and run.config.distribution:
        message += distribution.describe_failure(run.conn)
    if failed and run and run.conn.broken:
        message += ("\n  the connection to PostgreSQL was lost (did the server stop?): the stage's transaction "
                    "was rolled back; run again once the server is up")
    return f"stage {failed[-1]} stopped: {message}" if failed else message


def describe_sources(config: PipelineConfig, reread: bool = True) -> list[dict[str, Any]]:
    """Every named file, hashed, with its header and its source's model (a local file that
    did not change since a run described it is not read again unless ``reread``)."""
    described = sourcecache.describe_all(config.files, ingest.describe_source, use_cache=not reread)
    return [{**d, "model": f.model} for d, f in zip(described, config.files)]


def finish_run(run: Run, report: dict[str, Any], code: int) -> None:
    checks = run.checks
    if checks:
        # with --warn-error a warning fails the gate like an error does
        failing = ("fail", "warn") if run.warn_error else ("fail",)
        report["validation_passed"] = not any(c["status"] in failing for c in checks)
        # the seed's shape: one sentence per failing check
        report["errors"] = [c["message"] for c in checks if c["status"] in failing] + report["errors"]
        report["warnings"] = [c["message"] for c in checks if c["status"] == "warn"]
    report.update({
        "feature_version": run.feature_version,
        "refresh": {"full": run.plan.full_refresh, "reason": run.plan.reason,
                    "version_number": run.plan.version_number} if run.plan else None,
        "stages": run.stages,
        "sources": [
            {"source": s["source_name"], "path": s["path"], "sha256": s["sha256"], "bytes": s["bytes"],
             "ingested_rows": s.get("ingested_rows")}
            for s in run.sources
        ],
        "checks": checks,
        "quarantine": report_mod.quarantine_summary(checks),
        "splits": run.splits,
        "profile": run.profile,
        "runner_peak_rss_mib": round(peak_rss_mib(), 1),
    })
    status = {EXIT_PASSED: "passed", EXIT_VALIDATION_FAILED: "failed"}.get(code, "error")
    try:
        if run.conn.closed:
            return
        with run.conn.transaction():
            run.conn.execute(
                "UPDATE meta.runs SET finished_at = now(), status = %s, exit_code = %s WHERE run_id = %s",
                (status, code, run.run_id),
            )
    except psycopg.Error:
        pass
    finally:
        run.conn.close()


def render_all(config_path: str | Path, out_dir: Path) -> list[Path]:
    """Write every stage's rendered SQL (ingest per source file) for DBAs; no database needed."""
    config = config_mod.load(config_path)
    sources = describe_sources(config)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in migrate.migration_files():
        target = out_dir / "migrations" / path.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(path.read_bytes())
        written.append(target)
    for index, source in enumerate(sources, start=1):
        parts = []
        for name, text in ingest.render_ingest(source):
            stem, ext = os.path.splitext(name)
            target = out_dir / f"{stem}.file{index}{ext}"
            target.write_text(text, encoding="utf-8")
            written.append(target)
            parts.append(target.name)
        target = out_dir / f"ingest.file{index}.psql"
        target.write_text(ingest.psql_ingest_script(source, parts), encoding="utf-8")
        written.append(target)
    for stage in STAGE_FILES:
        for name, text in render_stage(config, stage, sources):
            target = out_dir / name
            target.write_text(text, encoding="utf-8")
            written.append(target)
    hashes = versions.content_hashes(config, sources, INGEST_FILES, (
        rendered for stage in STAGE_FILES for rendered in render_stage(config, stage, sources)))
    written.append(versions.write_psql_settings(config, sources, hashes, out_dir / "settings.sql"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.run", description=__doc__.splitlines()[0],
        epilog="Exit codes: 0 passed, 1 validation failed, 2 bad config or usage, 3 runtime or database error.",
    )
    parser.add_argument("--config", default="configs/pipeline.yaml", help="pipeline config (default: %(default)s)")
    parser.add_argument("--stage", choices=STAGES, default="registry",
                        help="run every stage up to and including this one (default: all)")
    parser.add_argument("--warn-error", action="store_true", help="treat warnings as failures (exit 1)")
    parser.add_argument("--lock-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="how long to wait for another run's lock on the database (default: %(default)g; 0: not at all)")
    parser.add_argument("--full-refresh", action="store_true",
                        help="validate, stage and recompute everything, not just the new files")
    parser.add_argument("--render", action="store_true", help="write the rendered SQL and exit; no database")
    parser.add_argument("--out", default="artifacts/rendered", help="where --render writes (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.render:
        try:
            written = render_all(args.config, Path(args.out))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (ingest.SourceError, sqltemplate.TemplateError, migrate.MigrationError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        except OSError as exc:
            print(f"error: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_RUNTIME
        for path in written:
            log(f"rendered {path}")
        return EXIT_PASSED
    code, _ = run_pipeline(args.config, through=args.stage, warn_error=args.warn_error,
                           lock_timeout=args.lock_timeout, full_refresh=args.full_refresh)
    return code


if __name__ == "__main__":
    sys.exit(main())
