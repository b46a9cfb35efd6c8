"""The files people actually send: gzip, UTF-16 (Excel's Unicode Text), files wider than a
table, headers whose names differ in case. Each lands the same rows as the plain file."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import zlib

import pytest

from scripts import objectstore
from scripts.db import locks
from scripts.db import server as embedded
from scripts.run import EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, render_all, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

ROWS = "SELECT line_number, record_number, payload FROM raw.raw_events WHERE file_path = %s ORDER BY record_number"


def ingest_run(config: str, db_url: str) -> tuple[int, dict]:
    return run_pipeline(config, db_url, through="ingest")


def sample_orders() -> bytes:
    """The bundled sample with a quoted line break near the top: every later record's line
    number depends on counting line breaks in the content, not in the stored bytes."""
    header, *records = (REPO_ROOT / "data" / "raw" / "orders.csv").read_bytes().splitlines(keepends=True)
    return header + b'O9999999999,C0000001,2024-01-01 00:00:00,1.00,"multi\nline"\n' + b"".join(records)


def test_gzipped_file_lands_the_same_rows_and_a_rerun_adds_nothing(project, db_url, capsys):
    plain = sample_orders()
    packed = gzip.compress(plain)
    project.write_csv("orders.csv", plain)
    project.write_csv("orders.csv.gz", packed)
    config = project.write_config(paths=["data/raw/orders.csv", "data/raw/orders.csv.gz"])
    code, report = ingest_run(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    expected = query(db_url, ROWS, ("data/raw/orders.csv",))
    assert len(expected) == 5001
    assert expected[1][:2] == (4, 2)  # after the two-line record
    assert query(db_url, ROWS, ("data/raw/orders.csv.gz",)) == expected
    # identity is the bytes as stored: the compressed file's sha256 and size
    assert query(db_url, "SELECT file_sha256, file_bytes, record_count FROM raw.ingested_files WHERE file_path = %s",
                 ("data/raw/orders.csv.gz",)) == [(hashlib.sha256(packed).hexdigest(), len(packed), 5001)]
    capsys.readouterr()
    code, report = ingest_run(config, db_url)
    assert code == EXIT_PASSED
    assert "data/raw/orders.csv.gz: already ingested" in capsys.readouterr().out
    assert [s["ingested_rows"] for s in report["sources"]] == [0, 0]
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(10_002,)]


def test_gzip_is_recognised_by_its_magic_bytes_whatever_the_name(project, db_url):
    """A .csv file holding gzip, a BOM inside the compressed content, and two concatenated
    gzip members (``cat a.gz b.gz``): all read as the text they hold."""
    text = "\ufeff" + HEADER.replace("\n", "\r\n") + "O1,C1,2024-01-01,1.00,completed\r\n"
    project.write_csv("plain.csv", text.encode("utf-8"))
    project.write_csv("export.csv", gzip.compress(text.encode("utf-8")))
    half = len(text) // 2
    project.write_csv("members.csv", gzip.compress(text[:half].encode("utf-8")) + gzip.compress(text[half:].encode()))
    config = project.write_config(paths=["data/raw/plain.csv", "data/raw/export.csv", "data/raw/members.csv"])
    code, report = ingest_run(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    expected = query(db_url, ROWS, ("data/raw/plain.csv",))
    assert expected == [(2, 1, {"order_id": "O1", "customer_id": "C1", "order_ts": "2024-01-01", "amount": "1.00",
                                "status": "completed"})]
    assert query(db_url, ROWS, ("data/raw/export.csv",)) == expected
    assert query(db_url, ROWS, ("data/raw/members.csv",)) == expected


def test_a_truncated_gzip_file_is_refused_and_nothing_is_kept(project, db_url, capsys):
    project.write_csv("orders.csv.gz", gzip.compress(sample_orders())[:-100])
    code, report = ingest_run(project.write_config(paths="data/raw/orders.csv.gz"), db_url)
    assert code == EXIT_RUNTIME
    error = capsys.readouterr().err
    assert "data/raw/orders.csv.gz: the gzip stream is truncated" in error
    assert report["errors"] == [error.strip().removeprefix("error: ")]
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]  # refused before any data work


# Excel's "Unicode Text": UTF-16 with a byte-order mark, tab-delimited, CRLF line ends.
UNICODE_TEXT = (
    "order_id\tcustomer_id\torder_ts\tamount\tstatus\r\n"
    "O1\tZoë Ångström\t2024-01-01\t1.50\tcompleted\r\n"
    'O2\t"東京, 日本"\t2024-01-02\t2.00\t"two\r\nlines 🎉"\r\n'
    "O3\t\t2024-01-03\t3.00\tcancelled\r\n"
)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_a_bom_lands_the_same_rows_as_utf8(project, db_url, codec):
    bom = codecs_bom(codec)
    project.write_csv("orders.txt", UNICODE_TEXT.encode("utf-8"))
    project.write_csv("orders_unicode.txt", bom + UNICODE_TEXT.encode(codec))
    config = project.write_config(sources=[{"name": "orders", "delimiter": "\t",
                                            "paths": ["data/raw/orders.txt", "data/raw/orders_unicode.txt"]}])
    code, report = ingest_run(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    expected = query(db_url, ROWS, ("data/raw/orders.txt",))
    assert [r[:2] for r in expected] == [(2, 1), (3, 2), (5, 3)]
    assert expected[1][2]["customer_id"] == "東京, 日本" and expected[1][2]["status"] == "two\r\nlines 🎉"
    assert expected[2][2]["customer_id"] is None
    assert query(db_url, ROWS, ("data/raw/orders_unicode.txt",)) == expected


def codecs_bom(codec: str) -> bytes:
    return "\ufeff".encode(codec)


def test_invalid_utf16_is_refused_naming_the_file(project, db_url, capsys):
    data = codecs_bom("utf-16-le") + UNICODE_TEXT.encode("utf-16-le") + "\ud800".encode("utf-16-le", "surrogatepass")
    project.write_csv("orders.txt", data)
    config = project.write_config(sources=[{"name": "orders", "delimiter": "\t", "paths": "data/raw/orders.txt"}])
    code, _ = ingest_run(config, db_url)
    assert code == EXIT_RUNTIME
    assert "data/raw/orders.txt: not valid UTF-16LE after line 6 of the content" in capsys.readouterr().err


def test_a_file_that_changes_between_the_two_passes_is_refused(project, db_url, monkeypatch, capsys):
    """The runner hashes a file, then streams it to COPY: a file rewritten in between (an
    export still being written) is refused rather than landed under the wrong sha256."""
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,completed\n")
    project.write_csv("good.csv", HEADER + "O0,C0,2024-01-01,1.00,completed\n")
    lock = locks.lock_pipeline

    def rewrite_then_lock(conn, *args):  # the runner locks after describing every file, before the COPY
        project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,9.99,completed\n")
        lock(conn, *args)

    monkeypatch.setattr(locks, "lock_pipeline", rewrite_then_lock)
    code, _ = ingest_run(project.write_config(paths=["data/raw/good.csv", "data/raw/orders.csv"]), db_url)
    assert code == EXIT_RUNTIME
    assert "data/raw/orders.csv: the file changed while it was being read" in capsys.readouterr().err
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM raw.ingested_files") == [(0,)]


def test_content_streams_in_bounded_chunks(tmp_path):
    """A highly compressible gzip (64 MiB of text in well under 1 MiB) decompresses in
    chunks of at most 1 MiB: memory stays flat however large the content."""
    line = b"O1,C1,2024-01-01 00:00:00,1.00,completed\n"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    path = tmp_path / "big.csv.gz"
    with path.open("wb") as out:
        for _ in range(64):
            out.write(packer.compress(line * ((1 << 20) // len(line) + 1)))
        out.write(packer.flush())
    assert path.stat().st_size < 1 << 20
    with objectstore.open_stored(str(path)) as stored:
        content = objectstore.Content(stored)
        sizes = [len(chunk) for chunk in content.chunks()]
    assert max(sizes) <= objectstore.CHUNK
    assert sum(sizes) == 64 * len(line) * ((1 << 20) // len(line) + 1)
    assert content.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- wider than a table ---------------------------------------------------------------------

def wide_csv(width: int, records: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"c{i}" for i in range(1, width + 1)])
    writer.writerows(records)
    return out.getvalue()


def test_a_file_wider_than_a_table_is_refused_before_any_data_work(project, db_url, capsys):
    project.write_csv("wide.csv", wide_csv(2000, [["x"] * 2000]))
    code, report = ingest_run(project.write_config(paths="data/raw/wide.csv"), db_url)
    assert code == EXIT_RUNTIME
    error = capsys.readouterr().err
    assert ("data/raw/wide.csv:1: the header has 2,000 columns; PostgreSQL tables hold at most 1,600 and landing "
            "needs 3 of them, so at most 1,597 can land: list the columns to keep in sources[].columns") in error
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]


def test_columns_lands_only_the_listed_columns_of_a_wide_file(project, db_url):
    """3,000 columns; the config keeps four, in its own order. Quoted delimiters, doubled
    quotes, quoted line breaks (CRLF and LF), NULL versus "" land as COPY would land them."""
    width = 3000
    records = []
    for n in range(1, 5):
        record = [f"v{n}_{i}" for i in range(1, width + 1)]
        records.append(record)
    records[0][0], records[0][1] = "O1", "C1"
    records[1][0], records[1][1], records[1][2999] = "O2", 'say "hi", twice', "multi\r\nline\nfield"
    records[2][0], records[2][1], records[2][2] = "O3", "", "\\N and \\t stay \t as written"
    records[3][0] = "O4"
    text = wide_csv(width, records)
    text = text.replace("\r\nO3,,", '\r\nO3,"",', 1)  # a quoted empty field: "" not NULL
    text = text.replace(",v4_3000\r\n", ",\r\n")  # an unquoted empty last field: NULL
    project.write_csv("wide.csv", text.encode("utf-8"))
    config = project.write_config(
        sources=[{"name": "orders", "paths": "data/raw/wide.csv", "columns": ["c1", "c3000", "c2", "c3"]}],
        columns={"order_id": "c1", "customer_id": "c2", "order_ts": "c3", "amount": "c3000", "status": None},
    )
    code, report = ingest_run(config, db_url)
    assert code == EXIT_PASSED, report["errors"]
    rows = query(db_url, ROWS, ("data/raw/wide.csv",))
    assert [r[:2] for r in rows] == [(2, 1), (3, 2), (6, 3), (7, 4)]
    assert [r[2] for r in rows] == [
        {"c1": "O1", "c2": "C1", "c3": "v1_3", "c3000": "v1_3000"},
        {"c1": "O2", "c2": 'say "hi", twice', "c3": "v2_3", "c3000": "multi\r\nline\nfield"},
        {"c1": "O3", "c2": "", "c3": "\\N and \\t stay \t as written", "c3000": "v3_3000"},
        {"c1": "O4", "c2": "v4_2", "c3": "v4_3", "c3000": None},
    ]


def test_columns_lands_exactly_what_csv_copy_lands(project, db_factory):
    """The same narrow file ingested through COPY's CSV parser and through the columns path
    (lines split in SQL): identical payloads and line numbers, BOM, CRLF, quotes and all."""
    body = (
        "\ufefforder_id;customer_id;order_ts;amount;status\r\n"
        "O1;C1;2024-01-01;1,00;'multi\r\nline\r\nstatus'\r\n"
        "O2;'C;2';2024-01-02;2,00;'say ''hi'''\r\n"
        "O3;;2024-01-03;'';done\r\n"
        "O4;C4;2024-01-04;4,00;\r\n"
    )
    project.write_csv("orders.csv", gzip.compress(body.encode("utf-8")))
    dialect = {"name": "orders", "paths": "data/raw/orders.csv", "delimiter": ";", "quote": "'"}
    every = project.write_config(sources=[dialect])
    kept = project.write_config(name="kept.yaml", sources=[
        {**dialect, "columns": ["order_id", "customer_id", "order_ts", "amount", "status"]}])
    by_copy, by_columns = db_factory(), db_factory()
    assert ingest_run(every, by_copy)[0] == EXIT_PASSED
    assert ingest_run(kept, by_columns)[0] == EXIT_PASSED
    expected = query(by_copy, ROWS, ("data/raw/orders.csv",))
    assert [r[:2] for r in expected] == [(2, 1), (5, 2), (6, 3), (7, 4)]
    assert expected[1][2]["status"] == "say 'hi'" and expected[2][2]["customer_id"] is None
    assert query(by_columns, ROWS, ("data/raw/orders.csv",)) == expected


@pytest.mark.parametrize(("record", "message"), [
    ("O2,C2,2024-01-02", "data/raw/orders.csv:3: the record has 3 fields; the header has 5"),
    ('O2,C"2,2024-01-02,1.00,x', "data/raw/orders.csv:3: not valid CSV from this line on"),
])
def test_columns_refuses_a_bad_record_naming_its_line(project, db_url, capsys, record, message):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,x\n" + record + "\nO3,C3,2024-01-03,3.00,x\n")
    config = project.write_config(sources=[{"name": "orders", "paths": "data/raw/orders.csv",
                                            "columns": ["order_id", "customer_id", "order_ts", "amount", "status"]}])
    code, _ = ingest_run(config, db_url)
    assert code == EXIT_RUNTIME
    assert message in capsys.readouterr().err
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(0,)]


def test_columns_must_name_header_columns(project, db_url, capsys):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,x\n")
    config = project.write_config(sources=[{"name": "orders", "paths": "data/raw/orders.csv",
                                            "columns": ["order_id", "Customer_ID", "order_ts", "amount"]}])
    code, _ = ingest_run(config, db_url)
    assert code == EXIT_RUNTIME
    assert ("data/raw/orders.csv:1: sources[].columns lists 'Customer_ID', which the header does not have; "
            "the header has 'customer_id'") in capsys.readouterr().err


def test_a_rule_on_a_column_that_is_not_kept_is_a_config_error(project, db_url, capsys):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,x\n")
    config = project.write_config(
        sources=[{"name": "orders", "paths": "data/raw/orders.csv",
                  "columns": ["order_id", "customer_id", "order_ts", "amount"]}],
        expectations={"non_null": ["status"]}, columns={"status": None})
    code, _ = ingest_run(config, db_url)
    assert code == EXIT_USAGE
    assert "'status' is in a header but not in its source's columns: list" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [[], ["a", "a"], "order_id", [1]])
def test_columns_must_be_a_list_of_distinct_names(project, db_url, capsys, bad):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,x\n")
    config = project.write_config(sources=[{"name": "orders", "paths": "data/raw/orders.csv", "columns": bad}])
    assert ingest_run(config, db_url)[0] == EXIT_USAGE
    assert "sources[0].columns: must be a non-empty list of distinct header names" in capsys.readouterr().err


# --- names that differ only in case -------------------------------------------------------------

def test_a_mapped_column_differing_only_in_case_names_the_near_match(project, db_url, capsys):
    project.write_csv("orders.csv", "order_id,customer_id,order_ts,AMOUNT,status\nO1,C1,2024-01-01,1.00,x\n")
    code, _ = ingest_run(project.write_config(), db_url)
    assert code == EXIT_USAGE
    error = capsys.readouterr().err
    assert "configs/pipeline.yaml: columns.amount: no source file has a column 'amount'; the header has 'AMOUNT'" \
           in error


def test_a_checked_column_differing_only_in_case_names_the_near_match(project, db_url, capsys):
    project.write_csv("orders.csv", HEADER + "O1,C1,2024-01-01,1.00,x\n")
    code, _ = ingest_run(project.write_config(expectations={"non_null": ["Status "]}), db_url)
    assert code == EXIT_USAGE
    assert "non_null.Status : no source file has a column 'Status '; the header has 'status'" \
           in capsys.readouterr().err


# --- the DBA route ---------------------------------------------------------------------------------

def psql(target: str, *args: str) -> None:
    subprocess.run([str(embedded.psql_binary()), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                    *args, "-d", target], check=True, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["gzip", "utf16", "columns"])
def test_psql_route_reads_the_same_rows_through_a_program(project, db_factory, kind):
    """render writes `\\copy ... FROM PROGRAM 'gzip -dc' / 'iconv' / 'sed'`: psql lands what
    the runner lands."""
    for tool in ("gzip", "iconv", "sed"):
        assert shutil.which(tool), f"{tool} is needed by the rendered psql script"
    text = UNICODE_TEXT.replace("\t", ",")
    source = {"name": "orders", "paths": "data/raw/orders.csv"}
    if kind == "gzip":
        project.write_csv("orders.csv", gzip.compress(text.encode("utf-8")))
    elif kind == "utf16":
        project.write_csv("orders.csv", codecs_bom("utf-16-le") + text.encode("utf-16-le"))
    else:
        project.write_csv("orders.csv", text.encode("utf-8"))
        source["columns"] = ["order_id", "status", "customer_id", "order_ts", "amount"]
    config = project.write_config(sources=[source])
    by_runner, by_psql = db_factory(), db_factory()
    assert ingest_run(config, by_runner)[0] == EXIT_PASSED
    out = project.root / "rendered"
    render_all(config, out)
    script = (out / "ingest.file1.psql").read_text()
    assert "FROM PROGRAM" in script
    for migration in sorted((out / "migrations").glob("V*.sql")):
        psql(by_psql, "-f", str(migration))
    psql(by_psql, "-v", "run_id=psql", "-f", str(out / "ingest.file1.psql"))
    expected = query(by_runner, ROWS, ("data/raw/orders.csv",))
    assert len(expected) == 3
    assert query(by_psql, ROWS, ("data/raw/orders.csv",)) == expected
    assert query(by_psql, "SELECT file_sha256 FROM raw.ingested_files") == \
        query(by_runner, "SELECT file_sha256 FROM raw.ingested_files")


def test_report_lists_compressed_sources_with_stored_sizes(project, db_url):
    packed = gzip.compress(sample_orders())
    project.write_csv("orders.csv.gz", packed)
    code, report = ingest_run(project.write_config(paths="data/raw/orders.csv.gz"), db_url)
    assert code == EXIT_PASSED
    saved = json.loads((project.root / "artifacts" / "reports" / f"{report['run_id']}.json").read_text())
    assert saved["sources"] == [{"source": "orders", "path": "data/raw/orders.csv.gz",
                                 "sha256": hashlib.sha256(packed).hexdigest(), "bytes": len(packed),
                                 "ingested_rows": 5001}]
