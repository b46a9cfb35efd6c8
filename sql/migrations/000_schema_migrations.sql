-- Bootstrap: the migration history table itself (run before every migration batch).
-- grain: one row per attempt to apply a migration (successful or failed)
-- requires: nothing; idempotent, so it is not itself recorded in the history
CREATE SCHEMA IF NOT EXISTS meta;

CREATE TABLE IF NOT EXISTS meta.schema_migrations (
    installed_rank integer GENERATED ALWAYS AS IDENTITY,
    version text NOT NULL,
    description text NOT NULL,
    script text NOT NULL,
    checksum_sha256 text NOT NULL,
    applied_by text NOT NULL DEFAULT current_user,
    applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms integer NOT NULL,
    is_success boolean NOT NULL,
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (installed_rank)
);

-- At most one successful application per version.
CREATE UNIQUE INDEX IF NOT EXISTS schema_migrations_version_success_key
ON meta.schema_migrations (version) WHERE is_success;
