"""Crash and concurrency safety: a runner killed inside a stage, two runs started together,
the server stopping in mid-stage.

The runner is a child process (`python -m scripts.run`, DATABASE_URL set), so SIGKILL is
real. The input is 120,000 generated orders and the config has labels, so every stage does
work: a year of orders in a first file (the base run, complete) and the next month in a
second file (the run that is interrupted, whose data stages take 0.25-0.7 s each).
"Inside a stage" means: its "[<stage>] running ..." line was printed and its session
(application_name 'raw-to-ready <run_id>') is running a statement in a transaction that
has written something; afterwards each test checks that the stage never printed its "ok"
line and was never recorded in meta.run_stages, while every earlier stage was.

States are compared by content (tests/runner/crash_helpers.py): stg.orders (order_id,
customer_id, order_at, amount, status), feats.customer_features, feats.customer_labels,
meta.dataset_splits (customer_id, feature_time, split), feats.training_set and the latest
meta.feature_registry row, without run ids, bookkeeping timestamps or version counters,
each read by its name with SELECT only.

What is proven:
- test_a_run_killed_inside_a_stage_reruns_to_the_state_of_an_uninterrupted_run: for each
  data stage, after a run killed (SIGKILL) inside it, the next run, started at once, does
  not fail on the dead session's lock (it gets it at once, or within 5 s), exits 0 and
  leaves exactly the state (and feature_version) of one uninterrupted run of the same
  input on a fresh database.
- test_nothing_half_written_is_visible_after_a_kill_inside_a_stage: between the kill and
  the next run, a fresh session sees exactly the previous complete run's features, splits,
  training set and latest registry row: what a run writes stays invisible until the
  registry stage publishes it.
- test_two_runs_started_together_complete_in_turn_with_the_state_of_one_run: two runners
  started at once on a fresh database both exit 0; exactly one says it waits for the lock,
  naming the other run; the first finished before the second started; the state is one
  run's.
- test_the_server_stopping_inside_a_stage_ends_the_run_with_exit_3, ..._names_the_stage and
  test_after_the_server_stopped_inside_a_stage_the_next_run_completes: a server of the
  module's own is stopped (pg_ctl stop, fast mode) while a first run is inside ingest (the
  client streaming COPY) or features (SQL files): the run exits 3 with an error about the
  connection on stderr, no traceback, and nothing served (features, splits, training set,
  registry row); after a restart the next run exits 0 with the state of an uninterrupted
  run; stderr names the stage.

Not caught inside: migrate (schema only; no "running" line) and registry (one INSERT of
about 0.05 s: too quick to catch reliably).
"""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.db import server as embedded
from scripts.run import EXIT_RUNTIME, STAGES
from tests.runner.crash_helpers import (
    BASE_CONFIG, FULL_CONFIG, REGISTRY, Databases, Runner, State, differences, published_state,
    run_to_completion, stage_line, wait_inside_stage, write_project,
)
from tests.helpers import query

KILL_STAGES = [stage for stage in STAGES if stage not in ("migrate", "registry")]
# What a consumer reads of a run: it must change all at once, with the registry row.
SERVED = ("feats.customer_features", "meta.dataset_splits", "feats.training_set", REGISTRY)

SERVER_STOP_STAGES = ["ingest", "features"]  # the client streaming COPY; a stage of SQL files
# Two runs' final states: the tables' content and the registry's latest feature_version
# (its other columns are what that version is derived from, or restate the tables).
FINAL = ("feature_version",)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    write_project(root)
    return root


@pytest.fixture(scope="module")
def databases(pg_admin_url: str) -> Iterator[Databases]:
    dbs = Databases(pg_admin_url)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="module")
def base_db(project_root: Path, databases: Databases) -> str:
    """A database after one complete run on the base file: each kill scenario runs on a copy."""
    url = databases.create()
    run_to_completion(project_root, BASE_CONFIG, url)
    return url


@pytest.fixture(scope="module")
def base_state(base_db: str) -> State:
    return published_state(base_db)


@pytest.fixture(scope="module")
def reference_state(project_root: Path, databases: Databases) -> State:
    """One uninterrupted run of both files on a fresh database."""
    url = databases.create()
    run_to_completion(project_root, FULL_CONFIG, url)
    state = published_state(url)
    databases.drop(url)
    return state


@dataclass
class KilledRun:
    stage: str
    statement: str  # the start of the statement the kill interrupted
    killed: Runner
    recorded: dict[str, str]  # meta.run_stages of the killed run: stage -> status
    after_kill: State  # what a fresh session sees between the kill and the next run
    rerun: Runner
    rerun_code: int
    final: State


@pytest.fixture(scope="module")
def killed_run(project_root: Path, databases: Databases, base_db: str) -> Callable[[str], KilledRun]:
    """Per stage, once for the module: on a copy of the base database, run both files, kill
    the runner inside the stage, look, and run again to the end."""
    done: dict[str, KilledRun] = {}

    def scenario(stage: str) -> KilledRun:
        if stage in done:
            return done[stage]
        url = databases.copy_of(base_db)
        killed = Runner(project_root, FULL_CONFIG, url)
        try:
            statement = wait_inside_stage(killed, url, stage)
            killed.kill()
        finally:
            killed.close()
        after_kill = published_state(url)
        recorded = dict(query(url, "SELECT stage, status FROM meta.run_stages WHERE run_id = %s", (killed.run_id,)))
        rerun = Runner(project_root, FULL_CONFIG, url)  # at once: the dead session may hold the lock
        try:
            rerun_code = rerun.wait()
        finally:
            rerun.close()
        done[stage] = KilledRun(stage, statement, killed, recorded, after_kill, rerun, rerun_code,
                                published_state(url))
        databases.drop(url)
        return done[stage]

    return scenario


# --- a runner killed inside a stage ---------------------------------------------------------


@pytest.mark.parametrize("stage", KILL_STAGES)
def test_a_run_killed_inside_a_stage_reruns_to_the_state_of_an_uninterrupted_run(
    killed_run: Callable[[str], KilledRun], reference_state: State, stage: str
) -> None:
    run = killed_run(stage)
    # the kill landed inside the stage: every earlier stage ended, this one never did
    assert run.killed.proc.returncode == -signal.SIGKILL
    assert not run.killed.find(stage_line(stage, "ok")), f"killed after {stage} ended:\n{run.killed.output}"
    earlier = STAGES[: STAGES.index(stage)]
    assert run.recorded == dict.fromkeys(earlier, "ok"), f"killed in: {run.statement}"
    # the next run, started at once, does not fail on the dead session's lock: it waits
    # briefly if at all (here the session is usually gone by then; tests/runner/test_run_lock.py
    # covers the wait itself)
    assert run.rerun_code == 0, f"{run.rerun.output}\n{run.rerun.stderr}"
    if run.rerun.find("waiting up to"):
        waited = re.search(r"got the pipeline lock after ([\d.]+) s", run.rerun.output)
        assert waited and float(waited.group(1)) < 5, run.rerun.output
    # and leaves what an uninterrupted run leaves
    assert not (mismatched := differences(run.final, reference_state, FINAL)), "\n".join(mismatched)


@pytest.mark.parametrize("stage", KILL_STAGES)
def test_nothing_half_written_is_visible_after_a_kill_inside_a_stage(
    killed_run: Callable[[str], KilledRun], base_state: State, stage: str
) -> None:
    run = killed_run(stage)
    seen = {name: run.after_kill[name] for name in SERVED}
    expected = {name: base_state[name] for name in SERVED}
    assert expected[REGISTRY] is not None and all(expected.values())  # the base run published all of it
    mismatched = differences(seen, expected)
    assert not mismatched, f"after a kill inside {stage}, a fresh session sees a mix of runs:\n" + "\n".join(mismatched)


# --- two runs started together --------------------------------------------------------------


def test_two_runs_started_together_complete_in_turn_with_the_state_of_one_run(
    project_root: Path, db_url: str, reference_state: State
) -> None:
    runners = [Runner(project_root, FULL_CONFIG, db_url) for _ in range(2)]
    try:
        codes = [runner.wait() for runner in runners]
    finally:
        for runner in runners:
            runner.close()
    assert codes == [0, 0], "\n\n".join(runner.output + runner.stderr for runner in runners)
    # one waited for the other, naming it, then got the lock
    waiting = [runner for runner in runners if runner.find(r"^waiting up to 600 s for the pipeline lock")]
    assert len(waiting) == 1, "\n\n".join(runner.output for runner in runners)
    second = waiting[0]
    first = runners[1 - runners.index(second)]
    assert first.application_name in second.find("^waiting up to")
    assert second.find(r"^  got the pipeline lock after")
    # in turn: the second run started after the first had finished
    spans = {run_id: (started, finished)
             for run_id, started, finished in query(db_url, "SELECT run_id, started_at, finished_at FROM meta.runs")}
    assert spans[first.run_id][1] <= spans[second.run_id][0]
    assert second.find(r"orders_later\.csv: already ingested")
    assert not (mismatched := differences(published_state(db_url), reference_state, FINAL)), "\n".join(mismatched)


# --- the server stopping in mid-stage -------------------------------------------------------


@dataclass
class StoppedRun:
    stage: str
    runner: Runner
    code: int
    after_restart: State
    rerun: Runner
    rerun_code: int
    final: State


@pytest.fixture(scope="module")
def own_server() -> Iterator[tuple[Path, str]]:
    """An embedded server of this module's own, to stop and start: never the session's."""
    base = Path(tempfile.mkdtemp(prefix="r2r-stop-"))  # short: the socket lives in pgdata
    pgdata = base / "pgdata"
    try:
        yield pgdata, embedded.start_server(pgdata, cleanup_mode="delete")
    finally:
        try:
            embedded.stop_server(pgdata)
        except Exception:  # noqa: BLE001 - a failed start leaves nothing to stop
            pass
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server_stopped_run(project_root: Path, own_server: tuple[Path, str]) -> Callable[[str], StoppedRun]:
    """Per stage, once for the module: on a fresh database of the module's own server, a
    first run on the base file; the server stopped while the run is inside the stage and
    started again; then the next run."""
    pgdata, admin_url = own_server
    done: dict[str, StoppedRun] = {}

    def scenario(stage: str) -> StoppedRun:
        if stage in done:
            return done[stage]
        url = embedded.ensure_database(admin_url, f"r2r_stop_{stage}")
        runner = Runner(project_root, BASE_CONFIG, url)
        try:
            wait_inside_stage(runner, url, stage)
            embedded.stop_server(pgdata)  # pg_ctl stop: fast mode, its default
            code = runner.wait()
        finally:
            runner.close()
            embedded.start_server(pgdata, cleanup_mode="delete")
        after_restart = published_state(url)
        rerun = Runner(project_root, BASE_CONFIG, url)
        try:
            rerun_code = rerun.wait()
        finally:
            rerun.close()
        done[stage] = StoppedRun(stage, runner, code, after_restart, rerun, rerun_code, published_state(url))
        return done[stage]

    return scenario


@pytest.mark.parametrize("stage", SERVER_STOP_STAGES)
def test_the_server_stopping_inside_a_stage_ends_the_run_with_exit_3(
    server_stopped_run: Callable[[str], StoppedRun], stage: str
) -> None:
    run = server_stopped_run(stage)
    assert run.code == EXIT_RUNTIME, run.runner.output
    assert run.runner.find(stage_line(stage, "error")), run.runner.output
    assert re.search(r"^error: .*(connection|server)", run.runner.stderr, re.M), run.runner.stderr
    assert "Traceback" not in run.runner.stderr
    # nothing of this first run is served: the stage's transaction was rolled back
    for name in SERVED:
        assert run.after_restart[name] is None or getattr(run.after_restart[name], "rows", None) == 0, name


@pytest.mark.parametrize("stage", SERVER_STOP_STAGES)
def test_the_server_stopping_inside_a_stage_names_the_stage(
    server_stopped_run: Callable[[str], StoppedRun], stage: str
) -> None:
    stderr = server_stopped_run(stage).runner.stderr
    assert re.search(rf"^error: stage {stage} stopped: ", stderr, re.M), stderr
    assert "the connection to PostgreSQL was lost" in stderr, stderr


@pytest.mark.parametrize("stage", SERVER_STOP_STAGES)
def test_after_the_server_stopped_inside_a_stage_the_next_run_completes(
    server_stopped_run: Callable[[str], StoppedRun], base_state: State, stage: str
) -> None:
    run = server_stopped_run(stage)
    assert run.rerun_code == 0, f"{run.rerun.output}\n{run.rerun.stderr}"
    assert not (mismatched := differences(run.final, base_state, FINAL)), "\n".join(mismatched)
