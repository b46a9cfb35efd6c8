"""A pipeline run's state, as the stages fill it in."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from scripts.config import PipelineConfig
from scripts.pipeline import versions
from scripts.pipeline.stages import GATE_LEVELS


@dataclass
class Run:
    config: PipelineConfig
    run_id: str
    conn: psycopg.Connection
    out_dir: Path
    warn_error: bool = False
    stages: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # level -> checks
    splits: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] | None = None  # set by the profile stage
    feature_version: str | None = None  # set when the registry stage records it
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)  # what the version is derived from
    context: dict[str, Any] = field(default_factory=dict)  # what the templates see (pipeline/context.py)
    rendered: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # stage -> (file, SQL)
    full_refresh: bool = False  # --full-refresh
    plan: versions.Plan | None = None  # incremental or full: decided after migrations
    database_url: str = ""  # where conn goes: a stage run beside another opens a second connection
    stopped: str | None = None  # of two stages run at once that failed, the one whose error was raised

    @property
    def settings(self) -> dict[str, str]:
        """What every stage's SQL may read with current_setting('raw_to_ready.*')."""
        return {"run_id": self.run_id, "pipeline": self.config.name, "feature_version": versions.feature_version(self.hashes),
                **(self.plan.settings if self.plan else {})}

    @property
    def batch_file_sha256s(self) -> list[str]:
        return [s["sha256"] for s in self.sources]

    @property
    def checks(self) -> list[dict[str, Any]]:
        return [check for level in GATE_LEVELS.values() for check in self.results.get(level, [])]


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
