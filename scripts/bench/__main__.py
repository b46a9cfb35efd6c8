"""python -m scripts.bench: make bench (scripts/bench/stages.py)."""

import sys

from scripts.bench.stages import main

sys.exit(main())
