-- The bus the processes on this database publish to, recorded by the first that starts with
-- one: a process configured for the other bus is refused (mm_bronze/metadata/deployment.py).
CREATE TABLE ingestion.deployment (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    bus TEXT NOT NULL CHECK (bus IN ('embedded', 'kafka')),
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
