-- The deployment's own id, stamped by its processes on each event they publish to Kafka: a
-- consumer recording to another database refuses to store what the deployment's doors
-- accepted (mm_bronze/bus/stamp.py). A database that replaces the deployment's takes its id
-- over with `mm-bronze db adopt ID`.
ALTER TABLE ingestion.deployment ADD COLUMN id UUID NOT NULL DEFAULT gen_random_uuid();
