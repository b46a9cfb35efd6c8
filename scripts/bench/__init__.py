"""The benchmarks (make bench, bench-incremental, bench-export) and the order generator.

    stages.py         make bench: every stage on ROWS generated orders, beside DuckDB and each stage's floor
    duckdb_stages.py  DuckDB doing the same stages on the same file (requirements-bench.txt)
    floors.py         each stage's core statement run bare on the rows the pipeline wrote
    twelve.py         make bench's second run: twelve defined features (twelve_features.yaml), checksummed
    duckdb_defined.py DuckDB computing the same twelve from their semantics, to time and check against
    incremental.py    make bench-incremental: a daily run against the full run
    export.py         make bench-export: export (and train) on generated orders
    generate_orders.py  seeded orders, optionally with counted faults (the dirty sample)
"""
