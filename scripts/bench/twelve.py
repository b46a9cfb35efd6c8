"""`make bench`'s twelve-feature measurement: what the features stage costs with the defined
features of scripts/bench/twelve_features.yaml beside the built-ins, against the built-ins
alone, and against DuckDB computing the same columns (scripts/bench/duckdb_defined.py).

scripts/bench/stages.py runs the pipeline twice on the same file, each in its own throwaway
database: with the bench config as it is, then with the definitions merged into its features:
section. This module holds what the second run adds: the definitions, the checksum of each
defined column in PostgreSQL (its non-NULL values and their sum to 6 places, on
feats.customer_features), the agreement with DuckDB's, and the lines and figures reported.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from scripts.bench import duckdb_defined
from scripts.paths import REPO_ROOT

DEFINITIONS = Path(__file__).with_name("twelve_features.yaml")
GOAL = 2.0  # the features stage with the twelve, at most this many times the built-ins alone
QUOTIENT_TOLERANCE = Decimal("0.000001")  # a sum of quotients: PostgreSQL numeric, DuckDB DOUBLE


def definitions() -> list[dict[str, Any]]:
    """The `define:` list of scripts/bench/twelve_features.yaml."""
    raw = yaml.safe_load(DEFINITIONS.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or set(raw) != {"define"} or not isinstance(raw["define"], list):
        raise SystemExit(f"{DEFINITIONS}: must be a mapping with define: (a list of definitions) only")
    return raw["define"]


def features_section(bench_features: dict[str, Any]) -> dict[str, Any]:
    """The bench config's features: section with the definitions merged in."""
    return {**bench_features, "define": definitions()}


def pg_checksums(url: str, define: list[dict[str, Any]]) -> dict[str, Any]:
    """The published feature rows and, per defined column, its non-NULL values and their sum
    rounded to 6 places."""
    cols = duckdb_defined.columns(define)
    parts = [sql.SQL("count({c}), round(sum({c})::numeric, 6)").format(c=sql.Identifier(c["name"])) for c in cols]
    query = sql.SQL("SELECT count(*), {} FROM feats.customer_features").format(sql.SQL(", ").join(parts))
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return {"rows": row[0], "checksums": {
        c["name"]: {"count": int(row[1 + 2 * i]), "sum": None if row[2 + 2 * i] is None else str(row[2 + 2 * i]),
                    "exact": c["exact"]}
        for i, c in enumerate(cols)}}


def differences(pg: dict[str, Any], duck: dict[str, Any]) -> list[str]:
    """What differs between the two sides' checksums: exact columns to the last place, sums of
    quotients (avg, ratio) by more than QUOTIENT_TOLERANCE."""
    found = []
    if pg["rows"] != duck["rows"]:
        found.append(f"feature rows: PostgreSQL {pg['rows']:,}, DuckDB {duck['rows']:,}")
    for name, mine in pg["checksums"].items():
        theirs = duck["checksums"].get(name)
        if theirs is None:
            found.append(f"{name}: not computed by DuckDB")
            continue
        if mine["count"] != theirs["count"] or (mine["sum"] is None) != (theirs["sum"] is None):
            same = False
        elif mine["sum"] is None:
            same = True
        else:
            gap = abs(Decimal(mine["sum"]) - Decimal(theirs["sum"]))
            same = gap == 0 if mine["exact"] else gap <= QUOTIENT_TOLERANCE
        if not same:
            found.append(f"{name}: PostgreSQL {mine['count']:,} values summing to {mine['sum']}, "
                         f"DuckDB {theirs['count']:,} summing to {theirs['sum']}")
    return found


def features_seconds(report: dict[str, Any]) -> float | None:
    return next((s["seconds"] for s in report.get("stages", []) if s["stage"] == "features"), None)


def summary(builtins: dict[str, Any], twelve: dict[str, Any], duck: dict[str, Any] | None,
            duck_note: str) -> tuple[list[str], dict[str, Any]]:
    """The printed lines and the JSON figures of the measurement. `builtins` and `twelve` are
    the two runs' reports (the second with its checksums); `duck` DuckDB's result, or None
    (then `duck_note` says why)."""
    columns = [c["name"] for c in duckdb_defined.columns(definitions())]
    alone, with_twelve = features_seconds(builtins), features_seconds(twelve)
    ratio = with_twelve / alone if alone and with_twelve else None
    lines = [f"twelve defined features ({DEFINITIONS.name}, {len(columns)} columns: {', '.join(columns)})"]
    if twelve["exit_code"] != 0 or with_twelve is None:
        lines.append(f"the run with the twelve {twelve['status']}, exit {twelve['exit_code']}: no measurement")
    else:
        versus = ""
        if duck:
            versus = (f"; DuckDB computing the twelve {duck['features_seconds']:.2f} s; PostgreSQL / DuckDB for the"
                      f" twelve = {with_twelve / duck['features_seconds']:.1f}x")
        lines.append(f"features stage: built-ins alone {alone:.2f} s, with the twelve {with_twelve:.2f} s"
                     f" (Y/X = {ratio:.2f}, goal <= {GOAL:g}x){versus or f'; DuckDB: {duck_note}'}")
    lines.append(f"wall time with start-up: built-ins alone {builtins['wall_seconds']:.2f} s,"
                 f" with the twelve {twelve['wall_seconds']:.2f} s")
    before = {s["stage"]: s["seconds"] for s in builtins.get("stages", [])}
    lines.append("every stage, built-ins alone -> with the twelve (s): " + ", ".join(
        f"{s['stage']} {before[s['stage']]:.2f} -> {s['seconds']:.2f}"
        for s in twelve.get("stages", []) if before.get(s["stage"]) is not None and s["seconds"] is not None))
    differing: list[str] = []
    if duck:
        lines.append(f"DuckDB: the built-ins and the twelve from its staged orders in {duck['features_seconds']:.2f} s"
                     f" (staging the file first: {duck['load_seconds']:.2f} s, not counted)")
        if "checksums" in twelve:
            differing = differences(twelve["checksums"], duck)
            lines.append(("the twelve agree" if not differing else "the twelve DIFFER")
                         + f" with DuckDB ({twelve['checksums']['rows']:,} rows; per column the non-NULL values and"
                         " their sum to 6 places, sums of quotients within 1e-6)"
                         + "".join(f"\n  DIFFERS {d}" for d in differing))
    figures = {
        "definitions": str(DEFINITIONS.relative_to(REPO_ROOT)), "columns": columns,
        "features_seconds_builtins": alone, "features_seconds_twelve": with_twelve, "ratio": ratio, "goal": GOAL,
        "wall_seconds_builtins": builtins["wall_seconds"], "wall_seconds_twelve": twelve["wall_seconds"],
        "exit_code": twelve["exit_code"], "stages": twelve.get("stages", []),
        "runner_peak_rss_mib": twelve.get("runner_peak_rss_mib"),
        "postgres": twelve.get("checksums"),
        "duckdb": duck, "duckdb_note": None if duck else duck_note,
        "postgres_over_duckdb": with_twelve / duck["features_seconds"] if duck and with_twelve else None,
        "agree": (not differing) if duck and "checksums" in twelve else None, "differing": differing,
    }
    return lines, figures
