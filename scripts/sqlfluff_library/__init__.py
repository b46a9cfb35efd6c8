"""Jinja filters for sqlfluff's templater: the runner's own, so lint renders what runs.

sqlfluff loads this package through `library_path` in .sqlfluff; `make lint` runs sqlfluff
from the repository root, so `scripts` is importable.
"""

from scripts.db.render import FILTERS

SQLFLUFF_JINJA_FILTERS = FILTERS
