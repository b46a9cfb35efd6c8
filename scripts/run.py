"""Run the raw-to-ready pipeline: render the SQL in sql/, execute it stage by stage.

    python -m scripts.run --config configs/pipeline.yaml             # every stage
    python -m scripts.run --config configs/pipeline.yaml --stage validate   # up to validate
    python -m scripts.run --render [--out DIR]                         # write the SQL only

Each stage runs in one transaction (scripts/pipeline/stages.py lists them). Every run writes
artifacts/reports/<run_id>.json, failed runs included, and the rendered SQL it executed to
artifacts/runs/<run_id>/sql/.

Exit codes: 0 passed (warnings are printed and reported; --warn-error makes them fail),
1 validation failed, 2 bad config or usage, 3 runtime or database error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.config import add_config_argument
from scripts.console import log
from scripts.errors import (EXIT_CODES_HELP, EXIT_PASSED, EXIT_RUNTIME, EXIT_USAGE, EXIT_VALIDATION_FAILED,
                            failure)
from scripts.pipeline.runner import connect, render_all, run_pipeline
from scripts.pipeline.stages import STAGE_NAMES

STAGES = STAGE_NAMES
__all__ = ["EXIT_PASSED", "EXIT_RUNTIME", "EXIT_USAGE", "EXIT_VALIDATION_FAILED", "STAGES", "connect", "main",
           "render_all", "run_pipeline"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.run", description=__doc__.splitlines()[0],
                                     epilog=EXIT_CODES_HELP)
    add_config_argument(parser)
    parser.add_argument("--stage", choices=STAGE_NAMES, default="registry",
                        help="run every stage up to and including this one (default: all)")
    parser.add_argument("--warn-error", action="store_true", help="treat warnings as failures (exit 1)")
    parser.add_argument("--lock-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="how long to wait for another run's lock on the database (default: %(default)g; 0: not at all)")
    parser.add_argument("--full-refresh", action="store_true",
                        help="validate, stage and recompute everything, not just the new files")
    parser.add_argument("--take-over", action="store_true",
                        help="run on a database that another pipeline owns, making it this pipeline's")
    parser.add_argument("--render", action="store_true", help="write the rendered SQL and exit; no database")
    parser.add_argument("--out", default="artifacts/rendered", help="where --render writes (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.render:
        try:
            written = render_all(args.config, Path(args.out))
        except OSError as exc:
            print(f"error: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_RUNTIME
        except Exception as exc:  # noqa: BLE001 - a config, source or template error: one message
            return failure(exc)
        for path in written:
            log(f"rendered {path}")
        return EXIT_PASSED
    code, _ = run_pipeline(args.config, through=args.stage, warn_error=args.warn_error,
                           lock_timeout=args.lock_timeout, full_refresh=args.full_refresh,
                           take_over=args.take_over)
    return code


if __name__ == "__main__":
    sys.exit(main())
