"""The runner across stages: daily runs, locks, crash safety, settings, the psql route."""
