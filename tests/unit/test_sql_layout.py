"""The layout of sql/ holds together (no database): the stage folders are the stages, each
stage file opens with a header that says what it writes, and no SQL file is long.

- The folders ``sql/NN_<stage>`` are exactly the stages of scripts/pipeline/stages.py, in order.
- Every stage file opens (after its Jinja imports) with a header comment holding the lines
  ``-- grain:``, ``-- requires:`` and ``-- writes:``.
- The ``writes:`` list equals what the file's rendered SQL writes: every schema-qualified
  table, view or function it creates, inserts into, updates, deletes from, truncates, alters,
  drops, comments on or distributes (Citus), over the bundled configs (configs/*.yaml: the
  sample, its Citus and dirty variants, the UCI export) and over both ways a file is
  ingested (every column, or the kept columns of sources[].columns). ``nothing`` when it
  writes none (temporary tables are not named: they die with the stage's transaction).
- No SQL file is longer than MAX_LINES.
- The file names a comment mentions (``60_splits/060_split_cutoffs.sql``,
  ``V010__versioned_publishing.sql``) exist.
The last test shows that the checks fail on files that break them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from scripts.config import load as load_config
from scripts.db import render
from scripts.ingest import copy
from scripts.pipeline.runner import describe_sources
from scripts.pipeline.stages import STAGES
from scripts.run import render_all
from tests.helpers import REPO_ROOT

SQL_DIR = REPO_ROOT / "sql"
MAX_LINES = 250
# Migrations are checksummed once applied and may never be edited (scripts/db/migrate.py):
# V011 was 266 lines long before this limit, so it stays as it is.
TOO_LONG_ALLOWED = {"migrations/V011__create_roles.sql"}
CONFIGS = sorted(path.name for path in (REPO_ROOT / "configs").glob("*.yaml")
                 if not path.name.endswith("_expectations.yaml") and path.name != "expectations.yaml")
HEADER_KEYS = ("grain", "requires", "writes")
NAME = r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)"
# What writes a schema-qualified object, in rendered SQL without its comments.
WRITE_PATTERNS = [re.compile(pattern, re.IGNORECASE) for pattern in (
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+|TEMPORARY\s+|TEMP\s+)?"
    r"(?:TABLE|VIEW|MATERIALIZED\s+VIEW|FUNCTION|PROCEDURE)\s+(?:IF\s+NOT\s+EXISTS\s+)?" + NAME,
    r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\w+\s+ON\s+(?:ONLY\s+)?" + NAME,
    r"\bINSERT\s+INTO\s+" + NAME,
    r"\bUPDATE\s+(?:ONLY\s+)?" + NAME,
    r"\bDELETE\s+FROM\s+(?:ONLY\s+)?" + NAME,
    r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?" + NAME,
    r"\bDROP\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW|FUNCTION|PROCEDURE)\s+(?:IF\s+EXISTS\s+)?" + NAME,
    r"\bCOMMENT\s+ON\s+(?:TABLE|VIEW|FUNCTION|COLUMN)\s+" + NAME,
    r"\bcreate_(?:distributed|reference)_table\(\s*'" + NAME + "'",
)]
TRUNCATE = re.compile(r"\bTRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?([^;]+)", re.IGNORECASE)
NOT_WRITTEN_SCHEMAS = {"pg_temp", "pg_catalog", "information_schema"}
# a file named in a comment: NN_stage/NNN_name.sql, NNN_name.sql or a migration
FILE_REFERENCE = re.compile(r"\b(?:(\d\d_[a-z]+)/)?(\d{3}_[a-z0-9_]+\.sql|V\d{3}__[A-Za-z0-9_]+\.sql)")


def stage_files() -> list[Path]:
    return sorted(SQL_DIR.glob("[0-9][0-9]_*/*.sql"))


def header(text: str) -> list[str]:
    """The file's opening comment lines, after its Jinja imports and Jinja comments."""
    lines = text.splitlines()
    while lines and (lines[0].startswith("{%- import") or lines[0].startswith("{% import") or not lines[0].strip()):
        lines.pop(0)
    opening = []
    for line in lines:
        if not line.startswith("--"):
            break
        opening.append(line)
    return opening


def header_entry(lines: list[str], key: str) -> str | None:
    """The text of ``-- <key>:`` and of its continuation lines (indented comment lines)."""
    for at, line in enumerate(lines):
        if line.startswith(f"-- {key}:"):
            parts = [line[len(f"-- {key}:"):]]
            for following in lines[at + 1:]:
                if not re.match(r"^--\s{2,}\S", following) or re.match(r"^-- [a-z]+:", following):
                    break
                parts.append(following[2:])
            return " ".join(part.strip() for part in parts)
    return None


def declared_writes(entry: str) -> set[str]:
    """The names of a ``writes:`` entry; ``nothing`` (with an optional note) is the empty set."""
    if re.match(r"^nothing\b", entry):
        return set()
    return {name.strip() for name in entry.split(",")}


def without_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def written_names(sql: str) -> set[str]:
    """Every schema-qualified object the rendered ``sql`` writes (see WRITE_PATTERNS)."""
    text = without_comments(sql)
    names = {match.group(1).lower() for pattern in WRITE_PATTERNS for match in pattern.finditer(text)}
    for match in TRUNCATE.finditer(text):
        names |= {name.lower() for name in re.findall(NAME, match.group(1))}
    return {name for name in names if name.split(".")[0] not in NOT_WRITTEN_SCHEMAS}


def header_problems(name: str, text: str, rendered: list[str]) -> list[str]:
    """What is wrong with the header of stage file ``name`` (its template ``text``), given
    its rendered texts: a missing line, or a writes: list other than what the SQL writes."""
    lines = header(text)
    if not lines:
        return [f"{name}: does not open with a header comment"]
    problems = [f"{name}: its header has no '-- {key}:' line" for key in HEADER_KEYS
                if header_entry(lines, key) is None]
    entry = header_entry(lines, "writes")
    if entry is None:
        return problems
    declared = declared_writes(entry)
    for bad in sorted(n for n in declared if not re.fullmatch(NAME, n)):
        problems.append(f"{name}: writes: {bad!r} is not a schema-qualified name (or 'nothing')")
    found: set[str] = set().union(*(written_names(sql) for sql in rendered)) if rendered else set()
    if not rendered:
        problems.append(f"{name}: no rendered text to compare its writes: line with")
    if missing := sorted(found - declared):
        problems.append(f"{name}: writes {', '.join(missing)} but its writes: line does not say so")
    if extra := sorted(declared - found):
        problems.append(f"{name}: its writes: line names {', '.join(extra)}, which its SQL does not write")
    return problems


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Template file name -> its rendered texts over the bundled configs and both ingest routes."""
    root = tmp_path_factory.mktemp("render")
    for folder in ("configs", "data"):
        (root / folder).symlink_to(REPO_ROOT / folder)
    texts: dict[str, list[str]] = defaultdict(list)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the configs' paths are relative; the source cache goes to root/artifacts
        for config in CONFIGS:
            out = root / "out" / config
            for path in render_all(f"configs/{config}", out):
                if path.parent == out and path.suffix == ".sql" and path.name != "settings.sql":
                    texts[re.sub(r"\.file\d+\.sql$", ".sql", path.name)].append(path.read_text(encoding="utf-8"))
        # a file whose source keeps some columns lands line by line (011, 012)
        source = describe_sources(load_config("configs/pipeline.yaml"))[0]
        kept = {**source, "keep_positions": [0, 1]}
        for name, text in copy.render_ingest(kept) + copy.render_analyze():
            texts[name].append(text)
    return dict(texts)


def test_stage_folders_are_the_stages_in_order():
    folders = sorted(path.name for path in SQL_DIR.iterdir() if path.is_dir() and re.match(r"^\d\d_", path.name))
    assert [folder[3:] for folder in folders] == [stage.name for stage in STAGES], (
        "sql/NN_<stage> folders, sorted, must be the stages of scripts/pipeline/stages.py in order")
    assert [render.stage_folder(stage.name) for stage in STAGES] == folders


def test_file_numbers_rise_in_run_order():
    """Rendered flat (make render), the files still run in ls order: every file's number is
    above those of the stages before it, and within its folder's range (60_splits: 06x)."""
    numbers = []
    for stage in STAGES:
        folder = render.stage_folder(stage.name)
        for template in render.stage_files(stage.name):
            number = int(template.split("/")[1][:3])
            assert number >= int(folder[:2]), f"{template}: numbered below its folder ({folder})"
            numbers.append((number, template))
    assert [n for n, _ in numbers] == sorted(n for n, _ in numbers), \
        f"file numbers out of run order: {[t for n, t in numbers]}"
    assert len({n for n, _ in numbers}) == len(numbers), "two files share a number"


def test_every_stage_file_has_a_header_whose_writes_match_its_sql(rendered):
    problems = []
    for path in stage_files():
        relative = path.relative_to(SQL_DIR).as_posix()
        problems += header_problems(relative, path.read_text(encoding="utf-8"), rendered.get(path.name, []))
    assert not problems, "\n".join(problems)


def test_every_rendered_file_is_a_stage_file(rendered):
    """The comparison above covers every file the runner renders (none is left unchecked)."""
    assert set(rendered) == {path.name for path in stage_files()}


def test_no_sql_file_is_too_long():
    long = {path.relative_to(SQL_DIR).as_posix(): n for path in SQL_DIR.rglob("*.sql")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) - TOO_LONG_ALLOWED == set(), f"over {MAX_LINES} lines: {long}"


def test_file_names_in_comments_exist():
    stage_names = {path.name: path.parent.name for path in stage_files()}
    migrations = {path.name for path in (SQL_DIR / "migrations").glob("*.sql")}
    missing = []
    for path in SQL_DIR.rglob("*.sql"):
        if path.parent.name == "migrations" and path.name in migrations and path.name < "V017":
            continue  # applied migrations are never edited: what they say stays as it was
        for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for folder, name in FILE_REFERENCE.findall(line):
                exists = name in migrations if name.startswith("V") else (
                    name in stage_names and (not folder or stage_names[name] == folder))
                if not exists:
                    missing.append(f"{path.relative_to(SQL_DIR)}:{line_number}: {folder + '/' if folder else ''}{name}")
    assert not missing, "comments name files that do not exist:\n" + "\n".join(missing)


def test_the_checks_fail_on_a_broken_file():
    """A header that leaves out a table its SQL writes, names one it does not write, or lacks
    a line; a file over the limit; a stale file name: each is reported."""
    template = ("{%- import 'macros/versions.sql' as versions -%}\n"
                "-- Does something.\n-- grain: one row per order\n-- requires: nothing\n"
                "-- writes: stg.orders,\n--         feats.not_written\n"
                "DELETE FROM stg.orders;\nINSERT INTO stg.order_changes SELECT 1;\n")
    rendered_sql = template.split("-%}\n", 1)[1]
    problems = header_problems("40_stage/049_example.sql", template, [rendered_sql])
    assert any("writes stg.order_changes but its writes: line does not say so" in p for p in problems)
    assert any("names feats.not_written, which its SQL does not write" in p for p in problems)
    # a write inside a comment is no write; a temporary table is not named
    assert written_names("-- INSERT INTO stg.orders\nCREATE TEMPORARY TABLE t AS SELECT 1;") == set()
    # a missing grain line, and no header at all
    assert header_problems("x.sql", "-- Does.\n-- requires: x\n-- writes: nothing\nSELECT 1;", ["SELECT 1;"]) == [
        "x.sql: its header has no '-- grain:' line"]
    assert header_problems("y.sql", "SELECT 1;\n", ["SELECT 1;"]) == ["y.sql: does not open with a header comment"]
    # a stale name in a comment, and a long file
    assert FILE_REFERENCE.findall("-- see 60_splits/060_meta_dataset_splits.sql") == [
        ("60_splits", "060_meta_dataset_splits.sql")]
    assert "060_meta_dataset_splits.sql" not in {path.name for path in stage_files()}
    assert len(("SELECT 1;\n" * (MAX_LINES + 1)).splitlines()) > MAX_LINES
