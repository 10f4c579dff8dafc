-- Dead letters on Kafka that were replayed or purged. Kafka cannot delete one record from a
-- topic, so handling a dead letter is recorded here; the primary key makes a replay happen
-- once, however many times it is asked for.
CREATE TABLE ingestion.dead_letter_actions (
    dlq_topic     TEXT        NOT NULL,
    dlq_partition INTEGER     NOT NULL,
    dlq_offset    BIGINT      NOT NULL,
    action        TEXT        NOT NULL CHECK (action IN ('replayed', 'purged')),
    acted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
