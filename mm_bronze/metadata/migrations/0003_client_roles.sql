-- Client roles: "ingest" submits and reads its own submissions, "read" reads its own
-- submissions and the operations surface, "admin" sees every client's submissions.
ALTER TABLE ingestion.api_clients
    ADD COLUMN role TEXT NOT NULL DEFAULT 'ingest' CHECK (role IN ('ingest', 'read', 'admin'));

-- Once any client has existed, access needs a token for good: removing the last client
-- must not reopen the door to anonymous requests. One row, set when a client is added.
CREATE TABLE ingestion.access_policy (
    singleton        BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    tokens_required  BOOLEAN NOT NULL,
    since            TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO ingestion.access_policy (tokens_required)
    SELECT true WHERE EXISTS (SELECT 1 FROM ingestion.api_clients);
