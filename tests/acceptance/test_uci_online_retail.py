"""The real UCI Online Retail invoice lines through the bundled source model, end to end.

Contract under test (configs/uci_online_retail.yaml, sql/sources/uci_online_retail.sql,
configs/uci_online_retail_expectations.yaml):
  - each CSV data line is a record; records with a blank CustomerID are quarantined by the
    check `non_null.CustomerID` (action quarantine): one meta.quarantine row per offending
    record, exact repeats included; the run goes on (exit 0);
  - exact repeats (identical in every field) are collapsed to one before summing;
  - 'A...' invoices (bad-debt adjustments) are not orders;
  - one stg.orders row per remaining InvoiceNo: customer_id without the trailing '.0',
    status 'cancelled' for 'C...' else 'completed', amount = Σ Quantity × UnitPrice over the
    kept lines rounded half away from zero to 2 places, order_at = the earliest InvoiceDate
    read as naive Europe/London time; lineage = the order's earliest line in the batch;
  - features leave cancelled orders out (features.exclude_statuses: [cancelled]).

Every expected value is computed here, independently of the pipeline: Python's csv module
over the same files, Decimal arithmetic, zoneinfo. The by-day counts are cross-checked
against SOURCE.md's own independent counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import yaml

from scripts.run import EXIT_PASSED, run_pipeline
from tests.helpers import REPO_ROOT, UCI_DIR, query

UTC = dt.timezone.utc
LONDON = ZoneInfo("Europe/London")
DAY = dt.timedelta(days=1)
CENT = Decimal("0.01")
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
CHECK_ID = "non_null.CustomerID"

BUNDLED_CONFIG = REPO_ROOT / "configs" / "uci_online_retail.yaml"
BUNDLED_DIR = REPO_ROOT / "data" / "uci_online_retail"
MODEL = REPO_ROOT / "sql" / "sources" / "uci_online_retail.sql"
LINES_MODEL = REPO_ROOT / "sql" / "sources" / "uci_online_retail_lines.sql"
EXPECTATIONS = REPO_ROOT / "configs" / "uci_online_retail_expectations.yaml"


# --- the independent computation ------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    file: Path
    sha256: str
    file_index: int  # position of the file in the batch (config order, each glob sorted)
    line_number: int  # physical line the record starts on (header = line 1)
    row: tuple[str, ...]

    @property
    def position(self) -> tuple[int, int]:
        return (self.file_index, self.line_number)

    def get(self, column: str) -> str:
        return self.row[COLUMNS.index(column)]


@dataclass
class ExpectedOrder:
    order_id: str
    customer_id: str
    status: str
    amount: Decimal
    order_at: dt.datetime
    lines: list[Line] = field(default_factory=list)  # kept lines, repeat copies included
    unique_lines: list[Line] = field(default_factory=list)  # exact repeats collapsed: the staged lines

    @property
    def country(self) -> str:  # staging.attributes: the invoice's first line's
        return self.lines[0].get("Country").strip()


@dataclass
class Expected:
    records: list[Line]
    quarantined: list[Line]
    orders: dict[str, ExpectedOrder]
    dedup_changes_amount: int  # orders whose amount differs when exact repeats are not collapsed


def london_to_utc(text: str) -> dt.datetime:
    naive = dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    return naive.replace(tzinfo=LONDON).astimezone(UTC)


def read_records(files: list[Path]) -> list[Line]:
    records: list[Line] = []
    for index, path in enumerate(files):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            assert next(reader) == COLUMNS, path
            start = reader.line_num + 1
            for row in reader:
                assert len(row) == len(COLUMNS), (path, start)
                records.append(Line(path, sha, index, start, tuple(row)))
                start = reader.line_num + 1
    return records


def compute_expected(files: list[Path]) -> Expected:
    records = read_records(files)
    quarantined = [r for r in records if not r.get("CustomerID").strip()]
    kept_lines: dict[str, list[Line]] = defaultdict(list)
    distinct: dict[str, dict[tuple[str, ...], Line]] = defaultdict(dict)
    for r in records:
        if not r.get("CustomerID").strip():
            continue
        invoice = r.get("InvoiceNo").strip()
        if invoice.startswith("A"):
            continue
        kept_lines[invoice].append(r)
        distinct[invoice].setdefault(r.row, r)  # exact repeats collapse to one
    orders: dict[str, ExpectedOrder] = {}
    dedup_changes = 0
    for invoice, by_content in distinct.items():
        unique_lines = list(by_content.values())
        customers = {line.get("CustomerID").strip() for line in unique_lines}
        assert len(customers) == 1, (invoice, customers)  # SOURCE.md: no invoice has two customers
        customer = customers.pop()
        if customer.endswith(".0"):
            customer = customer[:-2]
        total = sum((Decimal(line.get("Quantity")) * Decimal(line.get("UnitPrice")) for line in unique_lines),
                    Decimal(0))
        with_repeats = sum((Decimal(line.get("Quantity")) * Decimal(line.get("UnitPrice"))
                            for line in kept_lines[invoice]), Decimal(0))
        dedup_changes += with_repeats != total
        orders[invoice] = ExpectedOrder(
            order_id=invoice,
            customer_id=customer,
            status="cancelled" if invoice.startswith("C") else "completed",
            amount=total.quantize(CENT, rounding=ROUND_HALF_UP),  # ROUND_HALF_UP: half away from zero
            order_at=min(london_to_utc(line.get("InvoiceDate")) for line in unique_lines),
            lines=sorted(kept_lines[invoice], key=lambda line: line.position),
            unique_lines=unique_lines,
        )
    return Expected(records, quarantined, orders, dedup_changes)


def brute_force_features(orders: dict[str, ExpectedOrder]) -> dict[tuple[str, dt.datetime], tuple]:
    """(customer, t) -> (orders_7d, revenue_7d, orders_30d, revenue_30d, days_since_last_order),
    over completed orders only, windows inclusive: t - N days <= order_at <= t."""
    by_customer: dict[str, list[ExpectedOrder]] = defaultdict(list)
    for order in orders.values():
        if order.status == "completed":
            by_customer[order.customer_id].append(order)
    features: dict[tuple[str, dt.datetime], tuple] = {}
    for customer, mine in by_customer.items():
        for t in {o.order_at for o in mine}:
            row: list[Any] = []
            for days in (7, 30):
                inside = [o for o in mine if t - days * DAY <= o.order_at <= t]
                row += [len(inside), sum((o.amount for o in inside), Decimal(0))]
            before = [o.order_at for o in mine if o.order_at < t]
            row.append((t - max(before)) // DAY if before else None)
            features[(customer, t)] = tuple(row)
    return features


def brute_force_defined(orders: dict[str, ExpectedOrder]) -> dict[tuple[str, dt.datetime], dict[str, Any]]:
    """The config's own features (features.define of configs/uci_online_retail.yaml), from
    their meaning: over completed orders (cancellations are excluded) unless said otherwise,
    windows t - 30 days <= order_at <= t, the days since the first order strictly before t."""
    completed: dict[str, list[ExpectedOrder]] = defaultdict(list)
    cancelled: dict[str, list[ExpectedOrder]] = defaultdict(list)
    for order in orders.values():
        (completed if order.status == "completed" else cancelled)[order.customer_id].append(order)
    by_country: dict[str, list[ExpectedOrder]] = defaultdict(list)
    for mine in completed.values():
        for order in mine:
            by_country[order.country].append(order)
    rows: dict[tuple[str, dt.datetime], dict[str, Any]] = {}
    for customer, mine in completed.items():
        for t in {o.order_at for o in mine}:
            month = [o.amount for o in mine if t - 30 * DAY <= o.order_at <= t]
            month_lines = [line for o in mine if t - 30 * DAY <= o.order_at <= t for line in o.unique_lines]
            # the row's country: its order's (of several at t, the greatest invoice number's)
            country = max((o for o in mine if o.order_at == t), key=lambda o: o.order_id).country
            ever = [o.amount for o in mine if o.order_at <= t]
            credits = sum(1 for o in cancelled[customer] if t - 30 * DAY <= o.order_at <= t)
            first = min(o.order_at for o in mine)
            rows[(customer, t)] = {
                "basket_avg_30d": sum(month) / len(month), "basket_avg_lifetime": sum(ever) / len(ever),
                "cancellations_30d": credits, "cancelled_share_30d": Decimal(credits) / len(month),
                "largest_order_30d": max(month), "days_as_customer": (t - first) // DAY if first < t else None,
                "distinct_products_30d": len({line.get("StockCode").strip() for line in month_lines}),
                "lines_30d": len(month_lines), "lines_per_order_30d": Decimal(len(month_lines)) / len(month),
                "country_revenue_7d": sum((o.amount for o in by_country[country] if t - 7 * DAY <= o.order_at <= t),
                                          Decimal(0)),
            }
    return rows


def assert_defined_features_match(db_url: str, expected: Expected) -> None:
    oracle = brute_force_defined(expected.orders)
    names = list(next(iter(oracle.values())))
    rows = query(db_url, f"SELECT customer_id, feature_time, {', '.join(names)} FROM feats.customer_features")
    got = {(r[0], r[1]): dict(zip(names, r[2:])) for r in rows}
    assert set(got) == set(oracle)
    assert sum(1 for v in oracle.values() if v["cancellations_30d"]) > 20, "too few rows with credit notes"
    assert sum(1 for v in oracle.values() if v["distinct_products_30d"] < v["lines_30d"]) > 20, "no item bought twice"
    # the lines staged are the invoices' lines, exact repeats collapsed
    assert query(db_url, "SELECT count(*) FROM stg.order_lines") == [
        (sum(len(o.unique_lines) for o in expected.orders.values()),)]
    wrong = []
    for key, want in oracle.items():
        for name, value in want.items():
            actual = got[key][name]
            same = actual == value if not isinstance(value, Decimal) or actual is None else \
                abs(actual - value) <= Decimal("1e-12") * max(Decimal(1), abs(value))
            if not same:
                wrong.append((key, name, actual, value))
    assert not wrong, f"{len(wrong)} defined values differ, e.g. {wrong[:3]}"


# --- what the pipeline wrote ----------------------------------------------------------------


def staged_orders(db_url: str) -> dict[str, dict[str, Any]]:
    rows = query(db_url, """
        SELECT o.order_id, o.customer_id, o.order_at, o.amount, o.status,
               o.file_sha256, o.line_number,
               r.file_sha256, r.line_number, r.payload ->> 'InvoiceNo'
        FROM stg.orders AS o
        LEFT JOIN raw.raw_events AS r ON r.event_id = o.source_event_id
    """)
    staged = {}
    for (order_id, customer, at, amount, status, sha, line, raw_sha, raw_line, raw_invoice) in rows:
        staged[order_id] = {
            "customer_id": customer, "order_at": at, "amount": amount, "status": status,
            "file_sha256": sha, "line_number": line,
            "raw": (raw_sha, raw_line, raw_invoice),
        }
    return staged


def check_entry(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    entries = [c for c in report.get("checks") or [] if c.get("id") == check_id]
    assert len(entries) == 1, f"report has {len(entries)} check entries with id {check_id!r}"
    return entries[0]


# --- the shared assertions ------------------------------------------------------------------


def assert_orders_match(db_url: str, expected: Expected) -> dict[str, dict[str, Any]]:
    staged = staged_orders(db_url)
    assert expected.orders, "the independent computation found no order"
    assert not [k for k in staged if k.startswith("A")], "a bad-debt adjustment was staged as an order"
    missing = sorted(set(expected.orders) - set(staged))
    extra = sorted(set(staged) - set(expected.orders))
    assert (len(staged), missing[:5], extra[:5]) == (len(expected.orders), [], []), \
        f"{len(staged)} staged orders, {len(expected.orders)} expected; missing {missing[:5]}, extra {extra[:5]}"

    wrong: dict[str, list] = defaultdict(list)
    for order_id, exp in expected.orders.items():
        got = staged[order_id]
        for name in ("customer_id", "status", "amount", "order_at"):
            if got[name] != getattr(exp, name):
                wrong[name].append((order_id, got[name], getattr(exp, name)))
        # lineage: the raw event it names is a kept line of this invoice, and the earliest one
        # in the batch (file order, then line; a repeated line's first copy)
        raw_sha, raw_line, raw_invoice = got["raw"]
        if (raw_sha, raw_line) != (got["file_sha256"], got["line_number"]) or (raw_invoice or "").strip() != order_id:
            wrong["source_event_id"].append((order_id, got["raw"], (got["file_sha256"], got["line_number"])))
        by_position = {(line.sha256, line.line_number): line for line in exp.lines}
        lineage = by_position.get((got["file_sha256"], got["line_number"]))
        if lineage is None:
            wrong["lineage not a line of the invoice"].append((order_id, got["file_sha256"][:12], got["line_number"]))
        elif lineage.position != exp.lines[0].position:
            wrong["lineage not the earliest line"].append(
                (order_id, lineage.file.name, lineage.line_number, exp.lines[0].file.name, exp.lines[0].line_number))
    summary = {name: (len(items), items[:3]) for name, items in wrong.items()}
    assert not wrong, f"staged orders differ from the independent computation: {summary}"
    return staged


def assert_quarantine_matches(db_url: str, report: dict[str, Any], expected: Expected) -> None:
    run_id = report["run_id"]
    assert expected.quarantined, "the independent computation found no record to quarantine"
    rows = query(db_url, """
        SELECT r.file_sha256, q.line_number, q.file_path, r.file_path,
               q.payload ->> 'InvoiceNo', q.payload ->> 'CustomerID'
        FROM meta.quarantine AS q
        LEFT JOIN raw.raw_events AS r ON r.event_id = q.event_id
        WHERE q.run_id = %s AND q.check_id = %s
    """, (run_id, CHECK_ID))
    assert len(rows) == len(expected.quarantined)
    assert query(db_url, "SELECT count(*) FROM meta.quarantine WHERE run_id = %s", (run_id,)) == [(len(rows),)], \
        "meta.quarantine holds rows of another check for this run"
    got = Counter((sha, line) for sha, line, *_ in rows)
    want = Counter((r.sha256, r.line_number) for r in expected.quarantined)
    assert got == want
    by_position = {(r.sha256, r.line_number): r for r in expected.quarantined}
    for sha, line, q_path, raw_path, invoice, customer in rows:
        record = by_position[(sha, line)]
        assert q_path == raw_path and Path(q_path).name == record.file.name
        assert invoice == record.get("InvoiceNo") and (customer or "").strip() == ""
    assert query(db_url, "SELECT failing_count FROM meta.validation_results WHERE run_id = %s AND check_id = %s",
                 (run_id, CHECK_ID)) == [(len(expected.quarantined),)]
    entry = check_entry(report, CHECK_ID)
    assert entry.get("action") == "quarantine", entry
    assert entry["failing_count"] == len(expected.quarantined)


def assert_features_match(db_url: str, expected: Expected, staged: dict[str, dict[str, Any]]) -> None:
    oracle = brute_force_features(expected.orders)
    rows = query(db_url, "SELECT customer_id, feature_time, orders_7d, revenue_7d, orders_30d, revenue_30d,"
                         " days_since_last_order FROM feats.customer_features")
    got = {(r[0], r[1]): tuple(r[2:]) for r in rows}
    assert len(got) == len(rows), "two feature rows for one (customer, feature_time)"
    # instants at which a customer only cancelled: no feature row there
    completed_at = {(o.customer_id, o.order_at) for o in expected.orders.values() if o.status == "completed"}
    cancelled_only = {(o.customer_id, o.order_at) for o in expected.orders.values()
                      if o.status == "cancelled"} - completed_at
    assert len(cancelled_only) > 10, "the data should hold instants with only a cancelled order"
    leaked = sorted(cancelled_only & set(got))
    assert not leaked, f"{len(leaked)} feature rows sit at an instant with only a cancelled order: {leaked[:3]}"
    # a few customers who both cancelled and completed orders, checked first with a clear
    # message (some customers only ever cancelled: they have no feature row at all)
    customers_with_rows = {c for c, _ in oracle}
    only_cancelled = {c for c, _ in cancelled_only} - customers_with_rows
    assert only_cancelled and not only_cancelled & {c for c, _ in got}, "a customer who only cancelled has rows"
    cancellers = sorted({c for c, _ in cancelled_only} & customers_with_rows)
    assert len(cancellers) >= 6
    for customer in cancellers[:3] + cancellers[-3:]:
        mine = {k: v for k, v in oracle.items() if k[0] == customer}
        assert mine, customer
        assert {k: got.get(k, (None,) * 5)[2] for k in mine} == {k: v[2] for k, v in mine.items()}, \
            f"orders_30d of customer {customer}"
    # then every row and column
    assert set(got) == set(oracle)
    wrong = [(k, got[k], oracle[k]) for k in oracle if got[k] != oracle[k]]
    assert not wrong, f"{len(wrong)} of {len(oracle)} feature rows differ, e.g. {wrong[:3]}"
    # the staged cancelled orders are there, only left out of the features
    assert sum(1 for s in staged.values() if s["status"] == "cancelled") > 0


def run_ok(config: Path, db_url: str) -> dict[str, Any]:
    code, report = run_pipeline(str(config), db_url)
    assert code == EXIT_PASSED, f"exit {code}: {report.get('errors')}"
    return report


# --- (a) the bundled config -----------------------------------------------------------------


def bundled_files() -> list[Path]:
    files = sorted((BUNDLED_DIR / "by-day").glob("*.csv")) + sorted((BUNDLED_DIR / "extra-days").glob("*.csv"))
    assert len(files) == 21 and files[-1].name == "2011-08-12.csv"
    return files


def test_bundled_config_stages_every_invoice_as_computed_independently(project, db_url):
    """configs/uci_online_retail.yaml from a scratch cwd: every staged order (id, customer,
    status, amount, order_at, lineage), the quarantined records and the features equal an
    independent computation over the 21 bundled files."""
    expected = compute_expected(bundled_files())
    # guards against a vacuous pass: the bundled files hold every case the model handles
    assert len(expected.records) == 43_603
    assert len(expected.quarantined) == 16_046
    assert len(expected.orders) == 1_756
    assert sum(o.status == "cancelled" for o in expected.orders.values()) == 310
    assert expected.dedup_changes_amount > 0, "no invoice where collapsing exact repeats changes the amount"
    assert any(len({line.get("InvoiceDate") for line in o.lines}) > 1 for o in expected.orders.values())
    assert sum(r.get("InvoiceNo").startswith("A") for r in expected.records) == 3

    report = run_ok(BUNDLED_CONFIG, db_url)
    assert query(db_url, "SELECT count(*) FROM raw.raw_events") == [(len(expected.records),)]
    staged = assert_orders_match(db_url, expected)
    assert_quarantine_matches(db_url, report, expected)

    # hand-worked examples, written out (amounts summed by hand from the CSV lines)
    explicit = query(db_url, "SELECT order_id, customer_id, status, amount, order_at FROM stg.orders"
                             " WHERE order_id IN ('536365', '563095', 'C563107') ORDER BY order_id")
    assert explicit == [
        # 2010-12-01 08:26 London in December = 08:26 UTC; 7 lines summing to 139.12
        ("536365", "17850", "completed", Decimal("139.12"), dt.datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),
        # 2011-08-12 09:04 London is British Summer Time: 08:04 UTC; 17 lines summing to 305.34
        ("563095", "13158", "completed", Decimal("305.34"), dt.datetime(2011, 8, 12, 8, 4, tzinfo=UTC)),
        # a cancellation at 10:17 BST: -12 x 2.10 - 4.15 - 3.75 - 2.95 = -36.05
        ("C563107", "12709", "cancelled", Decimal("-36.05"), dt.datetime(2011, 8, 12, 9, 17, tzinfo=UTC)),
    ]
    # the bad-debt adjustments (14:50-14:52 BST, no customer) are quarantined, not staged
    assert query(db_url, "SELECT count(*) FROM stg.orders WHERE left(order_id, 1) = 'A'") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM meta.quarantine WHERE run_id = %s AND payload ->> 'InvoiceNo'"
                         " IN ('A563185', 'A563186', 'A563187')", (report["run_id"],)) == [(3,)]
    assert_features_match(db_url, expected, staged)
    assert_defined_features_match(db_url, expected)


# --- (b) the 68 by-day files and the extra day ----------------------------------------------


def test_full_by_day_and_extra_days_match_independent_computation_and_source_md(project, db_url):
    """All 68 by-day files plus extra-days from UCI_DIR: staged orders, quarantine and
    features equal the independent computation, whose counts equal SOURCE.md's."""
    by_day = sorted((UCI_DIR / "by-day").glob("*.csv"))
    extra = sorted((UCI_DIR / "extra-days").glob("*.csv"))
    assert (len(by_day), len(extra)) == (68, 1)
    expected = compute_expected(by_day + extra)

    # SOURCE.md's own counts (Python's csv module, counted by the data's curator)
    day_records = [r for r in expected.records if r.file.parent.name == "by-day"]
    extra_records = [r for r in expected.records if r.file.parent.name == "extra-days"]
    assert (len(day_records), len(extra_records)) == (105_335, 1_122)
    assert len({r.get("InvoiceNo") for r in day_records}) == 4_894
    assert len({r.get("InvoiceNo") for r in extra_records}) == 61
    assert sum(not r.get("CustomerID").strip() for r in day_records) == 36_210
    assert sum(not r.get("CustomerID").strip() for r in extra_records) == 415
    assert len(expected.quarantined) == 36_210 + 415
    assert len(day_records) - len({r.row for r in day_records}) == 975  # extra copies of exact repeats
    assert len({r.get("InvoiceNo") for r in day_records if r.get("InvoiceNo").startswith("C")}) == 805
    assert len({r.get("InvoiceNo") for r in extra_records if r.get("InvoiceNo").startswith("C")}) == 2
    # 748 by-day invoices have no customer at all: the rest are orders
    day_orders = {k for k, o in expected.orders.items() if o.lines[0].file.parent.name == "by-day"}
    assert len(day_orders) == 4_894 - 748
    # C invoices that keep a customer line (some have only customer-less lines): computed
    cancelled = {k for k, o in expected.orders.items() if o.status == "cancelled"}
    assert 0 < len(cancelled) <= 805 + 2
    assert {k for k in cancelled if k in day_orders} <= {r.get("InvoiceNo") for r in day_records
                                                         if r.get("InvoiceNo").startswith("C")}
    assert expected.dedup_changes_amount > 0

    config = project.root / "configs" / "uci_full.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "uci_online_retail",
                     "paths": [str(UCI_DIR / "by-day" / "*.csv"), str(UCI_DIR / "extra-days" / "*.csv")],
                     "model": str(MODEL), "lines_model": str(LINES_MODEL)}],
        "expectations": str(EXPECTATIONS),
        "staging": {"source_timezone": "Europe/London", "attributes": {"country": "text"}},
        # the bundled config's own features, over the 68 days
        "features": {"exclude_statuses": ["cancelled"],
                     "define": yaml.safe_load(BUNDLED_CONFIG.read_text(encoding="utf-8"))["features"]["define"]},
    }, sort_keys=False), encoding="utf-8")
    report = run_ok(config, db_url)

    assert query(db_url, "SELECT count(*), count(DISTINCT file_sha256) FROM raw.raw_events") == [(106_457, 69)]
    staged = assert_orders_match(db_url, expected)
    assert query(db_url, "SELECT status, count(*) FROM stg.orders GROUP BY status ORDER BY status") == [
        ("cancelled", len(cancelled)), ("completed", len(expected.orders) - len(cancelled))]
    assert_quarantine_matches(db_url, report, expected)
    assert_features_match(db_url, expected, staged)
    assert_defined_features_match(db_url, expected)
    # the run's batch is exactly what was staged: every staged order points into it
    with psycopg.connect(db_url) as conn:
        outside = conn.execute("SELECT count(*) FROM stg.orders o WHERE NOT EXISTS (SELECT 1 FROM raw.raw_events r"
                               " WHERE r.event_id = o.source_event_id)").fetchone()
    assert outside == (0,)
