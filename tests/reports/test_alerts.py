"""Alerts: a failed or errored run (and, with on_warning, a warning one) POSTs its summary to a
webhook; delivery is bounded and never changes the run's outcome; the URL never shows.

The webhook is a real HTTP server on 127.0.0.1 (port 0) in a thread, started by each test,
that records what it receives. Expected counts are worked out by hand from each test's CSV
(line 1 is the header, so the Nth record is on line N + 1).
"""

from __future__ import annotations

import dataclasses

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from scripts.config.sections import Alerts
from scripts.reports import alerts
from scripts.run import EXIT_PASSED, EXIT_USAGE, EXIT_VALIDATION_FAILED, run_pipeline
from tests.helpers import HEADER

SECRET = "T0001/B0002/s3cr3tT0k3nXYZ"  # the part of a Slack-style URL that must never show
# five records: no customer on lines 3 and 5 (non_null.customer_id: 2 of 5, 40 %),
# a negative amount on line 4 (ranges.amount: 1 of 5, 20 %)
FAILING = HEADER + (
    "O1,C1,2024-01-01 10:00:00,10.00,completed\n"
    "O2,,2024-01-02 10:00:00,20.00,completed\n"
    "O3,C3,2024-01-03 10:00:00,-30.00,completed\n"
    "O4,,2024-01-04 10:00:00,40.00,completed\n"
    "O5,C5,2024-01-05 10:00:00,50.00,completed\n"
)
FAILING_RULES = {"non_null": ["customer_id"], "ranges": {"amount": {"min": 0}}}
# the same records with the amount rule as a warning and no customer rule: the run passes
# with one warning (ranges.amount, 1 of 5)
WARNING_RULES = {"ranges": {"amount": {"min": 0, "severity": "warn"}}}
GOOD = HEADER + "O1,C1,2024-01-01 10:00:00,10.00,completed\nO2,C2,2024-01-02 10:00:00,5.00,completed\n"


class Receiver:
    """A webhook on 127.0.0.1: records each request; answers with the next of ``statuses``
    (the last one repeats), or, with ``hang``, never answers until the test ends."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = [200]
        self.hang = False
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})
                if receiver.hang:
                    receiver.released.wait(60)  # far past any alert timeout
                    return
                status = receiver.statuses[min(len(receiver.requests), len(receiver.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/{SECRET}"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for name in ("NO_PROXY", "no_proxy"):  # a proxy in the environment must not take 127.0.0.1
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    server = Receiver()
    monkeypatch.setenv(alerts.ENV_VAR, server.url())
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_secret_nowhere(project, output: str) -> None:
    """The URL's token is in neither the console nor any file the run wrote."""
    assert SECRET not in output and "s3cr3t" not in output
    written = [p for p in (project.root / "artifacts").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".junit.xml") for p in written) and any(p.suffix == ".json" for p in written)
    for path in written:
        assert b"s3cr3t" not in path.read_bytes(), path


def saved_report(project, run_id: str) -> dict[str, Any]:
    return json.loads((project.root / "artifacts" / "reports" / f"{run_id}.json").read_text())


def test_a_failed_run_posts_its_summary_once(project, db_url, receiver, capsys):
    project.write_csv("orders.csv", FAILING)
    code, report = run_pipeline(project.write_config(expectations=FAILING_RULES), db_url)
    assert code == EXIT_VALIDATION_FAILED
    assert len(receiver.requests) == 1  # one POST, no retry after a 200
    request = receiver.requests[0]
    assert request["path"] == f"/services/{SECRET}"  # the whole URL was used, only never shown
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = receiver.bodies()[0]
    run_id = report["run_id"]
    assert (body["run_id"], body["status"], body["exit_code"]) == (run_id, "failed", EXIT_VALIDATION_FAILED)
    # hand-counted from FAILING
    assert {c["id"]: (c["failing_count"], c["row_count"], c["failing_percent"]) for c in body["failed_checks"]} == {
        "non_null.customer_id": (2, 5, 40.0), "ranges.amount": (1, 5, 20.0)}
    assert body["warned_checks"] == [] and body["quarantined_checks"] == []
    assert body["report_path"] == str((project.root / "artifacts" / "reports" / f"{run_id}.html").resolve())
    # a chat webhook shows `text`: the verdict, each failed check with its count, the report
    text = body["text"]
    assert f"run {run_id} failed (exit 1)" in text
    assert "non_null.customer_id: customer_id has null values (2 of 5 records, 40.0 %)" in text
    assert "ranges.amount" in text and body["report_path"] in text
    assert "samples" not in json.dumps(body)  # values from the data are not sent
    outcome = saved_report(project, run_id)["alerts"]
    assert outcome == {"configured": True, "webhook": f"http://127.0.0.1:{receiver.server.server_address[1]}/…",
                       "reason": "run failed", "sent": True, "attempts": 1, "http_status": 200}
    out = capsys.readouterr()
    assert f"alert: run failed: posted to {outcome['webhook']} (HTTP 200, attempt 1 of 3)" in out.out
    assert_secret_nowhere(project, out.out + out.err)


def test_an_errored_run_posts_too(project, db_url, receiver):
    """A run that could not even load its config (exit 2) still alerts, with the default
    settings and the URL from the environment."""
    (project.root / "configs" / "bad.yaml").write_text("sources: []\nfeaturs: {}\n")
    code, report = run_pipeline("configs/bad.yaml", db_url)
    assert code == EXIT_USAGE
    [body] = receiver.bodies()
    assert (body["status"], body["exit_code"], body["failed_checks"]) == ("error", EXIT_USAGE, [])
    assert len(body["errors"]) == 1 and body["errors"][0].startswith("configs/bad.yaml: featurs: unknown key")
    assert "error: configs/bad.yaml: featurs: unknown key" in body["text"]
    assert report["alerts"]["sent"] is True


def test_a_passing_run_posts_nothing(project, db_url, receiver):
    project.write_csv("orders.csv", GOOD)
    code, report = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_PASSED
    assert receiver.requests == []
    assert saved_report(project, report["run_id"])["alerts"]["skipped"] == "run passed"


def test_warnings_post_only_with_on_warning(project, db_url, receiver):
    project.write_csv("orders.csv", FAILING)
    quiet = project.write_config(expectations=WARNING_RULES)
    code, report = run_pipeline(quiet, db_url)
    assert code == EXIT_PASSED and [c["id"] for c in report["checks"] if c["status"] == "warn"] == ["ranges.amount"]
    assert receiver.requests == []
    assert "on_warning is false" in report["alerts"]["skipped"]

    loud = project.write_config(expectations=WARNING_RULES, name="loud.yaml", alerts={"on_warning": True})
    code, report = run_pipeline(loud, db_url, full_refresh=True)  # validates the same file again
    assert code == EXIT_PASSED
    [body] = receiver.bodies()
    assert (body["run_id"], body["status"], body["exit_code"]) == (report["run_id"], "passed", EXIT_PASSED)
    assert body["failed_checks"] == []
    assert [(c["id"], c["failing_count"]) for c in body["warned_checks"]] == [("ranges.amount", 1)]
    assert "1 check(s) warned" in body["text"]
    assert report["alerts"]["reason"] == "run warned"


@pytest.mark.parametrize(("statuses", "requests", "sent"), [
    pytest.param([500], 3, False, id="500-retried-to-the-limit"),
    pytest.param([503, 200], 2, True, id="503-then-200-sent-on-the-second"),
    pytest.param([429], 3, False, id="429-retried"),
    pytest.param([404], 1, False, id="404-not-retried"),
])
def test_a_failing_receiver_is_retried_a_bounded_number_of_times(project, db_url, receiver, capsys, statuses,
                                                                  requests, sent):
    receiver.statuses = statuses
    project.write_csv("orders.csv", FAILING)
    config = project.write_config(expectations=FAILING_RULES, alerts={"attempts": 3, "timeout_seconds": 2})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_VALIDATION_FAILED  # the alert never changes the run's exit code
    assert len(receiver.requests) == requests
    assert len({r["body"] for r in receiver.requests}) == 1  # each retry sends the same summary
    outcome = saved_report(project, report["run_id"])["alerts"]
    assert (outcome["sent"], outcome["attempts"], outcome["http_status"]) == (sent, requests, statuses[-1])
    out = capsys.readouterr().out
    if not sent:
        error = f"HTTP {statuses[-1]}" + (f" after {requests} attempts" if requests > 1 else "")
        assert outcome["error"] == error
        assert f"warning: alert not delivered to {outcome['webhook']}: {error}; the run's outcome is unchanged" in out
        junit = (project.root / "artifacts" / "reports" / f"{report['run_id']}.junit.xml").read_text()
        assert f"warning: alert not delivered to {outcome['webhook']}: {error}" in junit
    assert_secret_nowhere(project, out)


def test_a_receiver_that_never_answers_does_not_hang_the_run(project, db_url, receiver, capsys):
    receiver.hang = True
    project.write_csv("orders.csv", FAILING)
    config = project.write_config(expectations=FAILING_RULES, alerts={"attempts": 2, "timeout_seconds": 1})
    code, report = run_pipeline(config, db_url)
    returned = time.monotonic()
    assert code == EXIT_VALIDATION_FAILED
    assert len(receiver.requests) == 2  # each attempt reached the receiver and was given up
    outcome = report["alerts"]
    assert (outcome["sent"], outcome["attempts"]) == (False, 2)
    assert outcome["error"] == "no answer within 1 s after 2 attempts"
    # bounded: 2 attempts of 1 s and a 0.5 s backoff, then the reports; 20 s is generous
    assert returned - receiver.requests[0]["at"] < 20
    assert "warning: alert not delivered" in capsys.readouterr().out


def test_a_closed_port_does_not_fail_the_run(project, db_url, monkeypatch, capsys):
    monkeypatch.setenv(alerts.ENV_VAR, f"http://127.0.0.1:{closed_port()}/services/{SECRET}")
    project.write_csv("orders.csv", GOOD)
    config = project.write_config(expectations={"min_rows": 3})  # 2 records: the run fails
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    outcome = saved_report(project, report["run_id"])["alerts"]
    assert (outcome["sent"], outcome["attempts"], outcome["error"]) == (False, 3, "connection refused after 3 attempts")
    out = capsys.readouterr()
    assert "warning: alert not delivered" in out.out
    assert_secret_nowhere(project, out.out + out.err)


def test_the_environment_wins_over_the_config(project, db_url, receiver):
    project.write_csv("orders.csv", GOOD)
    config = project.write_config(expectations={"min_rows": 3},
                                  alerts={"webhook_url": f"http://127.0.0.1:{closed_port()}/from-config"})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    assert [r["path"] for r in receiver.requests] == [f"/services/{SECRET}"]


def test_the_config_url_is_used_without_the_environment(project, db_url, receiver, monkeypatch):
    monkeypatch.delenv(alerts.ENV_VAR)
    project.write_csv("orders.csv", GOOD)
    config = project.write_config(expectations={"min_rows": 3}, alerts={"webhook_url": receiver.url()})
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_VALIDATION_FAILED
    assert [r["path"] for r in receiver.requests] == [f"/services/{SECRET}"]
    assert SECRET not in json.dumps(report)


@pytest.mark.parametrize(("alerts_section", "key", "problem"), [
    ({"webhok_url": "x"}, "alerts.webhok_url", "unknown key"),
    ({"webhook_url": f"ftp://example.com/{SECRET}"}, "alerts.webhook_url", "must be an http:// or https:// URL"),
    ({"on_warning": "yes"}, "alerts.on_warning", "must be true or false"),
    ({"timeout_seconds": 0}, "alerts.timeout_seconds", "must be a number of seconds > 0"),
    ({"timeout_seconds": 600}, "alerts.timeout_seconds", "must be a number of seconds > 0 and <= 30, got 600"),
    ({"attempts": 0}, "alerts.attempts", "must be a whole number >= 1"),
    ({"attempts": 50}, "alerts.attempts", "must be at most 5"),
    ("everything", "alerts", "must be a mapping"),
])
def test_a_bad_alerts_section_is_refused_naming_file_and_key(project, db_url, monkeypatch, alerts_section, key,
                                                             problem):
    monkeypatch.delenv(alerts.ENV_VAR, raising=False)
    project.write_csv("orders.csv", GOOD)
    config = project.write_config(alerts=alerts_section)
    code, report = run_pipeline(config, db_url)
    assert code == EXIT_USAGE
    assert report["errors"][0].startswith(f"{config}: {key}: {problem}")
    assert SECRET not in report["errors"][0]  # a refused URL is not repeated either


def test_the_example_config_block_is_valid(project, db_url):
    """The commented-out `alerts:` block in configs/pipeline.yaml, uncommented, loads."""
    from scripts import config as config_mod
    from tests.helpers import REPO_ROOT

    lines = (REPO_ROOT / "configs" / "pipeline.yaml").read_text().splitlines()
    block = []
    for line in lines[lines.index("# alerts:"):]:
        if not line.startswith("#"):
            break
        block.append(line.removeprefix("# "))
    section = yaml.safe_load("\n".join(block))
    assert set(section["alerts"]) <= {field.name for field in dataclasses.fields(Alerts)}
    project.write_csv("orders.csv", GOOD)
    loaded = config_mod.load(project.write_config(alerts=section["alerts"]))
    assert loaded.alerts.webhook_url is None  # the example leaves the URL to ALERTS_WEBHOOK_URL
