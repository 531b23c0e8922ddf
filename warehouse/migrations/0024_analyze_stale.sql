-- The planner's statistics of the core tables are kept current by the hub itself, after
-- each stream's load: a server may run without autovacuum (this machine's PostgreSQL 15
-- does), and a table loaded but never analyzed is planned as if it were empty. Measured
-- on the test warehouse: mart.assessment_weekly over 7,000 events took 22 s (a nested
-- loop over every pair of current events) and 0.1 s once the tables were analyzed.
--
-- ops.analyze_stale(table) analyzes a core table changed since its last analyze by more
-- than autovacuum's own default (50 rows and 10 % of the table), or never analyzed and
-- not empty; where autovacuum runs and is keeping up, it finds nothing to do. The loader
-- owns no table, so this is a function of the owner, for core tables only.
CREATE FUNCTION ops.analyze_stale(target regclass) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    -- Someone else analyzing or vacuuming it: theirs will do.
    SET lock_timeout = '1s' AS $$
DECLARE
    stale boolean;
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
    BEGIN
        EXECUTE format('ANALYZE %s', target);
    EXCEPTION WHEN lock_not_available THEN
        RETURN false;
    END;
    RETURN true;
END $$;
REVOKE ALL ON FUNCTION ops.analyze_stale(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.analyze_stale(regclass) TO hub_loader;
COMMENT ON FUNCTION ops.analyze_stale(regclass) IS 'analyze a core table changed since its last analyze by more than 50 rows and 10 % of its rows (autovacuum''s default), or never analyzed and not empty; true if it did';
