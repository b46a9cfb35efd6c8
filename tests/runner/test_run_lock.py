"""One run per database: a second run waits for the lock, and a killed runner's lock is freed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psycopg

from scripts.db import locks
from scripts.run import EXIT_PASSED, EXIT_RUNTIME, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

ORDERS = HEADER + "".join(f"O{i},C{i % 7},2024-01-{1 + i % 28:02d} 10:00:00,{i}.00,completed\n" for i in range(200))


def test_a_second_run_waits_for_the_lock_and_then_runs(project, db_url, capsys):
    project.write_csv("orders.csv", ORDERS)
    config = project.write_config()
    holder = psycopg.connect(db_url, autocommit=True, application_name="raw-to-ready holder")
    holder.execute("SELECT pg_advisory_lock(%s)", (locks.RUN_LOCK_KEY,))
    result: dict = {}
    waiting = threading.Thread(target=lambda: result.update(zip(("code", "report"), run_pipeline(config, db_url))))
    waiting.start()
    # the waiting run shows up as a session waiting on the advisory lock
    for _ in range(100):
        if query(db_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the second run never waited for the lock")
    assert waiting.is_alive()
    holder.close()  # the lock ends with its session
    waiting.join(timeout=60)
    assert result["code"] == EXIT_PASSED
    out = capsys.readouterr().out
    assert "waiting up to 600 s for the pipeline lock, held by pid" in out and "raw-to-ready holder" in out
    assert "got the pipeline lock after" in out
    assert query(db_url, "SELECT count(*) FROM stg.orders") == [(200,)]


def test_a_run_gives_up_after_its_lock_timeout(project, db_url):
    project.write_csv("orders.csv", ORDERS)
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (locks.RUN_LOCK_KEY,))
        started = time.monotonic()
        code, report = run_pipeline(project.write_config(), db_url, lock_timeout=1)
        waited = time.monotonic() - started
    assert code == EXIT_RUNTIME and waited >= 1
    assert report["errors"][0].startswith("gave up after 1 s waiting for the pipeline lock, held by pid")


def test_two_runs_started_together_both_complete_in_turn(project, db_url):
    project.write_csv("orders.csv", ORDERS)
    config = project.write_config()
    results: list = []
    runs = [threading.Thread(target=lambda: results.append(run_pipeline(config, db_url))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert [code for code, _ in results] == [EXIT_PASSED, EXIT_PASSED]
    # the final state is one run's: the same version, every order once
    assert len({report["feature_version"] for _, report in results}) == 1
    assert query(db_url, "SELECT count(*), count(DISTINCT order_id) FROM stg.orders") == [(200, 200)]
    assert query(db_url, "SELECT count(*) FROM raw.ingested_files") == [(1,)]


def test_a_killed_runners_session_ends_and_frees_the_lock(project, db_url):
    """A runner killed (SIGKILL) in the middle of a statement: the server notices the dead
    client within a second (client_connection_check_interval), so its lock goes with it and
    the next run gets it at once instead of waiting for the statement to end."""
    script = textwrap.dedent(f"""
        from scripts.db import locks
        from scripts.run import connect
        conn = connect({db_url!r}, "doomed")
        locks.lock_pipeline(conn, 0)
        conn.execute("SELECT pg_sleep(600)")  # a long statement, as a stage's
    """)
    runner = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        for _ in range(200):
            if query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'raw-to-ready doomed'"
                             " AND query LIKE 'SELECT pg_sleep%%'")[0][0]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the doomed runner never started its statement")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        project.write_csv("orders.csv", ORDERS)
        started = time.monotonic()
        # without the check the session would sleep on, holding the lock, for 600 s
        code, _ = run_pipeline(project.write_config(), db_url, lock_timeout=30)
        assert code == EXIT_PASSED and time.monotonic() - started < 30
        assert query(db_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'raw-to-ready doomed'") \
            == [(0,)]
    finally:
        if runner.poll() is None:
            runner.kill()
