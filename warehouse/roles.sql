-- The hub's roles, created before any migration by a login that may create roles
-- (the embedded server's superuser; in production the DBA runs this file once with
-- psql). Roles belong to the whole server, so this is idempotent and takes no data.
--
--   hub_owner       owns the schemas and every object in them; runs migrations and
--                   `hub access` (creates department logins: CREATEROLE)
--   hub_loader      the pipeline: writes core, quality, raw and ops, nothing else;
--                   BYPASSRLS, as it writes every district's rows (and COPY into a
--                   table under row-level security is refused otherwise)
--   hub_reader      base of every department login: marts and masked views only,
--                   rows of its jurisdiction only (ops.access_grant)
--   hub_steward     the quality review: quarantine masked, runs, findings; city-wide
--   hub_pii_reader  may read clear values, only through the audited functions
--
-- The four service roles may log in (the hub's own jobs connect as them); passwords
-- or certificates are the deployment's (ALTER ROLE … PASSWORD), never the repo's.
DO $roles$
DECLARE
    wanted record;
BEGIN
    -- In order: the readers' roles are members of hub_reader.
    FOR wanted IN SELECT * FROM (VALUES
            ('hub_owner', 'LOGIN CREATEROLE'),
            ('hub_loader', 'LOGIN BYPASSRLS'),
            ('hub_reader', 'LOGIN'),
            ('hub_steward', 'LOGIN IN ROLE hub_reader'),
            ('hub_pii_reader', 'LOGIN IN ROLE hub_reader')) AS r(name, options)
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = wanted.name);
        BEGIN
            EXECUTE format('CREATE ROLE %I %s', wanted.name, wanted.options);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another migration created it meanwhile
        END;
    END LOOP;
    -- A role made before the pipeline needed it.
    IF NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'hub_loader')
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER ROLE hub_loader BYPASSRLS;
    END IF;
    -- The owner hands out reader and clear-read membership to department logins.
    -- From PostgreSQL 16 that needs ADMIN OPTION on them, and without INHERIT/SET the
    -- owner gains none of their rights (nor their row policies).
    IF current_setting('server_version_num')::int >= 160000 THEN
        EXECUTE 'GRANT hub_reader, hub_pii_reader TO hub_owner'
                ' WITH ADMIN OPTION, INHERIT FALSE, SET FALSE';
    END IF;
END
$roles$;
