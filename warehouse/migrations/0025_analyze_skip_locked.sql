-- ops.analyze_stale no longer waits for a lock (0024 waited up to a second): where
-- someone else holds the table's statistics lock — autovacuum analyzing or vacuuming it,
-- most often right after a large load — it skips the table at once, and theirs or the
-- next run's analyze will do. Measured on the embedded server (autovacuum on): after a
-- 300,000-row second load of work orders the call spent its whole second waiting and
-- then did nothing, a second of the stream's time for no statistics.
--
-- Whether it analyzed is read from the server's count of analyzes of the table, which
-- ANALYZE (SKIP_LOCKED) moves only when it did; its warning on skipping is not sent on.
CREATE OR REPLACE FUNCTION ops.analyze_stale(target regclass) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET client_min_messages = error AS $$
DECLARE
    stale boolean;
    analyzed bigint;
BEGIN
    IF (SELECT nspname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
         WHERE c.oid = target) IS DISTINCT FROM 'core' THEN
        RAISE EXCEPTION 'only a core table''s statistics are kept here, not %', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT coalesce(s.n_mod_since_analyze, 0) > 50 + 0.1 * greatest(c.reltuples, 0)
      INTO stale
      FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
     WHERE c.oid = target;
    IF NOT stale AND (SELECT reltuples FROM pg_class WHERE oid = target) < 0 THEN
        -- Never analyzed: the counters may not have caught up with the load yet.
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', target) INTO stale;
    END IF;
    IF NOT stale THEN
        RETURN false;
    END IF;
    analyzed := pg_stat_get_analyze_count(target);
    EXECUTE format('ANALYZE (SKIP_LOCKED) %s', target);
    PERFORM pg_stat_clear_snapshot();  -- the count as it is now, not as first read
    RETURN pg_stat_get_analyze_count(target) > analyzed;
END $$;
