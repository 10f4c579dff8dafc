-- mm-bronze metadata: one row per distinct payload, one row per submission, status history.
CREATE SCHEMA IF NOT EXISTS ingestion;

-- One row per distinct payload (global, exact dedup on the SHA-256 of the whole payload).
-- Column names follow the original mm_bronze; object_id is the first submission's uuid.
CREATE TABLE ingestion.raw_ingestion (
    object_id        UUID PRIMARY KEY,
    ingestion_source TEXT        NOT NULL,
    format           TEXT,
    content_type     TEXT,
    subtype          TEXT,
    data_version     TEXT,
    storage_path     TEXT        NOT NULL,
    fingerprint      BYTEA       NOT NULL,
    object_size      BIGINT      NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    stored_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    source_metadata  JSONB
);
CREATE UNIQUE INDEX idx_raw_ingestion_fingerprint ON ingestion.raw_ingestion (fingerprint);
CREATE INDEX idx_raw_ingestion_source_received
    ON ingestion.raw_ingestion (ingestion_source, received_at DESC);

-- One row per submission, duplicates included: lineage ("who sent what, when").
CREATE TABLE ingestion.submissions (
    submission_id    UUID PRIMARY KEY,
    object_id        UUID        NOT NULL REFERENCES ingestion.raw_ingestion (object_id),
    is_duplicate     BOOLEAN     NOT NULL,
    ingestion_source TEXT        NOT NULL,
    client           TEXT,
    format           TEXT,
    content_type     TEXT,
    subtype          TEXT,
    data_version     TEXT,
    payload_size     BIGINT      NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    source_metadata  JSONB
);
CREATE INDEX idx_submissions_object ON ingestion.submissions (object_id);
CREATE INDEX idx_submissions_received ON ingestion.submissions (received_at DESC);

-- Status history per submission uuid (accepted, stored, duplicate, failed).
CREATE TABLE ingestion.ingestion_log (
    log_id    BIGSERIAL PRIMARY KEY,
    object_id UUID        NOT NULL,
    log_time  TIMESTAMPTZ NOT NULL DEFAULT now(),
    status    TEXT        NOT NULL,
    message   TEXT
);
CREATE INDEX idx_ingestion_log_object ON ingestion.ingestion_log (object_id, log_id);

-- API clients; tokens are stored as SHA-256 hashes only.
CREATE TABLE ingestion.api_clients (
    name       TEXT PRIMARY KEY,
    token_hash BYTEA       NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
