"""What the pipeline publishes is unchanged: content checksums equal the recorded ones.

Proves that the code under test computes, in four scenarios run through the CLI
(tests/acceptance/published_checksums.py), exactly the content recorded in
tests/acceptance/fixtures/published_checksums.json. The fixture was recorded at commit 1dce9d4 (the code
before the restructure into subpackages, per-stage sql/ folders and macros) and recorded again
after it, when the only differences were bookkeeping, none of them published data: one more
migration (V017: meta.schema_migrations, the migrate stage's count, and the history tables now
exist, empty, in a run stopped before the features), and the registry stage's count (the
version it registers, 1, rather than its largest statement's rows). It was recorded again
when staging gained order lines and attributes: for the sample, dirty and daily scenarios one
more migration (V018: meta.schema_migrations, the migrate stage's count) and two new tables,
empty (stg.order_lines, stg.model_lines), their feature, label and split rows unchanged; the
UCI scenario's content changed on purpose (its config now stages lines and the invoice's
country, and defines features over them; then its profile once more, when a share between 0
and 1 stopped being binned as whole numbers). It was recorded again when pipelines got names,
with bookkeeping differences only, in every scenario: one more migration (V019) and its table
(meta.pipeline, the owner), meta.runs' new pipeline and report columns, the stages' counts
(the rows each wrote to its table, with what it read beside them: meta.run_stages and the
report's stages), the report's pipeline and refresh (the published version), and the
sentences of passing checks (they now read as passes); no row of stg, feats or the published
meta tables changed. And once more when a full refresh came to run the labels beside the
features: the report's stages say so (the labels' "beside"), in the sample, UCI and daily
scenarios' first runs. And when a migration (V020, meta.setting_list) came: one more row of
meta.schema_migrations, and the migrate stage's count of them in meta.run_stages and the
report's stages, in every scenario; nothing else changed:
  - sample: configs/pipeline.yaml on data/raw/orders.csv;
  - dirty: configs/pipeline_dirty.yaml (the gate fails on purpose, exit 1): every check of the
    JSON report (ids, statuses, counts, percents, messages, samples), meta.validation_failures;
  - uci_online_retail: configs/uci_online_retail.yaml over every day of the real UCI lines kept
    in shared/ (UCI_DATA_DIR elsewhere), quarantine included (exit 0);
  - daily: the sample cut into quarterly files, a run on all but the last, then an incremental
    run on the same database adding it (history tables and *_versions views hold both versions).
Each scenario checksums every table and view of stg, feats and meta (the rows as text, sorted)
and each section of each run's report, leaving out only what differs between two runs of the
same code: run ids, wall-clock timestamps, durations and hashes of SQL or config text (the list,
with a reason per column, is EXCLUDED_COLUMNS in tests/acceptance/published_checksums.py).

Re-record the fixture ONLY when a change is meant to change published content (and say so in
the commit), never to make this test pass after a refactor. From the repository root, with URL
any PostgreSQL 16+ server where its user may create databases (e.g. the URL `make db-up` prints):

    .venv/bin/python -m tests.acceptance.published_checksums --database-url "$URL" --out tests/acceptance/fixtures/published_checksums.json
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.acceptance.published_checksums import SCENARIOS, run_scenario

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "published_checksums.json"
RECORDED: dict[str, dict[str, str]] = json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_fixture_covers_every_scenario() -> None:
    assert sorted(RECORDED) == sorted(SCENARIOS)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_published_content_unchanged(scenario: str, db_factory: Callable[[], str]) -> None:
    expected = RECORDED[scenario]
    found = run_scenario(scenario, db_factory())
    differ = [f"  {scenario}: {name}: recorded {expected.get(name, '(absent)')}, now {found.get(name, '(absent)')}"
              for name in sorted(set(expected) | set(found)) if expected.get(name) != found.get(name)]
    assert not differ, (f"published content of scenario {scenario!r} changed in {len(differ)} place(s):\n"
                        + "\n".join(differ))
