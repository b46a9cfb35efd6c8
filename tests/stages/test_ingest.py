"""Ingest: COPY into raw.raw_events, exactly as received, immutable and idempotent."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import psycopg
import pytest

from scripts.run import EXIT_PASSED, EXIT_RUNTIME, run_pipeline
from tests.helpers import HEADER, UCI_DIR, query


def ingest(config: str, db_url: str) -> tuple[int, dict]:
    return run_pipeline(config, db_url, through="ingest")


def test_payload_is_exactly_as_received_with_lineage(project, db_url):
    path = project.write_csv("orders.csv", HEADER + "O1, C1 ,2024-01-01 10:00:00,12.50,Completed\nO2,,2024-01-02,\"\",x\n")
    config = project.write_config()
    code, report = ingest(config, db_url)
    assert code == EXIT_PASSED
    rows = query(db_url, "SELECT source_name, file_path, file_sha256, line_number, record_number, run_id,"
                         " payload FROM raw.raw_events ORDER BY event_id")
    sha = hashlib.sha256((project.root / path).read_bytes()).hexdigest()
    assert [r[:6] for r in rows] == [
        ("orders", path, sha, 2, 1, report["run_id"]),
        ("orders", path, sha, 3, 2, report["run_id"]),
    ]
    # spaces kept, unquoted empty field -> JSON null, quoted empty field -> ""
    assert rows[0][6] == {"order_id": "O1", "customer_id": " C1 ", "order_ts": "2024-01-01 10:00:00",
                          "amount": "12.50", "status": "Completed"}
    assert rows[1][6] == {"order_id": "O2", "customer_id": None, "order_ts": "2024-01-02", "amount": "",
                          "status": "x"}
    assert query(db_url, "SELECT file_sha256, record_count, file_path FROM raw.ingested_files") == [(sha, 2, path)]


def test_bom_crlf_and_quoted_newlines_and_commas(project, db_url):
    body = (
        "\ufefforder_id,customer_id,order_ts,amount,status\r\n"
        "O1,C1,2024-01-01,1.00,\"multi\r\nline\r\nstatus\"\r\n"
        "O2,\"C,2\",2024-01-02,2.00,\"say \"\"hi\"\"\"\r\n"
        "O3,C3,2024-01-03,3.00,done\r\n"
    )
    project.write_csv("orders.csv", body.encode("utf-8"))
    code, _ = ingest(project.write_config(), db_url)
    assert code == EXIT_PASSED
    rows = query(db_url, "SELECT line_number, record_number, payload FROM raw.raw_events ORDER BY event_id")
    # the header key has no BOM; quoted CRLFs inside a field are data; line numbers count
    # physical lines: O1 starts on line 2 and spans 3 lines, so O2 is on 5 and O3 on 6
    assert [(r[0], r[1]) for r in rows] == [(2, 1), (5, 2), (6, 3)]
    assert rows[0][2]["order_id"] == "O1" and "\ufefforder_id" not in rows[0][2]
    assert rows[0][2]["status"] == "multi\r\nline\r\nstatus"
    assert rows[1][2]["customer_id"] == "C,2" and rows[1][2]["status"] == 'say "hi"'
    assert rows[2][2]["status"] == "done"  # no stray \r from the CRLF line ending


def test_header_names_are_quoted_identifiers(project, db_url):
    project.write_csv("orders.csv", 'order_id,"select","a""b",Mixed Case\nO1,1,2,3\n')
    code, _ = ingest(project.write_config(), db_url)
    assert code == EXIT_PASSED
    assert query(db_url, "SELECT payload FROM raw.raw_events") == [
        ({"order_id": "O1", "select": "1", 'a"b': "2", "Mixed Case": "3"},)
    ]


def test_reingesting_the_same_file_adds_nothing(project, db_url, capsys):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    config = project.write_config()
    assert ingest(config, db_url)[0] == EXIT_PASSED
    code, report = ingest(config, db_url)
    assert code == EXIT_PASSED
    assert "already ingested" in capsys.readouterr().out
    assert report["sources"][0]["ingested_rows"] == 0
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(1,)]
    # the same bytes under another name are the same file
    (project.root / "data/raw/copy.csv").write_bytes((project.root / "data/raw/orders.csv").read_bytes())
    assert ingest(project.write_config(paths="data/raw/copy.csv"), db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(1,)]


@pytest.mark.parametrize("statement", [
    "UPDATE raw.raw_events SET payload = '{}'",
    "DELETE FROM raw.raw_events",
    "TRUNCATE raw.raw_events",
    "UPDATE raw.ingested_files SET record_count = 0",
    "DELETE FROM raw.ingested_files WHERE false",
])
def test_raw_layer_is_immutable(project, db_url, statement):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    assert ingest(project.write_config(), db_url)[0] == EXIT_PASSED
    with psycopg.connect(db_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(1,)]


def test_bad_encoding_is_refused_and_nothing_of_the_file_is_kept(project, db_url, capsys):
    project.write_csv("good.csv", HEADER + "O0,C0,2024-01-01,1.00,completed\n")
    bad = (HEADER + "O1,C1,2024-01-01,1.00,completed\nO2,C\xff,2024-01-01,1.00,completed\n").encode("latin-1")
    project.write_csv("bad.csv", bad)
    code, report = ingest(project.write_config(paths=["data/raw/good.csv", "data/raw/bad.csv"]), db_url)
    assert code == EXIT_RUNTIME
    error = capsys.readouterr().err
    assert "data/raw/bad.csv:3" in error and "invalid byte sequence" in error and "UTF8" in error
    assert report["errors"] and "data/raw/bad.csv:3" in report["errors"][0]
    # the ingest stage is one transaction: no row of either file is kept
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM raw.ingested_files") == [(0,)]


def test_latin1_file_ingests_with_configured_encoding(project, db_url):
    project.write_csv("orders.csv", (HEADER + "O1,Café,2024-01-01,1.00,completed\n").encode("latin-1"))
    config = project.write_config(sources=[{"name": "orders", "paths": "data/raw/orders.csv", "encoding": "LATIN1"}])
    assert ingest(config, db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT payload ->> 'customer_id' FROM raw.raw_events") == [("Café",)]


def test_ragged_row_names_file_and_line(project, db_url, capsys):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\nO2,C2,2024-01-01\n")
    code, _ = ingest(project.write_config(), db_url)
    assert code == EXIT_RUNTIME
    error = capsys.readouterr().err
    assert "data/raw/orders.csv:3" in error and "missing data for column" in error
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(0,)]


def test_real_uci_invoice_lines_ingest_completely(project, db_url):
    """68 real daily files: the row count and the £ sign match SOURCE.md (counted with csv)."""
    files = sorted(str(p) for p in (UCI_DIR / "by-day").glob("*.csv"))
    assert len(files) == 68
    config = project.write_config(paths=str(UCI_DIR / "by-day" / "*.csv"))
    code, report = ingest(config, db_url)
    assert code == EXIT_PASSED
    assert query(db_url, "SELECT count(*), count(DISTINCT file_sha256) FROM raw.raw_events") == [(105_335, 68)]
    assert query(db_url, "SELECT count(*) FROM raw.raw_events WHERE payload ->> 'Description' LIKE '%£%'") == [(8,)]
    # a quoted field with a comma arrives whole
    assert query(db_url, "SELECT count(*) > 0 FROM raw.raw_events"
                         " WHERE payload ->> 'Description' = 'AIRLINE LOUNGE,METAL SIGN'") == [(True,)]
    assert sum(s["ingested_rows"] for s in report["sources"]) == 105_335


@pytest.mark.parametrize(("encoding", "codec", "text"), [
    ("WIN1251", "cp1251", "Москва"),
    ("KOI8R", "koi8_r", "Москва"),
    ("LATIN2", "iso8859_2", "Łódź"),
    ("WIN1252", "cp1252", "café €"),
])
def test_postgresql_encodings_ingest_to_the_same_text(project, db_url, encoding, codec, text):
    """A file in a PostgreSQL-supported encoding arrives as the same text (UTF-8 in JSONB)."""
    project.write_csv("orders.csv", (HEADER + f"O1,{text},2024-01-01,1.00,completed\n").encode(codec))
    config = project.write_config(sources=[{"name": "orders", "paths": "data/raw/orders.csv", "encoding": encoding}])
    assert ingest(config, db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT payload ->> 'customer_id' FROM raw.raw_events") == [(text,)]


def test_semicolon_delimiter_and_single_quote_quoting(project, db_url):
    project.write_csv("orders.csv", "order_id;customer_id;order_ts;amount;status\nO1;'C;1';2024-01-01;1,50;x\n")
    config = project.write_config(sources=[{"name": "orders", "paths": "data/raw/orders.csv",
                                            "delimiter": ";", "quote": "'"}])
    assert ingest(config, db_url)[0] == EXIT_PASSED
    assert query(db_url, "SELECT payload FROM raw.raw_events") == [
        ({"order_id": "O1", "customer_id": "C;1", "order_ts": "2024-01-01", "amount": "1,50", "status": "x"},)]


def test_a_header_spanning_two_lines_shifts_line_numbers(project, db_url):
    """A quoted header name holding a line break makes the header two lines long: the
    first record starts on line 3 (counted by hand), with or without breaks in records."""
    project.write_csv("plain.csv", 'order_id,"sta\ntus"\nO1,a\nO2,b\n')
    project.write_csv("broken.csv", 'order_id,"sta\ntus"\nO1,"a\nb"\nO2,c\n')
    code, _ = ingest(project.write_config(paths=["data/raw/plain.csv", "data/raw/broken.csv"]), db_url)
    assert code == EXIT_PASSED
    assert query(db_url, "SELECT file_path, record_number, line_number, payload ->> 'sta\ntus'"
                         " FROM raw.raw_events ORDER BY event_id") == [
        ("data/raw/plain.csv", 1, 3, "a"), ("data/raw/plain.csv", 2, 4, "b"),
        ("data/raw/broken.csv", 1, 3, "a\nb"), ("data/raw/broken.csv", 2, 5, "c"),
    ]


def expected_records(path: Path, header_lines: int = 1) -> list[tuple[int, int, dict]]:
    """(line the record starts on, record number, payload) of every record, read by Python's csv
    module: the independent reading of the file."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records, line = [], header_lines
        for number, fields in enumerate(reader, start=1):
            records.append((line + 1, number, dict(zip(header, fields))))
            line = reader.line_num
    return records


def test_many_files_land_together_each_record_as_a_file_alone_would(project, db_url, capsys):
    """Forty files in one run (empty ones, quoted line breaks, a second header, the same
    content twice, one file ingested by an earlier run) share one landing per header: every
    file's records, lines and counts are what Python's csv module reads, and event ids follow
    each file's records."""
    names = []
    for k in range(40):
        rows = [f"O{k}-{r},C{r},2024-01-{1 + r:02d},{k}.{r:02d},completed" for r in range(k % 5)]
        if k % 7 == 3:  # a quoted field holding line breaks shifts the following lines
            rows.insert(0, f'O{k}-q,C9,2024-02-01,1.00,"two\nlines"')
        header = "customer_id,order_id,order_ts,amount,status\n" if k == 20 else HEADER
        if k == 20:  # another header: its own landing
            rows = [",".join(r.split(",")[i] for i in (1, 0, 2, 3, 4)) for r in rows]
        names.append(project.write_csv(f"day{k:02d}.csv", header + "".join(r + "\n" for r in rows)))
    (project.root / "data/raw/again.csv").write_bytes((project.root / names[12]).read_bytes())
    assert ingest(project.write_config(paths=[names[5]]), db_url)[0] == EXIT_PASSED
    capsys.readouterr()

    code, report = ingest(project.write_config(paths=[*names, "data/raw/again.csv"]), db_url)
    assert code == EXIT_PASSED
    out = capsys.readouterr().out
    assert f"{names[5]}: already ingested" in out and "again.csv: the same content as a file before it" in out
    events = query(db_url, "SELECT event_id, file_path, line_number, record_number, payload FROM raw.raw_events")
    for name in names:
        rows = sorted((e for e in events if e[1] == name), key=lambda e: e[0])
        assert [(e[2], e[3], e[4]) for e in rows] == expected_records(project.root / name), name
    assert not [e for e in events if e[1] == "data/raw/again.csv"]
    # a content is recorded once, under the first name it came by: the header-only files
    # are all the content of day05, which the earlier run ingested
    first_names = {}
    for name in [names[5], *names]:
        first_names.setdefault((project.root / name).read_bytes(), name)
    counts = dict(query(db_url, "SELECT file_path, record_count FROM raw.ingested_files"))
    assert counts == {name: len(expected_records(project.root / name)) for name in first_names.values()}
    assert len(counts) == 35 and sum(s["ingested_rows"] for s in report["sources"]) == len(events)
