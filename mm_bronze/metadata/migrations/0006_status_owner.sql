-- Who sent a submission, on its status entries: a submission that is only accepted (or
-- failed before it was recorded) has no row in ingestion.submissions yet, and its status
-- must still be shown to its own client only. NULL where the sender is not known (entries
-- written before this column, anonymous loopback submissions, replays).
ALTER TABLE ingestion.ingestion_log ADD COLUMN client TEXT;
