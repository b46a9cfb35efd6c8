"""JUnit XML: every run writes artifacts/reports/<run_id>.junit.xml, a test case per check and
per stage, so CI shows the gate as tests and is never green on a run that did not pass.

The file is read with xml.etree and held to the structure CI tools (Jenkins' JUnit schema,
GitLab, the GitHub JUnit actions) rely on: <testsuites> of <testsuite>s of <testcase>s, each
suite's tests/failures/errors/skipped equal to its test cases, the root's the sums, times as
decimals, timestamps as ISO 8601. Expected counts are worked out by hand from each test's
CSV and expectations (line 1 is the header, so the Nth record is on line N + 1).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from scripts.run import EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, EXIT_VALIDATION_FAILED, STAGES, run_pipeline
from tests.helpers import HEADER

# The checks every run of the default model has, whatever the expectations say (README:
# required columns, the types of order_ts and amount, non_null of order_id and order_ts,
# unique of order_id): 5 + 2 + 2 + 1.
IMPLICIT = {"required_columns.order_id", "required_columns.customer_id", "required_columns.order_ts",
            "required_columns.amount", "required_columns.status", "types.order_ts", "types.amount",
            "non_null.order_id", "non_null.order_ts", "unique.order_id"}
# line 3: a negative amount (ranges.amount, severity warn: 1 of 4);
# line 4: a status outside the list, with a control character and XML's own specials in it
# (allowed_values.status: 1 of 4, fails)
ODD_STATUS = "sh\x01pped <&> ]]>"
MIXED = HEADER + (
    "O1,C1,2024-01-01 10:00:00,10.00,completed\n"
    "O2,C2,2024-01-02 10:00:00,-5.00,completed\n"
    f"O3,C3,2024-01-03 10:00:00,30.00,{ODD_STATUS}\n"
    "O4,C4,2024-01-04 10:00:00,40.00,completed\n"
)
MIXED_RULES = {"allowed_values": {"status": ["completed"]}, "ranges": {"amount": {"min": 0, "severity": "warn"}}}
TIME = re.compile(r"^\d+(\.\d+)?$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")  # the JUnit schemas' form: no offset


def junit(project, run_id: str) -> ET.Element:
    """The run's JUnit file, parsed, after checking the structure CI tools rely on."""
    path = project.root / "artifacts" / "reports" / f"{run_id}.junit.xml"
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("name") == "raw-to-ready"
    assert set(root.attrib) <= {"name", "tests", "failures", "errors", "time"}  # what the schema allows there
    suites = list(root)
    assert suites and all(s.tag == "testsuite" for s in suites)
    for suite in suites:
        cases = suite.findall("testcase")
        assert {child.tag for child in suite} <= {"properties", "testcase", "system-out", "system-err"}
        assert suite.get("tests") == str(len(cases))
        for kind, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert suite.get(key) == str(sum(c.find(kind) is not None for c in cases)), (suite.get("name"), key)
        assert TIME.match(suite.get("time")) and TIMESTAMP.match(suite.get("timestamp"))
        for case in cases:
            assert case.get("name") and case.get("classname") == suite.get("name") and TIME.match(case.get("time"))
            outcomes = [child for child in case if child.tag in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1 and all(o.get("message") is not None for o in outcomes)
        names = [c.get("name") for c in cases]
        assert len(names) == len(set(names))  # CI keys a test's history by classname and name
    for key in ("tests", "failures", "errors"):
        assert root.get(key) == str(sum(int(s.get(key)) for s in suites))
    assert TIME.match(root.get("time"))
    return root


def suite(root: ET.Element, name: str) -> ET.Element:
    [found] = [s for s in root if s.get("name") == f"raw-to-ready.{name}"]
    return found


def outcomes(found: ET.Element) -> dict[str, str]:
    """test case name -> failure, error or passed."""
    result = {}
    for case in found.findall("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        result[case.get("name")] = kinds[0] if kinds else "passed"
    return result


def test_checks_are_test_cases_and_failures_match_the_json_report(project, db_url):
    project.write_csv("orders.csv", MIXED)
    code, report = run_pipeline(project.write_config(expectations=MIXED_RULES), db_url)
    assert code == EXIT_VALIDATION_FAILED
    root = junit(project, report["run_id"])
    saved = json.loads((project.root / "artifacts" / "reports" / f"{report['run_id']}.json").read_text())

    records = suite(root, "records")
    expected = {name: "passed" for name in IMPLICIT} | {"ranges.amount": "passed", "allowed_values.status": "failure"}
    assert outcomes(records) == expected  # hand count: 12 checks, 1 failure, the warning passes
    assert (records.get("tests"), records.get("failures"), records.get("errors"), records.get("skipped")) == \
        ("12", "1", "0", "0")
    # ... and the JSON report agrees
    assert int(records.get("tests")) == len(saved["checks"])
    assert int(records.get("failures")) == sum(c["status"] == "fail" for c in saved["checks"])

    # the run: the stages that ran; validate stopped it (the gate)
    run = suite(root, "run")
    assert outcomes(run) == {"migrate": "passed", "ingest": "passed", "validate": "failure"}
    assert "1 check(s) failed" in run.find("testcase[@name='validate']/failure").get("message")
    props = {p.get("name"): p.get("value") for p in run.iter("property")}
    assert (props["run_id"], props["status"], props["exit_code"]) == (report["run_id"], "failed", "1")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("15", "2", "0")

    # the failure carries the message, the counts and the sample (file:line value), the
    # control character escaped and XML's specials intact
    failure = records.find("testcase[@name='allowed_values.status']/failure")
    assert failure.get("type") == "allowed_values"
    assert failure.get("message").endswith(": 1 of 4 records (25.0 %)")
    assert 'data/raw/orders.csv:4 "sh\\u0001pped <&> ]]>"' in failure.text
    # the warning: passed, with the warning and its sample in system-out
    warning = records.find("testcase[@name='ranges.amount']")
    assert warning.find("system-out").text.startswith("WARNING: ")
    assert 'data/raw/orders.csv:3 "-5.00"' in warning.find("system-out").text
    # a suite's time is its test cases' (the stages' seconds for the run)
    stage_seconds = sum(s["seconds"] for s in saved["stages"])
    assert abs(float(run.get("time")) - stage_seconds) < 0.01
    assert run.get("timestamp") == saved["started_at"][:19]  # UTC, to the second


def test_a_passing_run_is_all_green_and_quarantine_passes_with_output(project, db_url):
    # line 3 has no customer: quarantined (1 of 3), the run goes on and passes
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01 10:00:00,10.00,completed\n"
                      "O2,,2024-01-02 10:00:00,20.00,completed\nO3,C3,2024-01-03 10:00:00,30.00,completed\n")
    rules = {"non_null": [{"column": "customer_id", "action": "quarantine"}]}
    code, report = run_pipeline(project.write_config(expectations=rules), db_url)
    assert code == EXIT_PASSED
    root = junit(project, report["run_id"])
    assert outcomes(suite(root, "run")) == {stage: "passed" for stage in STAGES}  # every stage ran
    records = suite(root, "records")
    assert outcomes(records) == {name: "passed" for name in IMPLICIT | {"non_null.customer_id"}}
    quarantined = records.find("testcase[@name='non_null.customer_id']/system-out").text
    assert quarantined.startswith("QUARANTINED: ") and "data/raw/orders.csv:3" in quarantined
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    assert int(root.get("tests")) == len(STAGES) + len(report["checks"])  # a test case per stage and per check


def test_warn_error_makes_a_warning_run_fail_in_junit_too(project, db_url):
    """--warn-error: the warnings failed the gate, so the run is not green in CI."""
    project.write_csv("orders.csv", MIXED.replace(ODD_STATUS, "completed"))
    code, report = run_pipeline(project.write_config(expectations=MIXED_RULES), db_url, warn_error=True)
    assert code == EXIT_VALIDATION_FAILED
    root = junit(project, report["run_id"])
    assert outcomes(suite(root, "run"))["validate"] == "failure"
    assert "warned (--warn-error)" in suite(root, "run").find("testcase[@name='validate']/failure").get("message")
    assert int(root.get("failures")) >= 1


def test_a_stage_error_is_an_error_test_case(project, db_url):
    """Bytes that are not UTF-8 stop the ingest stage (exit 3): an <error> on that stage."""
    project.write_csv("orders.csv", (HEADER + "O1,C1,2024-01-01 10:00:00,10.00,compl\xe9ted\n").encode("latin-1"))
    code, report = run_pipeline(project.write_config(), db_url)
    assert code == EXIT_RUNTIME
    root = junit(project, report["run_id"])
    run = suite(root, "run")
    assert outcomes(run) == {"migrate": "passed", "ingest": "error"}
    error = run.find("testcase[@name='ingest']/error")
    assert "stage ingest stopped" in error.text and "orders.csv" in error.text
    assert (root.get("failures"), root.get("errors")) == ("0", "1")
    assert [s.get("name") for s in root] == ["raw-to-ready.run"]  # no check ran


def test_a_bad_config_is_an_error_test_case_and_odd_characters_stay_well_formed(project, db_url):
    """A run that stops before any stage (exit 2) still fails in CI: an <error> in the test
    case `run`. The unknown key holds a control character, which XML 1.0 cannot: escaped."""
    (project.root / "configs" / "bad.yaml").write_text('sources: []\n"feat\\x01ures <&>": {}\n')
    code, report = run_pipeline("configs/bad.yaml", db_url)
    assert code == EXIT_USAGE and "feat\x01ures <&>" in report["errors"][0]
    root = junit(project, report["run_id"])
    run = suite(root, "run")
    assert outcomes(run) == {"run": "error"}
    error = run.find("testcase[@name='run']/error")
    assert error.get("message").startswith("configs/bad.yaml: feat\\x01ures <&>: unknown key")
    assert error.get("type") == "exit 2"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "1")


def test_write_junit_escapes_every_character_xml_cannot_hold(tmp_path: Path):
    """No database here: the writer alone, fed every C0 control character, a lone surrogate
    and a C1 one in a message and a sample, writes a file an XML parser reads back."""
    odd = "".join(chr(c) for c in range(32)) + "\ud800\x85\ufffe end"
    check: dict[str, Any] = {
        "id": f"matches.{odd}", "level": "records", "column": "x", "rule": "matches", "severity": "error",
        "action": "fail", "status": "fail", "failing_count": 1, "failing_percent": 100.0, "row_count": 1,
        "message": odd, "error_if": ">0", "warn_if": None,
        "samples": [{"file_path": f"data/{odd}.csv", "line_number": 2, "value": odd}],
    }
    report = {"run_id": "r", "status": "failed", "exit_code": 1, "errors": [odd], "stages": [], "checks": [check],
              "started_at": "2024-01-01T00:00:00+00:00", "finished_at": "2024-01-01T00:00:01+00:00"}
    from scripts.reports import junit as junit_mod

    path = junit_mod.write_junit(report, tmp_path / "r.junit.xml")
    root = ET.parse(path).getroot()
    failure = root.find(".//testcase/failure")
    assert "\\x01" in failure.get("message") and "\\ud800" in failure.get("message") and "\\ufffe" in failure.text
    assert "\t" in failure.text and "\x85" in failure.text  # legal in XML 1.0: kept
    # status failed with no stage to blame: the test case `run` fails too
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "2", "0")
