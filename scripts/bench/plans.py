"""The statements of a profiled run (scripts/db/execute.py, RAW_TO_READY_PROFILE): each stage's
statements by time, and the slowest ones with their EXPLAIN (ANALYZE, BUFFERS) plans, condensed
to one line per plan node (timing off: the rows and buffers of each node, not its time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

# a node's buffers, as EXPLAIN (FORMAT JSON) names them, and how the condensed line shows them
BUFFERS = (("Shared Hit Blocks", "hit"), ("Shared Read Blocks", "read"), ("Shared Dirtied Blocks", "dirtied"),
           ("Shared Written Blocks", "written"), ("Temp Read Blocks", "temp read"),
           ("Temp Written Blocks", "temp written"))


def load(path: Path) -> list[dict[str, Any]]:
    """The statements in run order, each with its stage (the SQL folder's stage name)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    folders = {path.name: path.parent.name for path in SQL_DIR.glob("[0-9]*/*.sql")}
    for record in records:
        # a stage's folder is its run-order number and its name: 50_features
        folder = folders.get(Path(record["file"]).name, "")
        record["stage"] = folder.split("_", 1)[-1] or record["file"]
    return records


def first_line(statement: str) -> str:
    line = " ".join(statement.split())
    return line if len(line) <= 90 else line[:87] + "..."


def node_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per plan node, children indented below it."""
    what = node["Node Type"]
    for key, shown in (("Strategy", "{}"), ("Relation Name", "on {}"), ("Index Name", "using {}"),
                       ("Sort Method", "sort: {}"), ("Workers Launched", "workers {}")):
        if key in node and node[key] not in ("Plain",):
            what += " " + shown.format(node[key])
    if "Schema" in node and "Relation Name" in node:
        what = what.replace(f"on {node['Relation Name']}", f"on {node['Schema']}.{node['Relation Name']}")
    rows = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    buffers = ", ".join(f"{shown} {node[key]:,}" for key, shown in BUFFERS if node.get(key))
    line = f"{'  ' * depth}{what}  rows {int(rows):,}" + (f"  buffers: {buffers}" if buffers else "")
    lines = [line]
    for child in node.get("Plans", []):
        lines += node_lines(child, depth + 1)
    return lines


def slowest(records: list[dict[str, Any]], count: int = 5) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["seconds"], reverse=True)[:count]


def summary(records: list[dict[str, Any]], count: int = 5, max_nodes: int = 30) -> list[str]:
    """The lines the bench prints: the slowest statements, each with its condensed plan."""
    if not records:
        return []
    lines = [f"the {count} slowest statements of the run (each run alone; EXPLAIN (ANALYZE, BUFFERS), "
             "timing off: rows and 8 kB buffers per node):"]
    for record in slowest(records, count):
        lines.append(f"  {record['seconds']:6.2f} s  [{record['stage']}] sql/{record['file']}:{record['line']}  "
                     f"{first_line(record['statement'])}")
        plan = record.get("plan")
        if plan:
            tree = node_lines(plan["Plan"])
            lines += [f"      {line}" for line in tree[:max_nodes]]
            if len(tree) > max_nodes:
                lines.append(f"      ... {len(tree) - max_nodes} more nodes")
        else:
            lines.append("      (not a statement EXPLAIN runs: timed only)")
    return lines


def by_stage(records: list[dict[str, Any]], per_stage: int = 3) -> list[str]:
    """Each stage's statements by time, the slowest few named."""
    stages: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        stages.setdefault(record["stage"], []).append(record)
    lines = ["where each stage's time goes (its slowest statements, then the rest summed):"]
    for stage, rows in stages.items():
        rows = sorted(rows, key=lambda r: r["seconds"], reverse=True)
        lines.append(f"  {stage:<9} {sum(r['seconds'] for r in rows):6.2f} s in {len(rows)} statements")
        lines += [f"    {r['seconds']:6.2f} s  {r['file'].split('/')[-1]}:{r['line']}  {first_line(r['statement'])[:70]}"
                  for r in rows[:per_stage]]
        if len(rows) > per_stage:
            lines.append(f"    {sum(r['seconds'] for r in rows[per_stage:]):6.2f} s  the other {len(rows) - per_stage}")
    return lines
