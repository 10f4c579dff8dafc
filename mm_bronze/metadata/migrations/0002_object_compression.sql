-- How each stored object is compressed (none, gzip, zstd), so a reader knows how to decode it.
-- fingerprint and object_size stay those of the original bytes.
ALTER TABLE ingestion.raw_ingestion ADD COLUMN compression TEXT NOT NULL DEFAULT 'none';
