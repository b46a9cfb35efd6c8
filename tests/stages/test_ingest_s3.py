"""S3-compatible object storage: sources at s3://bucket/keys, against a real S3 server.

The server is moto's, in server mode, started here on 127.0.0.1 (a free port) and stopped
after the module; the runner reaches it over HTTP like any S3 endpoint, configured only by
the AWS_* environment variables that each test sets.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import moto.settings
import pytest
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import ThreadedMotoServer

from scripts.db import locks
from scripts.run import EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, run_pipeline
from tests.helpers import HEADER, REPO_ROOT, query

ROWS = "SELECT line_number, record_number, payload FROM raw.raw_events WHERE file_path = %s ORDER BY record_number"
SECRET = "s3cr3t-" + uuid.uuid4().hex  # must never appear in output, report or table


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # no request log lines in captured stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> "Store":
    """A fresh bucket, and the AWS_* variables pointing the runner at the server."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return Store(s3_endpoint, f"exports-{uuid.uuid4().hex[:12]}")


class Store:
    """The test's own S3 client (not the runner's), to create buckets and objects."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        self.endpoint, self.bucket = endpoint, bucket
        self.client = self.make_client("testing", "testing")
        self.client.create_bucket(Bucket=bucket)

    def make_client(self, key_id: str, secret: str, service: str = "s3"):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key_id, aws_secret_access_key=secret)

    def put(self, key: str, body: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"


def ingest_run(config: str, db_url: str) -> tuple[int, dict]:
    return run_pipeline(config, db_url, through="ingest")


def orders_halves() -> tuple[bytes, bytes]:
    header, *records = (REPO_ROOT / "data" / "raw" / "orders.csv").read_bytes().splitlines(keepends=True)
    return header + b"".join(records[:2500]), header + b"".join(records[2500:])


def test_an_s3_glob_lands_the_same_rows_as_local_files_and_reruns_idempotently(project, db_factory, s3, capsys):
    """Two objects match (one gzipped), two do not; a local path sits beside them."""
    first, second = orders_halves()
    packed = gzip.compress(second)
    uri1 = s3.put("orders/2025/part-1.csv", first)
    uri2 = s3.put("orders/2025/part-2.csv.gz", packed)
    s3.put("orders/2025/README.txt", b"not a csv")
    s3.put("other/part-3.csv", first)
    project.write_csv("part-1.csv", first)
    project.write_csv("part-2.csv.gz", packed)
    local_bytes = (HEADER + "L1,C1,2024-01-01,1.00,completed\n").encode()
    project.write_csv("local.csv", local_bytes)
    local = project.write_config(name="local.yaml", paths=["data/raw/part-1.csv", "data/raw/part-2.csv.gz"])
    remote = project.write_config(paths=[f"s3://{s3.bucket}/orders/*/part-*.csv*", "data/raw/local.csv"])
    by_local, by_s3 = db_factory(), db_factory()
    assert ingest_run(local, by_local)[0] == EXIT_PASSED
    code, report = ingest_run(remote, by_s3)
    assert code == EXIT_PASSED, report["errors"]
    assert [s["path"] for s in report["sources"]] == [uri1, uri2, "data/raw/local.csv"]
    for uri, path in ((uri1, "data/raw/part-1.csv"), (uri2, "data/raw/part-2.csv.gz")):
        expected = query(by_local, ROWS, (path,))
        assert len(expected) == 2500
        assert query(by_s3, ROWS, (uri,)) == expected
    # lineage: the URI; identity: the sha256 of the object as stored (the gzip bytes)
    assert query(by_s3, "SELECT file_path, file_sha256, file_bytes FROM raw.ingested_files ORDER BY file_path") == [
        ("data/raw/local.csv", hashlib.sha256(local_bytes).hexdigest(), len(local_bytes)),
        (uri1, hashlib.sha256(first).hexdigest(), len(first)),
        (uri2, hashlib.sha256(packed).hexdigest(), len(packed)),
    ]
    capsys.readouterr()
    code, report = ingest_run(remote, by_s3)
    assert code == EXIT_PASSED
    out = capsys.readouterr().out
    assert f"{uri1}: already ingested" in out and f"{uri2}: already ingested" in out
    assert query(by_s3, "SELECT count(*) FROM raw.raw_events") == [(5001,)]


def test_a_plain_key_names_one_object(project, db_url, s3):
    uri = s3.put("orders.csv", HEADER.encode() + b"O1,C1,2024-01-01,1.00,completed\n")
    s3.put("orders.csv.bak", HEADER.encode() + b"O2,C2,2024-01-01,1.00,completed\n")
    code, report = ingest_run(project.write_config(paths=uri), db_url)
    assert code == EXIT_PASSED, report["errors"]
    assert query(db_url, "SELECT file_path, payload ->> 'order_id' FROM raw.raw_events") == [(uri, "O1")]


def test_no_matching_object_is_a_config_error_naming_the_uri(project, db_url, s3, capsys):
    s3.put("orders/a.txt", b"x")
    for pattern in (f"s3://{s3.bucket}/orders/*.csv", f"s3://{s3.bucket}/orders/missing.csv"):
        code, report = ingest_run(project.write_config(paths=pattern), db_url)
        assert code == EXIT_USAGE
        assert f"sources[0].paths: no such file: {pattern}" in capsys.readouterr().err
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]


@pytest.mark.parametrize("key", ["orders/*.csv", "orders/a.csv"])
def test_a_missing_bucket_is_a_config_error_naming_the_uri(project, db_url, s3, capsys, key):
    uri = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/{key}"
    code, report = ingest_run(project.write_config(paths=uri), db_url)
    assert code == EXIT_USAGE
    assert (f"error: configs/pipeline.yaml: sources[0].paths: {uri}: no such bucket '{uri.split('/')[2]}' "
            f"at {s3.endpoint}") in capsys.readouterr().err


def test_a_uri_without_a_key_is_a_config_error(project, db_url, s3, capsys):
    code, _ = ingest_run(project.write_config(paths=f"s3://{s3.bucket}/"), db_url)
    assert code == EXIT_USAGE
    assert (f"error: configs/pipeline.yaml: sources[0].paths: s3://{s3.bucket}/: an S3 source names an object or "
            "a pattern of keys") in capsys.readouterr().err


@pytest.fixture
def iam_key(s3: Store, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A user allowed every S3 action; then the server checks every request's signature."""
    iam = s3.make_client("testing", "testing", "iam")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    s3.client = s3.make_client(key["AccessKeyId"], key["SecretAccessKey"])  # the test's own puts
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def leaked(project_root: Path, report: dict, *texts: str) -> list[str]:
    """Where SECRET shows: the report file, the printed output, the run's saved SQL."""
    places = {"report": json.dumps(report), **{f"output {i}": t for i, t in enumerate(texts)}}
    for path in (project_root / "artifacts").rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_text(errors="replace")
    return [place for place, text in places.items() if SECRET in text]


@pytest.mark.parametrize("named", ["glob", "key"])
@pytest.mark.parametrize("wrong", ["unknown key id", "wrong secret"])
def test_refused_credentials_exit_3_naming_the_uri_without_the_secret(project, db_url, s3, iam_key, monkeypatch,
                                                                      capsys, wrong, named):
    uri = s3.put("orders.csv", HEADER.encode() + b"O1,C1,2024-01-01,1.00,completed\n")
    pattern = uri.replace("orders.csv", "*.csv") if named == "glob" else uri
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_key["id"] if wrong == "wrong secret" else "AKIAUNKNOWN0000000000")
    code, report = ingest_run(project.write_config(paths=pattern), db_url)
    out, err = capsys.readouterr()
    assert code == EXIT_RUNTIME
    # a listing's refusal says why; a HEAD request's answer has no body, only its status
    why = {"unknown key id": "InvalidAccessKeyId: ", "wrong secret": "SignatureDoesNotMatch: "}[wrong]
    assert f"error: {pattern}: access refused at {s3.endpoint} ({why if named == 'glob' else '403'}" in err
    assert "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in err
    assert leaked(project.root, report, out, err) == []
    assert query(db_url, "SELECT to_regclass('raw.raw_events')") == [(None,)]


def test_credentials_come_from_the_environment_only(project, db_url, s3, iam_key, monkeypatch, tmp_path, capsys):
    """Valid keys in a credentials file (~/.aws style) are not used: without AWS_* keys the
    runner sends anonymous requests, which this server refuses; the same keys in the
    environment work, and the secret shows nowhere."""
    uri = s3.put("orders.csv", HEADER.encode() + b"O1,C1,2024-01-01,1.00,completed\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {iam_key['id']}\n"
                           f"aws_secret_access_key = {iam_key['secret']}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # boto3's own default chain would read the file and succeed: the test means something
    assert boto3.client("s3").head_object(Bucket=s3.bucket, Key="orders.csv")["ContentLength"] > 0
    config = project.write_config(paths=uri)
    code, _ = ingest_run(config, db_url)
    assert code == EXIT_RUNTIME
    assert f"error: {uri}: " in capsys.readouterr().err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_key["id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", iam_key["secret"])
    code, report = ingest_run(config, db_url)
    out, err = capsys.readouterr()
    assert code == EXIT_PASSED, report["errors"]
    assert query(db_url, "SELECT file_path FROM raw.ingested_files") == [(uri,)]
    assert iam_key["secret"] not in out + err + json.dumps(report)
    tables = query(db_url, "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM meta.runs) AS t")
    assert iam_key["secret"] not in str(tables)


def test_an_object_replaced_between_the_two_passes_is_refused(project, db_url, s3, monkeypatch, capsys):
    """The describe pass reads one version; before the COPY pass the object is overwritten.
    The COPY pass asks for the ETag it read (If-Match): the server refuses, the run stops
    naming the URI, and nothing of any file of the run is kept."""
    good = s3.put("a/good.csv", HEADER.encode() + b"O0,C0,2024-01-01,1.00,completed\n")
    uri = s3.put("a/orders.csv", HEADER.encode() + b"O1,C1,2024-01-01,1.00,completed\n")
    lock = locks.lock_pipeline

    def replace_then_lock(conn, *args):  # the runner locks after describing every file, before the COPY
        s3.put("a/orders.csv", HEADER.encode() + b"O1,C1,2024-01-01,9.99,completed\n")
        lock(conn, *args)

    monkeypatch.setattr(locks, "lock_pipeline", replace_then_lock)
    code, report = ingest_run(project.write_config(paths=f"s3://{s3.bucket}/a/*.csv"), db_url)
    assert code == EXIT_RUNTIME
    assert report["sources"][0]["path"] == good
    message = f"{uri}: the object changed while it was being read (its ETag is not the one read before): run " \
              "again; nothing of this file was kept"
    assert message in capsys.readouterr().err
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM raw.ingested_files") == [(0,)]


def test_a_successful_run_shows_the_secret_nowhere(project, db_url, s3, capsys):
    uri = s3.put("orders.csv.gz", gzip.compress(HEADER.encode() + b"O1,C1,2024-01-01,1.00,completed\n"))
    code, report = run_pipeline(project.write_config(paths=uri), db_url, through="stage")
    out, err = capsys.readouterr()
    assert code == EXIT_PASSED, report["errors"]
    assert query(db_url, "SELECT order_id, file_sha256 IS NOT NULL FROM stg.orders") == [("O1", True)]
    assert leaked(project.root, report, out, err) == []
    dump = query(db_url, "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM meta.runs) AS t"
                         " UNION ALL SELECT string_agg(t::text, ' ') FROM raw.ingested_files AS t"
                         " UNION ALL SELECT string_agg(t::text, ' ') FROM meta.run_stages AS t")
    assert dump and all(row[0] for row in dump) and SECRET not in str(dump)
