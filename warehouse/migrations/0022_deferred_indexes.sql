-- A first load into an empty core table (a platform's first ingest: 1.34 M residents
-- at once) builds the table's secondary indexes once, after its rows, instead of
-- maintaining each of them row by row (PostgreSQL's "Populating a Database": at scale
-- 1, core.person's six non-unique indexes cost about 55 µs a row in the load, against
-- 17 s to build them over 1.38 M rows). The unique indexes stay: the merge looks its
-- keys up through them, and they keep one current version per key.
--
-- The loader (hub_loader) owns no table, so the two steps are functions of the owner.
-- Which indexes are waiting, and how to build them, is kept in ops.deferred_index in
-- the transaction that drops them: whatever ends the load (its end, an error, a killed
-- process), the next run of the source and every `hub migrate` build what is waiting.

CREATE TABLE ops.deferred_index (
    index_name    text PRIMARY KEY,
    table_name    text NOT NULL,
    definition    text NOT NULL,
    source_system text NOT NULL,
    run_id        bigint,
    deferred_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ops.deferred_index IS '首次装载期间暂缓建立的二级索引（装载结束后重建）/ secondary indexes of an empty core table dropped for its first load, built again when the load ends (or by the next run of the source, or hub migrate)';
COMMENT ON COLUMN ops.deferred_index.index_name IS '索引（含模式名）/ the index, schema-qualified';
COMMENT ON COLUMN ops.deferred_index.table_name IS '所属表 / its table';
COMMENT ON COLUMN ops.deferred_index.definition IS '重建语句（pg_get_indexdef）/ the statement that builds it again (pg_get_indexdef)';
COMMENT ON COLUMN ops.deferred_index.source_system IS '暂缓它的来源 / the source whose load deferred it';
COMMENT ON COLUMN ops.deferred_index.run_id IS '暂缓它的运行 / the run that deferred it';
COMMENT ON COLUMN ops.deferred_index.deferred_at IS '暂缓时间 / when it was dropped';
GRANT SELECT ON ops.deferred_index TO hub_loader;

-- Drops the non-unique indexes of `target` (a core table) if it holds no row, noting
-- each; returns how many. A table with rows, one a reader holds (the lock not had
-- within a second), or one with fewer than `fewest` such indexes is left as it is: 0.
-- A few are cheaper to maintain than to build and analyze again (300,000 work orders
-- into core.event, three: 0.5 s saved in the COPY, 2 s to build; 1.34 M residents
-- into core.person, six: 70 s saved, 17 s to build).
CREATE FUNCTION ops.defer_indexes(target regclass, source text, run bigint,
                                  fewest integer DEFAULT 4) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    has_rows boolean;
    ix record;
    n integer := 0;
BEGIN
    IF (SELECT nspname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
         WHERE c.oid = target) IS DISTINCT FROM 'core' THEN
        RAISE EXCEPTION 'only a core table''s indexes are deferred, not %', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT count(*) FROM pg_index i WHERE i.indrelid = target AND NOT i.indisunique)
       < fewest THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT FROM %s)', target) INTO has_rows;
    IF has_rows THEN
        RETURN 0;  -- the common case, decided without a lock
    END IF;
    BEGIN
        SET LOCAL lock_timeout = '1s';
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', target);
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    EXECUTE format('SELECT EXISTS (SELECT FROM %s)', target) INTO has_rows;
    IF has_rows THEN
        RETURN 0;  -- another load wrote its first rows meanwhile
    END IF;
    FOR ix IN SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
                FROM pg_index i
               WHERE i.indrelid = target AND NOT i.indisunique AND NOT i.indisprimary
                 AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
               ORDER BY 1
    LOOP
        INSERT INTO ops.deferred_index (index_name, table_name, definition, source_system, run_id)
        VALUES (ix.name, target::text, ix.def, source, run);
        EXECUTE format('DROP INDEX %s', ix.name);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION ops.defer_indexes(regclass, text, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.defer_indexes(regclass, text, bigint, integer) TO hub_loader;
COMMENT ON FUNCTION ops.defer_indexes(regclass, text, bigint, integer) IS 'drop the non-unique indexes of an empty core table with at least `fewest` of them for its first load, noted in ops.deferred_index; 0 when it has rows or fewer';

-- Builds the indexes waiting (those of `target`, of `source`'s loads, or all when both
-- are null), in one transaction with their notes, and refreshes the planner's
-- statistics of each table built on (a first load's, which it has none of); returns
-- how many were built.
CREATE FUNCTION ops.restore_indexes(target regclass DEFAULT NULL, source text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET maintenance_work_mem = '256MB' AS $$
DECLARE
    d record;
    built text[] := '{}';
    t text;
BEGIN
    FOR d IN DELETE FROM ops.deferred_index
              WHERE (target IS NULL OR table_name = target::text)
                AND (source IS NULL OR source_system = source)
             RETURNING index_name, table_name, definition
    LOOP
        IF to_regclass(d.index_name) IS NULL THEN  -- a migration may have built it since
            EXECUTE d.definition;
            built := built || d.table_name;
        END IF;
    END LOOP;
    FOR t IN SELECT DISTINCT unnest(built) LOOP
        EXECUTE format('ANALYZE %s', t);
    END LOOP;
    RETURN cardinality(built);
END $$;
REVOKE ALL ON FUNCTION ops.restore_indexes(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.restore_indexes(regclass, text) TO hub_loader;
COMMENT ON FUNCTION ops.restore_indexes(regclass, text) IS 'build the indexes ops.deferred_index holds (of a table, of a source''s loads, or all) and analyze their tables';
