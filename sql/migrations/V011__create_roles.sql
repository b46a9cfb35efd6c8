-- Creates the pipeline's three roles and gives each the least it needs in this database.
--   raw_to_ready_owner   DDL. Owns the layer schemas; the raw layer (tables, triggers, trigger
--                        functions); every table a trigger guards (meta.quarantine is
--                        append-only); meta.schema_migrations. Later migrations run as it
--                        (scripts/migrate.py). A member of the loader, so that a migration may
--                        alter or drop the loader's tables.
--   raw_to_ready_loader  What the data stages run as (scripts/roles.py, become_loader). In raw:
--                        USAGE, SELECT and INSERT, nothing else; not the owner, so it cannot
--                        alter the raw tables or disable their triggers. Owns every other table
--                        in stg, feats, meta and work (the stages create, replace and drop them)
--                        and may create tables there; TEMPORARY on the database (ingest lands
--                        each file in temporary tables).
--   raw_to_ready_reader  SELECT on what is published: feats, meta, and stg (feats.features_as_of
--                        reads stg.orders as its caller), now and later; nothing that writes.
-- grain: roles (cluster-wide, NOLOGIN, created once per cluster); ownership and privileges
--        (per database)
-- requires: V001__create_layer_schemas.sql and whatever later migrations created (it changes
--           hands here)
-- Idempotent, and safe for a role that is not a superuser: `make roles` (scripts/roles.py) runs
-- this file as a DBA, and each step runs only when it is not done yet. Run by a role that may
-- not do a step that is still to do, it fails naming the step, with a hint for the DBA.
-- On a database with no pipeline schema yet (`make roles` before the first migration) it
-- creates the roles and grants the database privileges; the migrations, run as the owner,
-- then create the schemas and this migration hands the tables over.
DO $$
DECLARE
    owner_role CONSTANT text := 'raw_to_ready_owner';
    loader_role CONSTANT text := 'raw_to_ready_loader';
    reader_role CONSTANT text := 'raw_to_ready_reader';
    layers text[];  -- raw and the derived layers, those that exist (V010 creates work)
    for_dba CONSTANT text :=
        'A DBA (a superuser, or a role with CREATEROLE) runs `make roles` with DATABASE_URL pointing at '
        'this database (or the statements under "Roles and least privilege" in README.md), and grants '
        'raw_to_ready_owner to the role that runs the migrations: GRANT raw_to_ready_owner TO <role>;';
    may_create_roles boolean;
    may_grant_database boolean;
    role_name text;
    schema_name text;
    obj record;
    step text;
    failure text;
    failure_hint text;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create_roles FROM pg_roles WHERE rolname = current_user;

    step := 'create the roles';
    FOREACH role_name IN ARRAY ARRAY[owner_role, loader_role, reader_role] LOOP
        CONTINUE WHEN to_regrole(role_name) IS NOT NULL;
        IF NOT may_create_roles THEN
            RAISE EXCEPTION 'role % does not exist, and % may not create roles', role_name, current_user
                USING ERRCODE = 'insufficient_privilege', HINT = for_dba;
        END IF;
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- a migration of another database of the cluster created it meanwhile
        END;
    END LOOP;

    -- Roles made by hand may carry more than they should; refuse rather than rely on them.
    IF EXISTS (
            SELECT FROM pg_roles
            WHERE rolname IN (loader_role, reader_role) AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)
        )
        OR pg_has_role(loader_role, owner_role, 'MEMBER')
        OR pg_has_role(reader_role, loader_role, 'MEMBER')
        OR pg_has_role(reader_role, owner_role, 'MEMBER') THEN
        RAISE EXCEPTION 'raw_to_ready_loader or raw_to_ready_reader can do more than it should'
            USING HINT = 'Neither may be a superuser or have BYPASSRLS, CREATEROLE or CREATEDB; the loader '
                         'may not be a member of raw_to_ready_owner, the reader of neither.';
    END IF;

    step := 'make raw_to_ready_owner a member of raw_to_ready_loader';
    IF NOT (pg_has_role(owner_role, loader_role, 'SET') AND pg_has_role(owner_role, loader_role, 'USAGE')) THEN
        BEGIN
            EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', loader_role, owner_role);
        EXCEPTION WHEN unique_violation THEN
            NULL;  -- granted by another session meanwhile
        END;
    END IF;

    -- A role with CREATEROLE that created the roles holds ADMIN on them but may not become
    -- them: it becomes the owner's member, to hand the tables over and to run later migrations.
    step := 'make ' || session_user || ' a member of raw_to_ready_owner';
    IF NOT pg_has_role(session_user, owner_role, 'SET') THEN
        EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', owner_role, session_user);
    END IF;

    -- The database: every role connects; the loader and the reader make temporary tables
    -- (ingest's landing tables, retrieve's entities); the owner may create schemas.
    SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)
        OR pg_has_role(current_user, d.datdba, 'USAGE')
        INTO may_grant_database
    FROM pg_database AS d WHERE d.datname = current_database();
    FOR obj IN
        SELECT g.grantee, g.privilege
        FROM (
            VALUES (owner_role, 'CONNECT'), (owner_role, 'CREATE'), (owner_role, 'TEMPORARY'),
                (loader_role, 'CONNECT'), (loader_role, 'TEMPORARY'),
                (reader_role, 'CONNECT'), (reader_role, 'TEMPORARY')
        ) AS g (grantee, privilege)
    LOOP
        step := format('grant %s on database %s to %s', obj.privilege, current_database(), obj.grantee);
        IF may_grant_database THEN
            EXECUTE format('GRANT %s ON DATABASE %I TO %I', obj.privilege, current_database(), obj.grantee);
        ELSIF NOT has_database_privilege(obj.grantee, current_database(), obj.privilege) THEN
            RAISE EXCEPTION '% lacks % on database %, and % may not grant it',
                obj.grantee, obj.privilege, current_database(), current_user
                USING ERRCODE = 'insufficient_privilege', HINT = for_dba;
        END IF;
    END LOOP;

    IF to_regnamespace('raw') IS NULL THEN
        RAISE NOTICE 'database % has no pipeline schemas yet: the roles and the database privileges are set; '
            'the migrations (make migrate, by a member of raw_to_ready_owner) create the schemas as the owner, '
            'and V011 then hands the tables over', current_database();
        RETURN;
    END IF;
    layers := array(
        SELECT s.nspname FROM unnest(ARRAY['raw', 'stg', 'feats', 'meta', 'work']) AS s (nspname)
        WHERE to_regnamespace(s.nspname) IS NOT NULL
    );

    FOREACH schema_name IN ARRAY layers LOOP
        step := format('make %s the owner of schema %s', owner_role, schema_name);
        IF (SELECT nspowner FROM pg_namespace WHERE nspname = schema_name) <> to_regrole(owner_role) THEN
            EXECUTE format('ALTER SCHEMA %I OWNER TO %I', schema_name, owner_role);
        END IF;
    END LOOP;

    -- The loader uses raw, and creates tables in the derived layers (also what it owns must
    -- be in a schema it may create in).
    step := 'grant the loader USAGE on schema raw, USAGE and CREATE on the derived layers';
    GRANT USAGE ON SCHEMA raw TO raw_to_ready_loader;
    FOREACH schema_name IN ARRAY array_remove(layers, 'raw') LOOP
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO raw_to_ready_loader', schema_name);
    END LOOP;

    -- Tables, views and sequences: the owner keeps the raw layer, the migration history and
    -- every table a trigger guards (whoever owns a table may disable its triggers); the
    -- loader gets the rest. A sequence owned by a column changes hands with its table.
    FOR obj IN
        SELECT
            format('%I.%I', n.nspname, c.relname) AS object_name,
            c.relowner,
            CASE c.relkind
                WHEN 'v' THEN 'VIEW'
                WHEN 'm' THEN 'MATERIALIZED VIEW'
                WHEN 'S' THEN 'SEQUENCE'
                WHEN 'f' THEN 'FOREIGN TABLE'
                ELSE 'TABLE'
            END AS object_kind,
            CASE
                WHEN n.nspname = 'raw'
                    OR c.oid = to_regclass('meta.schema_migrations')
                    OR EXISTS (SELECT FROM pg_trigger AS t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
                    THEN owner_role
                ELSE loader_role
            END AS new_owner
        FROM pg_class AS c
        INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid
        WHERE
            n.nspname = ANY(layers)
            AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            AND NOT EXISTS (
                SELECT FROM pg_depend AS d
                WHERE
                    d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))
            )
        ORDER BY c.oid
    LOOP
        step := format('make %s the owner of %s', obj.new_owner, obj.object_name);
        IF obj.relowner <> to_regrole(obj.new_owner) THEN
            EXECUTE format('ALTER %s %s OWNER TO %I', obj.object_kind, obj.object_name, obj.new_owner);
        END IF;
    END LOOP;

    -- Functions: the owner keeps the raw layer's and every trigger function (a trigger's
    -- guard is only as strong as its function); the loader gets the rest (feats.features_as_of).
    FOR obj IN
        SELECT
            p.oid::regprocedure::text AS object_name,
            p.proowner,
            CASE
                WHEN n.nspname = 'raw' OR p.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype)
                    THEN owner_role
                ELSE loader_role
            END AS new_owner
        FROM pg_proc AS p
        INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
        WHERE
            n.nspname = ANY(layers)
            AND NOT EXISTS (
                SELECT FROM pg_depend AS d
                WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
            )
        ORDER BY p.oid
    LOOP
        step := format('make %s the owner of function %s', obj.new_owner, obj.object_name);
        IF obj.proowner <> to_regrole(obj.new_owner) THEN
            EXECUTE format('ALTER ROUTINE %s OWNER TO %I', obj.object_name, obj.new_owner);
        END IF;
    END LOOP;

    -- raw: the loader reads and appends, nothing else; no one else gets anything.
    step := 'grant the loader its privileges on schema raw';
    REVOKE ALL ON ALL TABLES IN SCHEMA raw FROM PUBLIC, raw_to_ready_loader, raw_to_ready_reader;
    GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA raw TO raw_to_ready_loader;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA raw TO raw_to_ready_loader;
    ALTER DEFAULT PRIVILEGES FOR ROLE raw_to_ready_owner IN SCHEMA raw
    GRANT SELECT, INSERT ON TABLES TO raw_to_ready_loader;
    ALTER DEFAULT PRIVILEGES FOR ROLE raw_to_ready_owner IN SCHEMA raw
    GRANT USAGE ON SEQUENCES TO raw_to_ready_loader;
    -- PostgreSQL 17+: MAINTAIN lets ingest ANALYZE raw.raw_events (025); it changes no row and
    -- no trigger. On 16 the loader's ANALYZE is skipped with a warning (autovacuum analyzes).
    IF current_setting('server_version_num')::integer >= 170000 THEN
        EXECUTE 'GRANT MAINTAIN ON ALL TABLES IN SCHEMA raw TO raw_to_ready_loader';
        EXECUTE 'ALTER DEFAULT PRIVILEGES FOR ROLE raw_to_ready_owner IN SCHEMA raw '
            'GRANT MAINTAIN ON TABLES TO raw_to_ready_loader';
    END IF;

    -- The derived layers: the loader creates tables there and owns them (above); it reads and
    -- appends to the tables the owner keeps, and reads the migration history. Tables a later
    -- migration creates there as the owner: the loader reads and writes them (a migration
    -- that wants the stages to replace or drop a table hands it to the loader).
    FOREACH schema_name IN ARRAY array_remove(layers, 'raw') LOOP
        step := format('grant the loader its privileges on schema %s', schema_name);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE raw_to_ready_owner IN SCHEMA %I '
            'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO raw_to_ready_loader', schema_name);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE raw_to_ready_owner IN SCHEMA %I '
            'GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO raw_to_ready_loader', schema_name);
    END LOOP;
    FOR obj IN
        SELECT
            format('%I.%I', n.nspname, c.relname) AS object_name,
            c.oid = to_regclass('meta.schema_migrations') AS history
        FROM pg_class AS c
        INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid
        WHERE
            n.nspname = ANY(array_remove(layers, 'raw'))
            AND c.relkind IN ('r', 'p')
            AND c.relowner = to_regrole(owner_role)
    LOOP
        step := format('grant the loader its privileges on %s', obj.object_name);
        EXECUTE format('REVOKE ALL ON %s FROM raw_to_ready_loader', obj.object_name);
        EXECUTE format('GRANT %s ON %s TO raw_to_ready_loader',
            CASE WHEN obj.history THEN 'SELECT' ELSE 'SELECT, INSERT' END, obj.object_name);
    END LOOP;

    -- The reader: what is published now, and what the owner or the loader creates there later.
    FOREACH schema_name IN ARRAY ARRAY['stg', 'feats', 'meta'] LOOP
        step := format('grant the reader its privileges on schema %s', schema_name);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO raw_to_ready_reader', schema_name);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO raw_to_ready_reader', schema_name);
        FOREACH role_name IN ARRAY ARRAY[owner_role, loader_role] LOOP
            EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                'GRANT SELECT ON TABLES TO raw_to_ready_reader', role_name, schema_name);
        END LOOP;
    END LOOP;
EXCEPTION WHEN insufficient_privilege THEN
    GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT, failure_hint = PG_EXCEPTION_HINT;
    RAISE EXCEPTION 'raw-to-ready roles: % may not %: %', current_user, step, failure
        USING ERRCODE = 'insufficient_privilege', HINT = coalesce(nullif(failure_hint, ''), for_dba);
END
$$;
