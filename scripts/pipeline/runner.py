"""Run the pipeline: every stage of scripts/pipeline/stages.py in order, each in one transaction.

Every run writes artifacts/reports/<run_id>.json (and its HTML page and JUnit XML), failed
runs included, and the rendered SQL it executed to artifacts/runs/<run_id>/sql/.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from scripts import errors
from scripts.config import PipelineConfig
from scripts.config import load as load_config
from scripts.console import log, peak_rss_mib
from scripts.db import connection, distribution, migrate, pipelines, roles, server
from scripts.db.execute import counted_rows, execute_sql, read_rows
from scripts.db import locks
from scripts.errors import ConfigError, NeedsFullRefresh, StageError, ValidationFailed
from scripts.ingest import cache, copy, sources as sources_mod
from scripts.paths import ARTIFACTS
from scripts.pipeline import context as context_mod
from scripts.pipeline import models, stage_reports, versions
from scripts.pipeline.stages import BY_NAME, STAGE_NAMES, Stage
from scripts.pipeline.state import Run, new_run_id
from scripts.reports import results, write
from scripts.pipeline.versions import sha256_text


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
def stage_timer(run: Run, stage: Stage) -> Iterator[dict[str, Any]]:
    record: dict[str, Any] = {"stage": stage.name, "status": "running", "rows": None, "seconds": None,
                              "table": stage.table}
    run.stages.append(record)
    if stage.data:
        log(f"[{stage.name:<8}] running ...")  # a long stage shows it started; the ok line follows
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
        # the rows it wrote to its table, then what it read (labelled)
        rows = "" if record["rows"] is None else f"{record['rows']:>10,} rows"
        wrote = f"  {stage.table}" if record["rows"] is not None and stage.table else ""
        read = f"; {record['read']:,} {record['read_what']}" if record.get("read") is not None else ""
        log(f"[{stage.name:<8}] {record['status']:<6} {rows:>15} {record['seconds']:>8.2f} s{wrote}{read}")
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


# --- how each kind of stage runs (stages.py names the kind) -------------------------------


def stage_migrate(run: Run, stage: Stage) -> None:
    with stage_timer(run, stage) as record:
        applied = migrate.apply_pending(run.conn, log=log)
        record["rows"] = len(applied)
        with run.conn.transaction():
            for name, text in run.rendered[stage.name]:
                execute_sql(run.conn, name, text, save_sql(run, name, text))
        # this run holds the lock: a run still marked running was killed
        run.conn.execute("UPDATE meta.runs SET status = 'error', finished_at = now() WHERE status = 'running'")
        taken_from = pipelines.claim(run.conn, run.config.name, run.config.path, run.run_id)
        run.conn.execute(
            "INSERT INTO meta.runs (run_id, config_path, pipeline) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (run.run_id, str(run.config.path), run.config.name),
        )
    if taken_from:
        log(f"  this database was pipeline {taken_from}'s; it is now pipeline {run.config.name}'s (--take-over)")
    # from here on the session runs as the loader: no stage can change the raw layer
    roles.become_loader(run.conn)
    # before any data work: every source model returns the canonical columns and types
    models.check_contract(run.conn, run.context["models"], run.config.staging.attributes)
    run.plan = versions.plan(run.conn, run.batch_file_sha256s, versions.definition_sha256(run.config),
                             run.full_refresh, {s["sha256"]: s["bytes"] for s in run.sources})
    versions.describe(run.plan, log)


def stage_ingest(run: Run, stage: Stage) -> None:
    with stage_timer(run, stage) as record:
        with run.conn.transaction():
            set_run_settings(run.conn, run.settings)
            total = copy.ingest(run.conn, run.sources, lambda n, t, s: save_sql(run, n, t, s), log)
            if total:
                run.conn.execute("SELECT meta.set_run_setting('raw_to_ready.ingested_rows', %s)", (str(total),))
                for name, text in copy.render_analyze():
                    execute_sql(run.conn, name, text, save_sql(run, name, text))
        record["rows"] = total


def stage_sql(run: Run, stage: Stage) -> None:
    """A stage of SQL files; a gate (validate, model, profile) then reads its checks back
    and stops the run when one fails."""
    with stage_timer(run, stage) as record:
        if stage.gate_level:
            copy.require_ingested(run.conn, run.sources)
        try:
            with run.conn.transaction():
                set_run_settings(run.conn, run.settings)
                run_files(run, stage, record)
        except StageError as exc:
            if exc.sqlstate == versions.FULL_REFRESH_SQLSTATE:
                raise NeedsFullRefresh(str(exc).split(": ERROR: ", 1)[-1].split("\n")[0]) from None
            raise
        if stage.gate_level:
            gate(run, stage, record)
        if stage.report:
            getattr(stage_reports, stage.report)(run, record)
        if stage.gate_level:
            stop_at_gate(run, stage)


def gate(run: Run, stage: Stage, record: dict[str, Any]) -> None:
    level = stage.gate_level
    checks = results.fetch_checks(run.conn, run.run_id, run.config.checks, level,
                                  run.config.validation.failure_sample_size)
    run.results[level] = checks
    if checks and stage.read:  # the rows checked (a conditional check looks at fewer)
        record["read"], record["read_what"] = max(check["row_count"] for check in checks), stage.read


def stop_at_gate(run: Run, stage: Stage) -> None:
    level = stage.gate_level
    checks = run.results[level]
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


def run_files(run: Run, stage: Stage, record: dict[str, Any]) -> None:
    """Execute the stage's files; its rows are what their ``-- rows:`` statements wrote."""
    done = []
    digests = []
    for name, text in run.rendered[stage.name]:
        digests.append(sha256_text(text))
        done += execute_sql(run.conn, name, text, save_sql(run, name, text))
    rows = counted_rows(done)
    record["rows"] = 0 if rows is None else rows
    if (read := read_rows(done)) is not None:
        record["read"], record["read_what"] = read
    record["sql_sha256"] = sha256_text("".join(digests))


def stage_registry(run: Run, stage: Stage) -> None:
    hashes = run.hashes
    run.feature_version = versions.feature_version(hashes)
    with stage_timer(run, stage) as record:
        with run.conn.transaction():
            set_run_settings(run.conn, {
                **run.settings,
                "git_commit": versions.git_commit(),
                "config_sha256": json.dumps(hashes["config"], sort_keys=True),
                "sql_sha256": json.dumps(hashes["sql"], sort_keys=True),
                "source_sha256": json.dumps(hashes["source"], sort_keys=True),
            })
            run_files(run, stage, record)
        published = run.conn.execute("SELECT max(version_number) FROM meta.feature_versions").fetchone()[0]
    if record["rows"]:
        log(f"  published version {published}: feature_version {run.feature_version}")
    else:
        log(f"  nothing changed: version {published} stays published (feature_version {run.feature_version})")


RUNNERS: dict[str, Callable[[Run, Stage], None]] = {
    "migrate": stage_migrate, "ingest": stage_ingest, "sql": stage_sql, "registry": stage_registry,
}


# --- two stages at once ----------------------------------------------------------------


QUERY_CANCELED = "57014"  # the statement a failure beside it cancelled


def runs_beside(run: Run, stage: Stage, following: Stage) -> bool:
    """Whether ``following`` runs beside ``stage``: it may (stages.py), the run is a full
    refresh (a daily run's stages are short) and on one server (Citus spreads each statement
    over its workers already)."""
    return following.beside == stage.name and bool(run.plan and run.plan.full_refresh) \
        and not run.config.distribution


def run_beside(run: Run, stage: Stage, following: Stage) -> None:
    """Run ``stage`` on the run's connection and ``following`` on a second one, at once, each
    in its own transaction as always. A failure of either cancels the other's statement.
    Once both have ended, the error raised is ``stage``'s, unless that was the cancel."""
    conn = connect(run.database_url, run.run_id)
    roles.become_loader(conn)
    beside = dataclasses.replace(run, conn=conn)  # shares the stages, results and plan
    errors_of: dict[str, BaseException] = {}

    def work() -> None:
        try:
            RUNNERS[following.kind](beside, following)
        except BaseException as exc:  # noqa: BLE001 - raised in the run's thread below
            errors_of[following.name] = exc
            run.conn.cancel_safe()

    thread = threading.Thread(target=work, name=f"stage {following.name}", daemon=True)
    thread.start()
    try:
        RUNNERS[stage.kind](run, stage)
    except BaseException as exc:  # noqa: BLE001 - raised below, after the other stage ended
        errors_of[stage.name] = exc
        conn.cancel_safe()
    finally:
        thread.join()
        conn.close()
        run.stages.sort(key=lambda record: STAGE_NAMES.index(record["stage"]))
        for record in run.stages:  # the report says which ran at the same time
            if record["stage"] == following.name:
                record["beside"] = stage.name
    cancelled = getattr(errors_of.get(stage.name), "sqlstate", None) == QUERY_CANCELED
    for name in ([following.name, stage.name] if cancelled else [stage.name, following.name]):
        if name in errors_of:
            run.stopped = name
            raise errors_of[name]


# --- a run ------------------------------------------------------------------------------


def connect(database_url: str, run_id: str = "") -> psycopg.Connection:
    # autocommit: every stage opens its own explicit transaction; the application name
    # tells a waiting run (and pg_stat_activity) which run holds the lock
    conn = connection.connect(database_url, autocommit=True, application_name=f"raw-to-ready {run_id}".strip())
    # the server ends this session within a second of the runner dying, even in the
    # middle of a statement, so its lock and transaction do not outlive it
    conn.execute("SET client_connection_check_interval = '1s'")
    return conn


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


def run_pipeline(
    config_path: str | Path,
    database_url: str | None = None,
    through: str = "registry",
    warn_error: bool = False,
    run_id: str | None = None,
    lock_timeout: float = 600.0,
    full_refresh: bool = False,
    take_over: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Run every stage up to and including ``through``; return (exit code, report)."""
    run_id = run_id or new_run_id()
    started = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {
        "run_id": run_id, "status": "error", "exit_code": errors.EXIT_RUNTIME, "validation_passed": None,
        "errors": [], "warnings": [], "config": str(config_path), "started_at": started.isoformat(),
        "warn_error": warn_error,
    }
    run: Run | None = None
    code = errors.EXIT_RUNTIME
    try:
        config = load_config(config_path)
        for note in config.notes:
            log(f"note: {note}")
        sources = describe_sources(config, reread=full_refresh)
        sources_mod.check_rule_columns(config, sources)
        report["pipeline"] = config.name
        database_url = database_url or pipelines.database_url(config.name)
        conn = connect(database_url, run_id)
        run = Run(config=config, run_id=run_id, conn=conn, out_dir=ARTIFACTS / "runs" / run_id,
                  warn_error=warn_error, sources=sources, full_refresh=full_refresh,
                  database_url=database_url)
        log(f"run {run_id}: pipeline {config.name} ({config.path}) -> {len(sources)} source file(s), "
            f"stages through {through}")
        # content only, so known before any stage: the training set carries it
        run.context = context_mod.template_context(config, sources)
        run.rendered = context_mod.render_stages(config, sources)
        run.hashes = context_mod.content_hashes(config, sources, run.rendered)
        check_patterns(conn, config)
        locks.lock_pipeline(conn, lock_timeout, log)
        pipelines.check(conn, config.name, config.path, take_over)
        stages = [BY_NAME[name] for name in STAGE_NAMES[: STAGE_NAMES.index(through) + 1]]
        position = 0
        while position < len(stages):
            try:
                following = stages[position + 1] if position + 1 < len(stages) else None
                if following and runs_beside(run, stages[position], following):
                    run_beside(run, stages[position], following)
                    position += 2
                else:
                    RUNNERS[stages[position].kind](run, stages[position])
                    position += 1
            except NeedsFullRefresh as exc:  # the gates start over on every named file
                run.plan = run.plan.as_full_refresh(list(dict.fromkeys(run.batch_file_sha256s)), str(exc))
                log(f"  full refresh: {exc}")
                position = STAGE_NAMES.index("validate")
        code = errors.EXIT_PASSED
        report["status"] = "passed"
    except ValidationFailed as exc:
        code = errors.EXIT_VALIDATION_FAILED
        report["status"] = "failed"
        log(f"validation failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - every failure ends in a report, a message and an exit code
        code, message = errors.describe(exc)
        if isinstance(exc, IN_STAGE_ERRORS):
            message = in_stage(run, message)
        report["errors"].append(message.removesuffix(" (please report it)"))
        print(f"error: {message}", file=sys.stderr)
    finally:
        report["exit_code"] = code
        report["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        if run is not None:
            finish_run(run, report, code)
        path = write.write_report(run_id, report, run.config.alerts if run else None, log)
        log(f"report: {path}")
    return code, report


# The errors a stage's work raises: their message names the stage that stopped.
IN_STAGE_ERRORS = (StageError, errors.MigrationError, errors.IngestError, errors.LockError, errors.TemplateError,
                   errors.EmbeddedServerError, errors.ClusterError, psycopg.Error)


def in_stage(run: Run | None, message: str) -> str:
    """A runtime error names the stage it stopped; the next run starts that stage over."""
    failed = [s["stage"] for s in (run.stages if run else []) if s["status"] == "error"]
    if failed and run and run.stopped:  # two stages ran at once: name the one whose error this is
        stopped = next(r for r in run.stages if r["stage"] == run.stopped)
        also = [r["stage"] for r in run.stages if r["status"] == "error" and r["stage"] != run.stopped
                and (r.get("beside") == run.stopped or stopped.get("beside") == r["stage"])]
        failed = [name for name in failed if name != run.stopped] + [run.stopped]
        message += "".join(f"\n  the {name} stage, run beside it, stopped too" for name in also)
    if failed and run and run.config.distribution:
        message += distribution.describe_failure(run.conn)
    if failed and run and run.conn.broken:
        message += ("\n  the connection to PostgreSQL was lost (did the server stop?): the stage's transaction "
                    "was rolled back; run again once the server is up")
    return f"stage {failed[-1]} stopped: {message}" if failed else message


def describe_sources(config: PipelineConfig, reread: bool = True) -> list[dict[str, Any]]:
    """Every named file, hashed, with its header and its source's model (a local file that
    did not change since a run described it is not read again unless ``reread``)."""
    described = cache.describe_all(config.files, sources_mod.describe_source, use_cache=not reread)
    return [{**d, "model": f.model, "lines_model": f.lines_model} for d, f in zip(described, config.files)]


def finish_run(run: Run, report: dict[str, Any], code: int) -> None:
    checks = run.checks
    if checks:
        # with --warn-error a warning fails the gate like an error does
        failing = ("fail", "warn") if run.warn_error else ("fail",)
        report["validation_passed"] = not any(c["status"] in failing for c in checks)
        # one sentence per failing check, as the original from-raw-to-ready report has them
        report["errors"] = [c["message"] for c in checks if c["status"] in failing] + report["errors"]
        report["warnings"] = [c["message"] for c in checks if c["status"] == "warn"]
    report.update({
        "feature_version": run.feature_version,
        "refresh": {"full": run.plan.full_refresh, "reason": run.plan.reason,
                    "version_number": run.plan.version_number,
                    "published_version": run.plan.published_version} if run.plan else None,
        "stages": run.stages,
        "sources": [
            {"source": s["source_name"], "path": s["path"], "sha256": s["sha256"], "bytes": s["bytes"],
             "ingested_rows": s.get("ingested_rows")}
            for s in run.sources
        ],
        "checks": checks,
        "quarantine": results.quarantine_summary(checks),
        "splits": run.splits,
        "profile": run.profile,
        "runner_peak_rss_mib": round(peak_rss_mib(), 1),
    })
    status = {errors.EXIT_PASSED: "passed", errors.EXIT_VALIDATION_FAILED: "failed"}.get(code, "error")
    try:
        if run.conn.closed:
            return
        with run.conn.transaction():
            run.conn.execute(
                "UPDATE meta.runs SET finished_at = now(), status = %s, exit_code = %s, report = %s WHERE run_id = %s",
                (status, code, Jsonb({**report, "exit_code": code}, dumps=lambda value: json.dumps(value, default=str)), run.run_id),
            )
    except psycopg.Error:
        pass
    finally:
        run.conn.close()


def render_all(config_path: str | Path, out_dir: Path) -> list[Path]:
    """Write every stage's rendered SQL (ingest per source file) for DBAs; no database needed."""
    config = load_config(config_path)
    return context_mod.render_all(config, describe_sources(config), out_dir)
