-- The submissions feed: a cursor (seq) that increases in commit order, and indexes for
-- finding submissions by client, time, content hash and SFTP path.
--
-- seq comes from a sequence, but only while the recording transaction holds a
-- transaction-scoped advisory lock (see mm_bronze.metadata.feed.FEED_LOCK): seqs are then
-- assigned and committed in the same order, so a reader that has seen seq N can never later
-- find a new row with seq <= N. A plain serial column would not promise that: two writers
-- may take 5 and 6 and commit 6 first.
CREATE SEQUENCE ingestion.submission_seq;
ALTER TABLE ingestion.submissions ADD COLUMN seq BIGINT;
ALTER SEQUENCE ingestion.submission_seq OWNED BY ingestion.submissions.seq;

-- Existing rows, in the order they were recorded.
UPDATE ingestion.submissions s SET seq = ordered.n
FROM (
    SELECT submission_id,
           row_number() OVER (ORDER BY recorded_at, received_at, submission_id) AS n
    FROM ingestion.submissions
) ordered
WHERE s.submission_id = ordered.submission_id;
SELECT setval('ingestion.submission_seq', COALESCE(max(seq), 0) + 1, false)
FROM ingestion.submissions;

ALTER TABLE ingestion.submissions
    ALTER COLUMN seq SET DEFAULT nextval('ingestion.submission_seq'),
    ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX idx_submissions_seq ON ingestion.submissions (seq);
CREATE INDEX idx_submissions_client_seq ON ingestion.submissions (client, seq);
CREATE INDEX idx_submissions_received_seq ON ingestion.submissions (received_at, seq);
-- The SFTP partner's path ("lab1:/results/2026-12-01.hl7" is username lab1, this path).
CREATE INDEX idx_submissions_sftp_path ON ingestion.submissions ((source_metadata ->> 'path'))
    WHERE ingestion_source = 'sftp';
-- Lookups by SHA-256 use raw_ingestion's unique fingerprint index, then idx_submissions_object.
