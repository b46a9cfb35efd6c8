"""docs/tables.md is the catalogue of what the pipeline keeps: it holds together with a real run.

The sample pipeline (configs/pipeline.yaml on data/raw/orders.csv) runs into a fresh database;
then every table, view and function in raw, stg, feats, meta and work is listed with the right
kind (and nothing is listed that the database does not hold), and every file the catalogue
names exists and says so: a stage file that makes or writes an object names it on its
`-- writes:` line, a migration that makes one creates it, and every other file (a reader, the
Python writers) mentions it, in the SQL as the run rendered it for a stage file.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from scripts.db import server
from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import REPO_ROOT, query
from tests.unit.test_sql_layout import declared_writes, header, header_entry

DOC = REPO_ROOT / "docs" / "tables.md"
SCHEMAS = ("raw", "stg", "feats", "meta", "work")
FILE = re.compile(r"\b(?:sql|scripts)/[\w/.-]+\.(?:sql|py)\b")
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def catalogue(text: str) -> dict[str, dict[str, str]]:
    """{name: {kind, made, written, read}} for each row of a schema's table in the page."""
    entries: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if not match or match.group(1).split(".")[0] not in SCHEMAS:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"docs/tables.md: a row of five cells: {line}"
        name, kind, made, written, read = cells
        assert match.group(1) not in entries, f"docs/tables.md lists {match.group(1)} twice"
        entries[match.group(1)] = {"kind": kind, "made": made, "written": written, "read": read}
    return entries


def kinds_in_database(db_url: str) -> dict[str, str]:
    """{schema.name: kind} of every relation and function in the pipeline's schemas."""
    relations = query(db_url, """
        SELECT n.nspname || '.' || c.relname,
               CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                   ELSE CASE c.relpersistence WHEN 'u' THEN 'scratch table' ELSE 'table' END END
        FROM pg_class AS c INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid
        WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition""",
                      (list(SCHEMAS),))
    functions = query(db_url, """
        SELECT n.nspname || '.' || p.proname,
               CASE WHEN p.prorettype = 'trigger'::regtype THEN 'trigger function' ELSE 'function' END
        FROM pg_proc AS p INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
        WHERE n.nspname = ANY(%s)""", (list(SCHEMAS),))
    return dict(relations + functions)


def stage_file_writes(path: Path) -> set[str]:
    entry = header_entry(header(path.read_text(encoding="utf-8")), "writes")
    return declared_writes(entry) if entry is not None else set()


def file_problems(name: str, entry: dict[str, str], rendered: Path) -> list[str]:
    """What is wrong with the files named by one catalogue entry (`rendered`: the run's SQL)."""
    problems = []
    for column in ("made", "written", "read"):
        for file in FILE.findall(entry[column]):
            path = REPO_ROOT / file
            if not path.is_file():
                problems.append(f"{name}: {column} by {file}, which does not exist")
                continue
            stage_file = re.match(r"^sql/\d\d_", file) is not None
            if stage_file and column in ("made", "written"):
                if name not in stage_file_writes(path):
                    problems.append(f"{name}: {column} by {file}, whose -- writes: line does not name it")
            elif file.startswith("sql/migrations/") and column == "made":
                created = re.search(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+)?(?:TABLE|VIEW|FUNCTION)\s+"
                                    r"(?:IF\s+NOT\s+EXISTS\s+)?" + re.escape(name) + r"\b",
                                    path.read_text(encoding="utf-8"), re.IGNORECASE)
                if not created:
                    problems.append(f"{name}: made by {file}, which does not create it")
            else:
                # a stage file as written, or as the run rendered it (its macros' SQL included)
                texts = [path.read_text(encoding="utf-8")]
                if stage_file and (rendered / path.name).is_file():
                    texts.append((rendered / path.name).read_text(encoding="utf-8"))
                if not any(name in text for text in texts):
                    problems.append(f"{name}: {column} by {file}, which does not mention it")
    return problems


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> Iterator[tuple[str, Path]]:
    """The sample pipeline run once into a fresh database: (its URL, the run's rendered SQL)."""
    root = tmp_path_factory.mktemp("sample")
    shutil.copytree(REPO_ROOT / "configs", root / "configs")
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "data" / "raw" / "orders.csv", root / "data" / "raw" / "orders.csv")
    name = f"r2r_tables_doc_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server.with_database(pg_admin_url, name)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        code, report = run_pipeline("configs/pipeline.yaml", url)
    assert code == EXIT_PASSED, report["errors"]
    yield url, root / "artifacts" / "runs" / report["run_id"] / "sql"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_every_table_view_and_function_is_listed_with_its_kind(sample_run):
    db_url, _ = sample_run
    found = kinds_in_database(db_url)
    listed = {name: entry["kind"] for name, entry in catalogue(DOC.read_text(encoding="utf-8")).items()}
    assert {name for name, kind in found.items() if kind == "view"} >= {"feats.training_set", "meta.dataset_splits"}, \
        "the sample run publishes its views (else this test would prove little)"
    assert sorted(set(found) - set(listed)) == [], "in the database but not in docs/tables.md"
    assert sorted(set(listed) - set(found)) == [], "in docs/tables.md but not in the database"
    wrong = {name: (listed[name], kind) for name, kind in found.items() if listed[name] != kind}
    assert wrong == {}, "kind in docs/tables.md, kind in the database"


def test_every_file_named_exists_and_names_the_object(sample_run):
    _, rendered = sample_run
    entries = catalogue(DOC.read_text(encoding="utf-8"))
    problems = [problem for name, entry in entries.items() for problem in file_problems(name, entry, rendered)]
    assert not problems, "\n".join(problems)
    assert all(FILE.findall(entry["made"]) for entry in entries.values()), "every object has a file that makes it"


def test_the_checks_fail_on_a_wrong_entry(sample_run):
    """A writer whose header does not name the table, a migration that does not create it, a
    reader that never mentions it, a missing file: each is reported."""
    _, rendered = sample_run
    entry = {"kind": "table", "made": "sql/migrations/V003__create_stg_orders.sql",
             "written": "sql/40_stage/041_stg_order_changes.sql, sql/99_nowhere/099_missing.sql",
             "read": "scripts/serve/retrieve.py"}
    problems = file_problems("stg.model_orders", entry, rendered)
    assert problems == [
        "stg.model_orders: made by sql/migrations/V003__create_stg_orders.sql, which does not create it",
        "stg.model_orders: written by sql/40_stage/041_stg_order_changes.sql, whose -- writes: line does not name it",
        "stg.model_orders: written by sql/99_nowhere/099_missing.sql, which does not exist",
        "stg.model_orders: read by scripts/serve/retrieve.py, which does not mention it",
    ]
    assert catalogue("| `meta.runs` | view | x | | |")["meta.runs"]["kind"] == "view"
