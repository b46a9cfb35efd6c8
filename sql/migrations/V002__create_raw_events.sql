-- Creates the append-only raw layer: one row per ingested file and per CSV record.
-- grain: raw.ingested_files one row per distinct file content (sha256);
--        raw.raw_events one row per CSV record of an ingested file
-- requires: V001__create_layer_schemas.sql
CREATE TABLE raw.ingested_files (
    file_sha256 text COLLATE "C" NOT NULL,
    source_name text NOT NULL,
    file_path text NOT NULL,
    file_bytes bigint NOT NULL,
    record_count bigint NOT NULL,
    run_id text NOT NULL,
    ingested_at timestamptz NOT NULL,
    CONSTRAINT ingested_files_pkey PRIMARY KEY (file_sha256)
);

CREATE TABLE raw.raw_events (
    event_id bigint GENERATED ALWAYS AS IDENTITY,
    file_sha256 text COLLATE "C" NOT NULL,
    source_name text NOT NULL,
    file_path text NOT NULL,
    line_number bigint NOT NULL,
    record_number bigint NOT NULL,
    run_id text NOT NULL,
    ingested_at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    CONSTRAINT raw_events_pkey PRIMARY KEY (event_id),
    CONSTRAINT raw_events_line_number_positive_check CHECK (line_number > 0)
);

COMMENT ON TABLE raw.raw_events IS
'One row per CSV record; payload holds every field exactly as received (text, '
'unquoted empty field -> JSON null). Append-only: UPDATE, DELETE and TRUNCATE are refused.';
COMMENT ON COLUMN raw.raw_events.line_number IS
'Physical line in the file where the record starts (the header is line 1).';
COMMENT ON COLUMN raw.raw_events.record_number IS
'Ordinal of the record in the file, header excluded (1 = first data record).';

-- The database itself keeps the raw layer immutable, whoever connects: a
-- statement-level trigger fires even when the statement would touch no row.
CREATE FUNCTION raw.refuse_modification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'raw.% is append-only: % is not allowed', tg_table_name, tg_op
        USING
            ERRCODE = 'insufficient_privilege',
            HINT = 'Raw records are immutable; ingest a corrected file instead.';
END;
$$;

CREATE TRIGGER raw_events_refuse_modification
BEFORE UPDATE OR DELETE OR TRUNCATE ON raw.raw_events
FOR EACH STATEMENT EXECUTE FUNCTION raw.refuse_modification();

CREATE TRIGGER ingested_files_refuse_modification
BEFORE UPDATE OR DELETE OR TRUNCATE ON raw.ingested_files
FOR EACH STATEMENT EXECUTE FUNCTION raw.refuse_modification();
