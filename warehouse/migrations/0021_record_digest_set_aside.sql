-- The records a snapshot sets aside as unchanged are no longer noted in
-- ops.snapshot_seen: the close-out keeps a current record whose digest on the day's
-- basis a batch matched (warehouse.loader.close_missing, a hash join by source_id).
-- The digests are read back by key hash alone, so whether the source_id is the key
-- itself is no longer kept.
ALTER TABLE ops.record_digest DROP COLUMN key_is_id;
