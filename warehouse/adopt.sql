-- Make hub_owner the owner of this database's hub schemas and everything in them,
-- and let it create schemas here. Run by the migrating login before it acts as
-- hub_owner; a no-op once everything is hub_owner's (warehouses migrated before the
-- roles existed had everything owned by the login that migrated them).
DO $adopt$
DECLARE
    obj record;
BEGIN
    EXECUTE format('GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %I TO hub_owner',
                   current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO hub_loader', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO hub_reader, hub_steward, hub_pii_reader',
                   current_database());
    -- Department logins read; temporary tables are the pipeline's and the owner's.
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    FOR obj IN
        SELECT n.nspname FROM pg_namespace n
         WHERE n.nspname IN ('raw', 'core', 'quality', 'mart', 'ops')
           AND n.nspowner <> 'hub_owner'::regrole
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO hub_owner', obj.nspname);
    END LOOP;
    FOR obj IN
        SELECT n.nspname, c.relname, c.relkind FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('raw', 'core', 'quality', 'mart', 'ops')
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND c.relowner <> 'hub_owner'::regrole
    LOOP
        EXECUTE format('ALTER TABLE %I.%I OWNER TO hub_owner', obj.nspname, obj.relname);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('raw', 'core', 'quality', 'mart', 'ops')
           AND p.proowner <> 'hub_owner'::regrole
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO hub_owner', obj.fn);
    END LOOP;
END
$adopt$;
