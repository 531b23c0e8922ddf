-- The records a snapshot sets aside as unchanged are no longer noted in
-- ops.snapshot_seen: the close-out keeps a current record whose digest on the day's
-- basis a batch matched (warehouse.loader.close_missing, a hash join by source_id).
-- The digests are read back by key hash alone, so whether the source_id is the key
-- itself is no longer kept.
ALTER TABLE ops.record_digest DROP COLUMN key_is_id;

-- A key a snapshot holds with two or more different records is quarantined with all
-- of them (rule source_key_unique), every day the platform sends them so. Such a key
-- keeps one digest too: of the records it holds, in any order, marked held. The next
-- snapshot holding the same records under it sets them aside as held in their open
-- quarantine entries, as they were, without conforming, checking or masking them again.
ALTER TABLE ops.record_digest ADD COLUMN held boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN ops.record_digest.held IS '键下多条不同记录，均在隔离中：摘要为这些记录的合并摘要 / the key holds two or more different records, all quarantined: the digest is of those records together';
