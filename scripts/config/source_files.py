"""The sources: section of configs/pipeline.yaml (which files, how to read them, through
which source model) and the columns: mapping; and the rule for paths in a config: a config
in a folder named ``configs`` reads paths relative to the folder around it, any other
config relative to its own folder (project_root).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts import objectstore
from scripts.config.fields import CANONICAL_COLUMNS, unknown_key
from scripts.errors import ConfigError


@dataclass(frozen=True)
class SourceFile:
    source_name: str
    path: str  # relative to the working directory when under it (else absolute), or an s3:// URI
    encoding: str
    delimiter: str
    quote: str
    model: str | None = None  # the source model's SQL file (None: the default model)
    columns: list[str] | None = None  # the header names to land (None: every column)
    lines_model: str | None = None  # the SELECT that returns the source's order lines (None: no lines)


def project_root(config_path: Path) -> Path:
    """The folder a config's relative paths are relative to.

    A config kept in a folder named ``configs`` belongs to the project around that folder
    (``configs/pipeline.yaml`` -> the repository root), so a project copied elsewhere, like
    the original from-raw-to-ready project's, runs from anywhere; any other config is read relative to its own folder.
    """
    folder = config_path.resolve().parent
    return folder.parent if folder.name == "configs" else folder


def missing(config_path: Path, name: str, what: str = "file") -> str:
    """What a path error says: the path as written, the absolute path it was resolved to
    and the folder it was resolved against (and why that folder: project_root)."""
    root = project_root(config_path)
    absolute = Path(name).expanduser()
    if absolute.is_absolute():
        return f"no such {what}: {absolute}"
    absolute = root / absolute
    why = ("the folder around the configs/ folder the config lies in" if root != config_path.resolve().parent
           else "the config's own folder")
    return (f"no such {what}: {name} (resolved to {absolute.resolve()}, against {root}, {why}; "
            "relative paths never depend on the directory you run from)")


def resolve(root: Path, name: str) -> str:
    """``name`` from a config, as the runner shows and stores it: relative to the working
    directory when it lies under it, else absolute; URIs (s3://...) as they are."""
    if "://" in name:
        return name
    path = Path(name).expanduser()
    path = path if path.is_absolute() else root / path
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


SOURCE_KEYS = {"name", "paths", "path", "type", "model", "lines_model", "encoding", "delimiter", "quote", "columns"}


def expand_paths(root: Path, pattern: str) -> list[str]:
    """The files one ``paths`` entry names, sorted: a path, a glob over paths, or the
    objects an ``s3://bucket/key`` names (a key, or a glob over keys)."""

    if objectstore.is_s3(pattern):
        try:
            return objectstore.expand_s3(pattern)
        except objectstore.BadLocation as exc:  # a missing bucket: the config is wrong (exit 2)
            raise ConfigError(exc.uri, "", exc.problem) from None  # the caller adds the config's file and key
    full = pattern if Path(pattern).expanduser().is_absolute() else str(root / pattern)
    full = str(Path(full).expanduser())
    matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
    return [resolve(root, match) for match in matches if Path(match).is_file()]


def parse_sources(path: Path, root: Path, sources: Any) -> list[SourceFile]:
    if not isinstance(sources, list) or not sources:
        raise ConfigError(path, "sources", "must be a non-empty list of {name, paths}")
    files: list[SourceFile] = []
    seen: set[str] = set()
    names: set[str] = set()
    for i, source in enumerate(sources):
        key = f"sources[{i}]"
        if not isinstance(source, dict):
            raise ConfigError(path, key, "must be a mapping with name and paths")
        unknown = sorted(set(source) - SOURCE_KEYS)
        if unknown:
            raise unknown_key(path, f"{key}.{unknown[0]}", SOURCE_KEYS)
        name = source.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(path, f"{key}.name", "must be a non-empty string")
        if name in names:
            raise ConfigError(path, f"{key}.name", f"another source is named {name!r} too")
        names.add(name)
        if str(source.get("type", "csv")).lower() != "csv":
            raise ConfigError(path, f"{key}.type", f"only csv sources exist, got {source.get('type')!r}")
        if "paths" in source and "path" in source:
            raise ConfigError(path, f"{key}.path", "give paths or path (the original project's name), not both")
        patterns = source.get("paths", source.get("path"))
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise ConfigError(path, f"{key}.paths", "must be a file path, a glob, or a list of them")
        encoding = source.get("encoding", "UTF8")
        delimiter = source.get("delimiter", ",")
        quote = source.get("quote", '"')
        for option, value in (("delimiter", delimiter), ("quote", quote)):
            if not isinstance(value, str) or len(value) != 1:
                raise ConfigError(path, f"{key}.{option}", "must be a single character")
        if not isinstance(encoding, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", encoding):
            raise ConfigError(path, f"{key}.encoding", "must be a PostgreSQL encoding name such as UTF8 or LATIN1")
        model, lines_model = (model_file(path, root, f"{key}.{option}", source.get(option))
                              for option in ("model", "lines_model"))
        keep = source.get("columns")  # land only these header columns (a file wider than a table may be)
        if keep is not None:

            if not isinstance(keep, list) or not keep or not all(isinstance(c, str) and c for c in keep) \
                    or len(set(keep)) != len(keep):
                raise ConfigError(path, f"{key}.columns", "must be a non-empty list of distinct header names to land")
            if not objectstore.text_escape_safe(encoding):
                raise ConfigError(path, f"{key}.columns", f"cannot be used with encoding {encoding}, whose characters "
                                  "may hold ASCII bytes: convert the file to UTF-8, or land every column")
        for pattern in patterns:
            try:
                matches = expand_paths(root, pattern)
            except ConfigError as exc:  # an S3 location that holds nothing: say which config names it
                raise ConfigError(path, f"{key}.paths", str(exc)) from None
            if not matches:
                raise ConfigError(path, f"{key}.paths", missing(path, pattern))
            for match in matches:
                if match not in seen:
                    seen.add(match)
                    files.append(SourceFile(name, match, encoding, delimiter, quote, model, keep, lines_model))
    return files


def model_file(path: Path, root: Path, key: str, model: Any) -> str | None:
    """A source's model (or lines model) file, checked to exist; None when not given."""
    if model is None:
        return None
    if not isinstance(model, str) or not model.endswith(".sql"):
        raise ConfigError(path, key, "must be the path of a source model's .sql file")
    if not Path(resolve(root, model)).is_file():
        raise ConfigError(path, key, missing(path, model))
    return resolve(root, model)


def parse_columns(path: Path, columns: Any, attributes: dict[str, str] | None = None) -> dict[str, str | None]:
    """canonical column -> source column, for the default model; staging.attributes map
    the same way (each defaults to a source column of its own name)."""
    columns = columns or {}
    if not isinstance(columns, dict):
        raise ConfigError(path, "columns", "must map canonical columns to source columns")
    known = {**CANONICAL_COLUMNS, **{name: True for name in attributes or {}}}
    unknown = sorted(set(columns) - set(known))
    if unknown:
        raise ConfigError(path, f"columns.{unknown[0]}", f"unknown canonical column (known: {', '.join(known)})")
    mapped: dict[str, str | None] = {}
    for canonical, required in known.items():
        source = columns.get(canonical, canonical)
        if source is None and required:
            raise ConfigError(path, f"columns.{canonical}", "is required: name the source column")
        if source is not None and (not isinstance(source, str) or not source):
            raise ConfigError(path, f"columns.{canonical}", "must be the source column's name (or null for status)")
        mapped[canonical] = source
    return mapped


