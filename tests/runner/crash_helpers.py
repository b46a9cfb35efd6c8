"""Helpers for tests/runner/test_crash_safety.py: generated inputs, a runner in a child process
that can be killed inside a stage, throwaway databases, and a database's published state.

The published state is compared by content only: each table is read by its name with
SELECT (so it may become a view over versioned tables), run ids and bookkeeping
timestamps are left out, and the rows are compared as a multiset, whatever their order.
Rather than fetching 120,000 rows a table into Python lists (1.3 s a state), the server
hashes each row's text (64 bits) and sums the hashes (0.3 s): two states are equal when
every table has the same columns, row count and sum.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import conninfo, sql
from psycopg.rows import dict_row

from scripts.bench import generate_orders
from scripts.db import server as embedded
from tests.helpers import REPO_ROOT, Project

# Sized so that every data stage of the second run takes at least ~0.25 s on a 2-core
# machine (measured: 0.25-0.7 s each; a stage is caught inside within 0.01-0.1 s of its
# start), while a whole run stays near 3 s.
BASE_ROWS = 80_000  # a year of orders: the first, complete run
LATER_ROWS = 40_000  # the next month, in a second file: the run that is killed
BASE_CONFIG = "configs/base.yaml"  # the base file only
FULL_CONFIG = "configs/pipeline.yaml"  # the base file and the later one

# What a consumer of the pipeline reads, and the columns compared (None: every column but
# the bookkeeping ones). The registry is compared by its latest row.
PUBLISHED = {
    "stg.orders": ("order_id", "customer_id", "order_at", "amount", "status"),
    "feats.customer_features": None,
    "feats.customer_labels": None,
    "meta.dataset_splits": ("customer_id", "feature_time", "split"),
    "feats.training_set": None,
}
REGISTRY = "meta.feature_registry"
# Run ids, the instants a run wrote something and version counters (how many runs came
# before) differ between equal runs; business timestamps (order_at, feature_time,
# label_window_end) and the content-derived feature_version are content and are compared.
BOOKKEEPING = re.compile(r"(^|_)run_id$|^(created|staged|started|finished|recorded|checked|published|registered)_at$"
                         r"|^(version_number|valid_from|valid_to)$")


# --- inputs ---------------------------------------------------------------------------------


def write_project(root: Path) -> Project:
    """A project with a year of generated orders, a later month in a second file, and two
    configs with labels (so every stage does work): base (first file) and full (both)."""
    project = Project(root)
    raw = root / "data" / "raw"
    generate_orders.generate(raw / "orders_base.csv", rows=BASE_ROWS, seed=1, start="2024-01-01", days=365)
    # the same customers a month later; order ids N... so that they are new orders
    later = raw / "later.tmp"
    generate_orders.generate(later, rows=LATER_ROWS, seed=2, customers=max(50, BASE_ROWS // 12),
                             start="2025-01-01", days=30)
    with later.open(encoding="utf-8") as src, (raw / "orders_later.csv").open("w", encoding="utf-8") as dst:
        dst.write(src.readline())
        dst.writelines("N" + line[1:] for line in src)
    later.unlink()
    expectations = yaml.safe_load((REPO_ROOT / "configs" / "expectations.yaml").read_text(encoding="utf-8"))
    for config, paths in ((BASE_CONFIG, ["data/raw/orders_base.csv"]),
                          (FULL_CONFIG, ["data/raw/orders_base.csv", "data/raw/orders_later.csv"])):
        project.write_config(paths, expectations, name=Path(config).name, labels={"horizon_days": 30})
    return project


# --- the runner in a child process ----------------------------------------------------------


def stage_line(stage: str, status: str) -> str:
    """The pattern of stage_timer's line (scripts/pipeline/runner.py): "[features] running ..." etc."""
    return rf"^\[{re.escape(stage)}\s*\] {status}"


class Runner:
    """`python -m scripts.run --config CONFIG` on ``url`` in a child process; its stdout is
    read line by line as it comes, so a test can wait for a stage to start."""

    def __init__(self, root: Path, config: str, url: str, *extra: str) -> None:
        self.stderr_path = root / f"runner-{uuid.uuid4().hex[:8]}.stderr"
        self._stderr = self.stderr_path.open("w+", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scripts.run", "--config", config, *extra],
            cwd=root, env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
        )
        self.lines: list[str] = []
        self._ended = False  # the runner closed its stdout: no more lines
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def find(self, pattern: str) -> str | None:
        with self._changed:
            return next((line for line in self.lines if re.search(pattern, line)), None)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        """The first line matching ``pattern``; fails if the runner ends or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if re.search(pattern, line)), None)
                if found is not None:
                    return found
                if self._ended:
                    raise AssertionError(f"the runner ended (exit {self.proc.returncode}) without printing "
                                         f"{pattern!r}:\n{self.output}")
                if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no line {pattern!r} within {timeout} s:\n{self.output}")

    @property
    def run_id(self) -> str:
        return re.match(r"run (\S+):", self.wait_for(r"^run \S+: ")).group(1)

    @property
    def application_name(self) -> str:
        return f"raw-to-ready {self.run_id}"  # what run.connect names its session

    def wait(self, timeout: float = 180) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the runner did not end within {timeout} s:\n{self.output}") from None
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.wait()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    @property
    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def run_to_completion(root: Path, config: str, url: str, *extra: str) -> Runner:
    runner = Runner(root, config, url, *extra)
    code = runner.wait()
    runner.close()
    assert code == 0, f"exit {code}\n{runner.output}\n{runner.stderr}"
    return runner


def wait_inside_stage(runner: Runner, url: str, stage: str, timeout: float = 120) -> str:
    """Wait until ``stage`` has started and its transaction is writing: the runner's session
    runs a statement and holds a transaction id. Returns the start of that statement.

    Fails if the stage ends first (too little data to catch it inside)."""
    runner.wait_for(stage_line(stage, r"running \.\.\.$"), timeout)
    ended = stage_line(stage, "(ok|error|failed)")
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 80) FROM pg_stat_activity"
                " WHERE application_name = %s AND state = 'active' AND backend_xid IS NOT NULL"
                " AND query NOT LIKE 'INSERT INTO meta.run_stages%%'",
                (runner.application_name,),
            ).fetchone()
            if runner.find(ended):  # checked after the query: a statement seen was the stage's
                raise AssertionError(f"the {stage} stage ended before it could be caught inside: "
                                     f"raise BASE_ROWS / LATER_ROWS\n{runner.output}")
            if row:
                return row[0]
            time.sleep(0.005)
    raise AssertionError(f"the {stage} stage never showed a writing statement within {timeout} s\n{runner.output}")


# --- databases ------------------------------------------------------------------------------


class Databases:
    """Throwaway databases on the test server: fresh, or copies of another (its template)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: list[str] = []

    def create(self, template: str | None = None) -> str:
        name = f"r2r_crash_{uuid.uuid4().hex[:12]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)
        self.names.append(name)
        return embedded.with_database(self.admin_url, name)

    def copy_of(self, url: str) -> str:
        """A new database holding exactly what ``url``'s holds (nobody may be connected to it)."""
        return self.create(template=database_name(url))

    def drop(self, url: str) -> None:
        name = database_name(url)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self.names:
            self.names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.names):
            self.drop(embedded.with_database(self.admin_url, name))


def database_name(url: str) -> str:
    return conninfo.conninfo_to_dict(url)["dbname"]


# --- published state ------------------------------------------------------------------------


@dataclass(frozen=True)
class TableContent:
    columns: tuple[str, ...]
    rows: int
    digest: str  # the sum of the rows' 64-bit hashes: the same whatever their order

    def __str__(self) -> str:
        return f"{self.rows:,} rows of ({', '.join(self.columns)}), hash sum {self.digest}"


State = dict[str, Any]  # name -> TableContent, a registry row (dict), or None when absent


def snapshot_connection(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    # the text of a timestamp depends on these; the killed runner's session may still hold
    # a lock for up to a second (client_connection_check_interval), so wait a while for it
    for setting, value in (("TimeZone", "UTC"), ("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"),
                           ("extra_float_digits", "1"), ("lock_timeout", "30s")):
        conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
    return conn


def exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def compared_columns(conn: psycopg.Connection, name: str) -> tuple[str, ...]:
    schema, table = name.split(".")
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(schema, table)))
        return tuple(c.name for c in cur.description if not BOOKKEEPING.search(c.name))


def table_content(conn: psycopg.Connection, name: str, columns: tuple[str, ...] | None = None) -> TableContent | None:
    if not exists(conn, name):
        return None
    columns = columns or compared_columns(conn, name)
    schema, table = name.split(".")
    count, digest = conn.execute(
        sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
            " FROM (SELECT {} FROM {}) AS t"
        ).format(sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema, table))
    ).fetchone()
    return TableContent(columns, count, digest)


def latest_registry_row(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The latest row of meta.feature_registry, without its run id and timestamp."""
    if not exists(conn, REGISTRY):
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM meta.feature_registry ORDER BY created_at DESC, run_id DESC LIMIT 1")
        row = cur.fetchone()
    return None if row is None else {k: v for k, v in row.items() if not BOOKKEEPING.search(k)}


def published_state(url: str, names: tuple[str, ...] = (*PUBLISHED, REGISTRY)) -> State:
    with snapshot_connection(url) as conn:
        return {name: latest_registry_row(conn) if name == REGISTRY else table_content(conn, name, PUBLISHED[name])
                for name in names}


def differences(actual: State, expected: State, registry_columns: tuple[str, ...] | None = None) -> list[str]:
    """One line per published name whose content differs; empty when the states are equal.

    ``registry_columns`` limits the latest registry rows compared to these columns (the
    final state of two runs: their feature_version); by default the whole row counts."""
    lines = []
    for name in expected:
        seen, wanted = actual.get(name), expected[name]
        if name == REGISTRY and seen and wanted:
            keys = [k for k in (registry_columns or wanted) if seen.get(k) != wanted.get(k)]
            if keys:
                lines.append(f"{name}: the latest row differs in " + "; ".join(
                    f"{k} ({seen.get(k)!r}, expected {wanted.get(k)!r})" for k in keys))
        elif seen != wanted:
            lines.append(f"{name}: {seen or 'absent'}; expected {wanted or 'absent'}")
    return lines
