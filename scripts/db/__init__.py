"""Everything that talks to PostgreSQL or prepares what is sent to it.

    server.py        the embedded PostgreSQL (python -m scripts.db.server up|url|psql|stop)
    connection.py    a connection, with one message when it fails
    migrate.py       the migrations in sql/migrations/ (python -m scripts.db.migrate)
    roles.py         the owner, loader and reader roles (python -m scripts.db.roles)
    locks.py         the advisory locks: one migrator, one run at a time
    render.py        the Jinja SQL templates of sql/, a stage's files found from its name
    execute.py       a rendered file run, its -- rows: counts, errors as file:line:column
    citus.py         the local Citus cluster (make citus-up); distribution.py: its failures
"""
