"""Remember what reading a local source file found, so a daily run does not hash the history.

A run describes every named file before any data work (sha256, line count, header:
ingest.describe_source), which reads every byte: at 10M orders of history that is 600 MB
per run to add one day. A local file whose path, device, inode, size and modification time
(in nanoseconds) are those of a file described before is not read again; any change to one
of them (any write changes the modification time) reads it again. S3 objects are always
read. --full-refresh reads every file. The cache is artifacts/cache/sources.json; deleting
it is always safe.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from scripts import objectstore
from scripts.paths import ARTIFACTS

CACHE = ARTIFACTS / "cache" / "sources.json"


def _key(source_file: Any) -> str | None:
    """The file's identity and state, and how the config reads it (its header depends on that)."""
    path = source_file.path
    if objectstore.is_s3(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None  # describe_source reports it
    return json.dumps([path, os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                       source_file.source_name, source_file.encoding, source_file.delimiter, source_file.quote,
                       source_file.columns])


def describe_all(files: list[Any], describe: Callable[[Any], dict[str, Any]], use_cache: bool) -> list[dict[str, Any]]:
    """``describe(file)`` for every file, from the cache where the file did not change."""
    try:
        cached = json.loads(CACHE.read_text(encoding="utf-8")) if use_cache else {}
    except (OSError, ValueError):
        cached = {}
    found, described = {}, []
    for source_file in files:
        key = _key(source_file)
        entry = cached.get(key) if key else None
        if entry is None:
            entry = describe(source_file)
        if key:
            found[key] = entry
        described.append(dict(entry))
    try:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        temporary = CACHE.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(found), encoding="utf-8")
        temporary.replace(CACHE)  # atomic: a concurrent run reads the old file or this one
    except OSError:
        pass  # a read-only checkout: the next run reads the files again
    return described
