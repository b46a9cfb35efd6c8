"""Where a source file's bytes come from, and how they become the text COPY reads.

Two kinds of location: a local path, and an object in S3-compatible storage
(``s3://bucket/key``). Either is read as a stream of 1 MiB chunks, never whole and never
copied to disk, so memory stays flat whatever the file's size.

What is stored is not always what COPY can read, so the chunks pass through a pipeline:

    stored bytes ─▶ sha256 ─▶ gunzip (magic 1f 8b) ─▶ UTF-16 ─▶ UTF-8 (BOM FF FE / FE FF) ─▶ COPY

The sha256 is over the bytes as stored: that is the file's identity (idempotency), whatever
the compression. Every step is decided by the content, not by the file's name. Python
decompresses and transcodes bytes; it never splits or parses a data row.

S3 credentials, region and endpoint come only from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL), never from
``~/.aws`` files nor from a metadata service, and no message carries a secret.
"""

from __future__ import annotations

import codecs
import contextlib
import fnmatch
import functools
import glob
import hashlib
import itertools
import os
import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from scripts.console import scrub_environment
from scripts.errors import SourceError

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = {codecs.BOM_UTF16_LE: "UTF-16LE", codecs.BOM_UTF16_BE: "UTF-16BE"}

# PostgreSQL's client-only encodings, whose multi-byte characters may hold bytes that look
# like ASCII (a backslash, a tab): escaping bytes for COPY's text format would break them.
ASCII_UNSAFE_ENCODINGS = {"SJIS", "SHIFTJIS", "BIG5", "GBK", "GB18030", "UHC", "JOHAB", "WIN932", "WIN936", "WIN949",
                          "WIN950"}

ENV_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
             "AWS_ENDPOINT_URL")
SECRET_NAMES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
CREDENTIALS_HINT = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)"
REFUSED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                 "TokenRefreshRequired", "AllAccessDisabled", "403"}


class BadLocation(SourceError):
    """A config names an S3 location that holds no object: a bucket that does not exist, or a
    URI without a key. A config problem: config.expand_paths makes it a ConfigError (exit 2)."""

    def __init__(self, uri: str, problem: str) -> None:
        self.uri, self.problem = uri, _scrub(problem)
        super().__init__(f"{uri}: {self.problem}")


# --- names -----------------------------------------------------------------------------------

def is_s3(name: str) -> bool:
    return name.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a URI without a key names no object."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise BadLocation(uri, "an S3 source names an object or a pattern of keys, e.g. s3://bucket/exports/*.csv")
    return bucket, key


# --- the S3 client ---------------------------------------------------------------------------

def s3_client(uri: str) -> Any:
    """A boto3 S3 client configured from the environment only (one per distinct setting)."""
    settings = [os.environ.get(name) or None for name in ENV_NAMES]
    if bool(settings[0]) != bool(settings[1]):
        raise SourceError(f"{uri}: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or neither, for a public "
                          "bucket)")
    return _client(*settings)


@functools.lru_cache(maxsize=4)
def _client(key_id: str | None, secret: str | None, token: str | None, region: str | None,
            endpoint: str | None) -> Any:
    import boto3  # imported on first use: local files need no AWS library
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.configprovider import ConstantProvider

    core = botocore.session.Session()
    # Never a config or credentials file (~/.aws), whatever AWS_PROFILE or AWS_CONFIG_FILE say.
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    core.get_component("config_store").set_config_provider("profile", ConstantProvider(None))
    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 3},
                               "connect_timeout": 10, "read_timeout": 60}
    if endpoint:
        # S3-compatible servers (MinIO, Ceph, moto) serve path-style URLs; few serve bucket subdomains
        options["s3"] = {"addressing_style": "path"}
    if not key_id:
        # No credentials: anonymous requests (a public bucket), never the default provider
        # chain, which would read files or ask an instance metadata service.
        options["signature_version"] = UNSIGNED
    session = boto3.session.Session(botocore_session=core)
    return session.client(
        "s3", region_name=region or "us-east-1", endpoint_url=endpoint,
        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(**options),
    )


def _scrub(message: str) -> str:
    """The message without any secret from the environment, however it got there."""
    return scrub_environment(message, SECRET_NAMES)


def _endpoint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return f" at {endpoint}" if endpoint else ""


def s3_failure(uri: str, exc: Exception) -> SourceError:
    """The exception to raise for a failed S3 request: what happened to ``uri``, no secret."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        message = error.get("Message") or ""
        detail = f"{code}: {message}" if message else code
        if code == "NoSuchBucket":
            return _no_such_bucket(uri)
        if code in ("NoSuchKey", "404", "NotFound"):
            return SourceError(_scrub(f"{uri}: no such object{_endpoint()} (deleted after the config was read?)"))
        if code in ("PreconditionFailed", "412"):
            return SourceError(_scrub(f"{uri}: the object changed while it was being read (its ETag is not "
                                      "the one read before): run again"))
        if code in REFUSED_CODES:
            return SourceError(_scrub(f"{uri}: access refused{_endpoint()} ({detail}): {CREDENTIALS_HINT}"))
        return SourceError(_scrub(f"{uri}: S3 request failed{_endpoint()} ({detail})"))
    if isinstance(exc, EndpointConnectionError):
        return SourceError(_scrub(f"{uri}: cannot reach the S3 endpoint{_endpoint()}: check AWS_ENDPOINT_URL "
                                  "and AWS_DEFAULT_REGION"))
    return SourceError(_scrub(f"{uri}: S3 request failed{_endpoint()}: {exc}"))


def _no_such_bucket(uri: str) -> BadLocation:
    return BadLocation(uri, f"no such bucket {split_s3(uri)[0]!r}{_endpoint()}")


def _s3_call(uri: str, method: str, **params: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(s3_client(uri), method)(**params)
    except (BotoCoreError, ClientError) as exc:
        raise s3_failure(uri, exc) from None


def expand_s3(pattern: str) -> list[str]:
    """The objects one ``s3://bucket/...`` entry names, sorted by key.

    A key with glob magic (``*``, ``?``, ``[...]``) is matched fnmatch-style against every key
    under its literal prefix (``*`` also matches ``/``); a plain key names one object. Returns
    [] when nothing matches; raises BadLocation for a missing bucket.
    """
    bucket, key_pattern = split_s3(pattern)
    if not glob.has_magic(key_pattern):
        if _missing(pattern, "head_object", Bucket=bucket, Key=key_pattern):
            if _missing(pattern, "head_bucket", Bucket=bucket):
                raise _no_such_bucket(pattern)
            return []
        return [pattern]
    prefix = key_pattern[: re.search(r"[*?\[]", key_pattern).start()]
    keys = []
    for page in _list_pages(pattern, bucket, prefix):
        keys += [o["Key"] for o in page.get("Contents", [])
                 if not o["Key"].endswith("/") and fnmatch.fnmatchcase(o["Key"], key_pattern)]
    return [f"s3://{bucket}/{key}" for key in sorted(keys)]


def _missing(uri: str, method: str, **params: Any) -> bool:
    """Whether a HEAD request says 404; any other failure raises."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        getattr(s3_client(uri), method)(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            return True
        raise s3_failure(uri, exc) from None
    except BotoCoreError as exc:
        raise s3_failure(uri, exc) from None
    return False


def _list_pages(uri: str, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield from s3_client(uri).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    except (BotoCoreError, ClientError) as exc:
        raise s3_failure(uri, exc) from None


# --- reading stored bytes ---------------------------------------------------------------------

class Stored:
    """An open stored file: ``read(size)`` and, for an S3 object, the ETag that was read."""

    def __init__(self, name: str, handle: BinaryIO | Any, etag: str | None) -> None:
        self.name, self._handle, self.etag = name, handle, etag

    def read(self, size: int) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read: {exc.strerror or exc}") from None


class StoredObject(Stored):
    """An S3 object's body: a connection that breaks mid-object is a SourceError too."""

    def read(self, size: int) -> bytes:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        try:
            return self._handle.read(size)
        except (BotoCoreError, HTTPError, OSError) as exc:
            raise s3_failure(self.name, exc) from None


@contextlib.contextmanager
def open_stored(name: str, etag: str | None = None) -> Iterator[Stored]:
    """Open a local path or an ``s3://`` object for streaming.

    ``etag``: read the object only if it still has this ETag (If-Match): a second pass over
    an object fails cleanly when the object was replaced after the first one.
    """
    if is_s3(name):
        bucket, key = split_s3(name)
        response = _s3_call(name, "get_object", Bucket=bucket, Key=key, **({"IfMatch": etag} if etag else {}))
        body = response["Body"]
        try:
            yield StoredObject(name, body, response.get("ETag"))
        finally:
            body.close()
        return
    try:
        handle = open(name, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except OSError as exc:
        raise SourceError(f"{name}: cannot read: {exc.strerror or exc}") from None
    with handle:
        yield Stored(name, handle, None)


# --- from stored bytes to the text COPY reads ----------------------------------------------------

class Content:
    """The text of a stored file as COPY should read it, streamed in chunks.

    Iterate ``chunks()`` once. While it streams, the stored bytes are hashed; when it is
    done, ``sha256`` and ``stored_bytes`` describe the file as stored, and ``compression``,
    ``transcoded_from`` and ``has_bom`` say what was done to it.

    ``escape_text``: also escape the content for COPY's text format, one line per row
    (``\\`` ``\\t`` ``\\r`` become escapes, so only a line feed ends a row). Used to land each
    line whole when only some of a file's columns are kept.
    """

    def __init__(self, stored: Stored, escape_text: bool = False) -> None:
        self.name = stored.name
        self._stored = stored
        self._escape = escape_text
        self._digest = hashlib.sha256()
        self.stored_bytes = 0
        self.compression: str | None = None
        self.transcoded_from: str | None = None
        self.has_bom = False
        self.lines_done = 0  # line feeds in the content streamed so far (for error messages)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        head, stored = _peek(self._stored_bytes(), len(GZIP_MAGIC))
        content = stored
        if head.startswith(GZIP_MAGIC):
            self.compression = "gzip"
            content = self._gunzip(stored)
        head, content = _peek(content, 4)
        bom = head[:2]
        if bom in UTF16_BOMS:
            self.transcoded_from, self.has_bom = UTF16_BOMS[bom], True
            content = self._transcode(content, "utf-16")  # the codec reads the BOM and drops it
        elif head.startswith(UTF8_BOM):
            self.has_bom = True
            content = _drop(content, len(UTF8_BOM))
        for chunk in content:
            self.lines_done += chunk.count(b"\n")
            yield _escape_text(chunk) if self._escape else chunk

    def _stored_bytes(self) -> Iterator[bytes]:
        while chunk := self._stored.read(CHUNK):
            self._digest.update(chunk)
            self.stored_bytes += len(chunk)
            yield chunk

    def _gunzip(self, stored: Iterator[bytes]) -> Iterator[bytes]:
        """Decompress gzip, at most 1 MiB out per step; concatenated members follow each other."""
        inflater, fed = zlib.decompressobj(GZIP_WBITS), False
        try:
            for data in stored:
                while data:
                    out = inflater.decompress(data, CHUNK)
                    fed = True
                    if out:
                        yield out
                    if inflater.eof:  # another gzip member may follow (gzip a b > ab.gz)
                        data, inflater, fed = inflater.unused_data, zlib.decompressobj(GZIP_WBITS), False
                    else:
                        data = inflater.unconsumed_tail
            if tail := inflater.flush():
                yield tail
        except zlib.error as exc:
            raise SourceError(f"{self.name}: not valid gzip after {self.stored_bytes:,} stored bytes: {exc}") from None
        if fed and not inflater.eof:
            raise SourceError(f"{self.name}: the gzip stream is truncated (the file ends before the gzip trailer)")

    def _transcode(self, content: Iterator[bytes], codec: str) -> Iterator[bytes]:
        decoder = codecs.getincrementaldecoder(codec)(errors="strict")
        try:
            for chunk in content:
                if text := decoder.decode(chunk):
                    yield text.encode("utf-8")
            if text := decoder.decode(b"", final=True):
                yield text.encode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.name}: not valid {self.transcoded_from} after line {self.lines_done + 1:,} "
                              f"of the content: {exc.reason}") from None


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes (fewer at the end of the stream) and the unchanged stream."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= size:
            break
    return head, itertools.chain([head] if head else [], chunks)


def _drop(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The stream without its first ``size`` bytes (they are in the first chunk: see _peek)."""
    first = next(chunks, b"")
    if first[size:]:
        yield first[size:]
    yield from chunks


def _escape_text(chunk: bytes) -> bytes:
    r"""Escape bytes for COPY's text format: a backslash, a tab (the delimiter) and a carriage
    return become \\ \t \r, so each line lands whole, byte for byte, as one text value."""
    return chunk.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def text_escape_safe(encoding: str) -> bool:
    """Whether ``encoding`` keeps ASCII bytes for ASCII characters only (see _escape_text)."""
    return re.sub(r"[-_ ]", "", encoding.upper()) not in ASCII_UNSAFE_ENCODINGS
