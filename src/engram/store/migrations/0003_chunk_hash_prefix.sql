-- The embedding cache looks chunks up by content hash. Its index keeps the first 12 hex digits
-- (48 bits) instead of all 64: a quarter of the size, so a bulk load's random inserts dirty a
-- quarter of the pages per transaction. Lookups compare the whole hash after the prefix.
DROP INDEX chunks_hash;
CREATE INDEX chunks_hash_prefix ON chunks(substr(content_hash, 1, 12))
