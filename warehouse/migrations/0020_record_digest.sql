-- A full snapshot re-sent daily is mostly the records loaded the day before. Each
-- snapshot record loaded leaves a 64-bit digest of itself as the platform sent it, with
-- the basis it was conformed and checked on (the pipeline's code, the source's settings,
-- the divisions and grids, the lookups): the next snapshot's records with the same key,
-- digest and basis are known unchanged before they are conformed, validated or merged.
-- Kept in the batch's transaction with the merge; a record quarantined or closed loses
-- its digest, so it is taken through the whole pipeline when it comes again.
-- Keys are kept as 64-bit hashes: a stream's digests are read whole when a snapshot
-- starts, 16 bytes a record (warehouse.record_digest).
CREATE TABLE ops.record_digest (
    source_system text NOT NULL,
    stream        text NOT NULL,
    key_hash      bigint NOT NULL,
    digest        bigint NOT NULL,
    basis         bigint NOT NULL,
    source_id     text NOT NULL,
    key_is_id     boolean NOT NULL,
    PRIMARY KEY (source_system, stream, key_hash)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ops.record_digest TO hub_loader;

COMMENT ON TABLE ops.record_digest IS '快照记录摘要：上次装载的平台原始记录的 64 位摘要及其处理依据；同键、同摘要、同依据的快照记录在转换前即判为未变 / digest of each loaded snapshot record as the platform sent it, with the basis it was processed on: a later snapshot record with the same key, digest and basis is known unchanged before conform';
COMMENT ON COLUMN ops.record_digest.source_system IS '来源平台实例 / source';
COMMENT ON COLUMN ops.record_digest.stream IS '数据流 / stream';
COMMENT ON COLUMN ops.record_digest.key_hash IS '平台记录键的 64 位哈希 / 64-bit hash of the record''s key as the platform sends it';
COMMENT ON COLUMN ops.record_digest.digest IS '原始记录 64 位摘要 / 64-bit digest of the record as sent';
COMMENT ON COLUMN ops.record_digest.basis IS '处理依据摘要（代码、配置、区划、网格、查找表）/ digest of what turned the record into rows: code, settings, divisions, grids, lookups';
COMMENT ON COLUMN ops.record_digest.source_id IS '对应的来源记录编号 / the source key the record was loaded under';
COMMENT ON COLUMN ops.record_digest.key_is_id IS '来源记录编号即平台记录键 / whether the source key is the platform''s key itself';
