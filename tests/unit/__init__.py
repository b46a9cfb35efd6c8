"""Tests without a database: layout, imports, schemas, docs, SQL headers."""
