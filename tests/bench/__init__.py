"""The benchmark's own correctness (its floors do their stage's work)."""
