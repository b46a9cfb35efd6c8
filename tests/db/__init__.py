"""The database: the embedded server, migrations, roles, Citus."""
