-- Letting departments in: who may see which rows (jurisdiction), personal data masked
-- for readers, clear values only through audited functions, an audit nobody it audits
-- can edit, and each role's privileges. Runs as hub_owner (warehouse/roles.sql made
-- the roles; warehouse/adopt.sql gave hub_owner the schemas).

-- ------------------------------------------------------------------ jurisdiction

-- One row per grant of access to a login: the places it may see (the whole city, or
-- districts, streets, grids), optionally narrowed to event categories or handling
-- organizations, and whether it may read clear personal data. Revoking keeps the row.
CREATE TABLE ops.access_grant (
    grant_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login         text NOT NULL,
    department    text NOT NULL,
    whole_city    boolean NOT NULL DEFAULT false,
    districts     text[] NOT NULL DEFAULT '{}',
    streets       text[] NOT NULL DEFAULT '{}',
    grids         text[] NOT NULL DEFAULT '{}',
    categories    text[],
    handling_orgs text[],
    clear_pii     boolean NOT NULL DEFAULT false,
    reason        text,
    granted_by    text NOT NULL DEFAULT session_user,
    granted_at    timestamptz NOT NULL DEFAULT now(),
    revoked_by    text,
    revoked_at    timestamptz,
    CONSTRAINT access_grant_has_places CHECK (
        whole_city OR cardinality(districts) + cardinality(streets) + cardinality(grids) > 0)
);
CREATE INDEX access_grant_active ON ops.access_grant (login) WHERE revoked_at IS NULL;
COMMENT ON TABLE ops.access_grant IS 'one row per grant of data access to a database login (hub access grant/revoke): its jurisdiction, limits and clear-read right; who granted and revoked it, when';
COMMENT ON COLUMN ops.access_grant.login IS 'the PostgreSQL login the grant applies to (session_user)';
COMMENT ON COLUMN ops.access_grant.department IS 'the department the login belongs to, e.g. 兴隆台区城管局';
COMMENT ON COLUMN ops.access_grant.whole_city IS 'true: every row of the city';
COMMENT ON COLUMN ops.access_grant.districts IS 'GB/T 2260 county codes whose rows the login sees (current codes: retired codes are folded on load)';
COMMENT ON COLUMN ops.access_grant.streets IS '9-digit street codes whose rows the login sees';
COMMENT ON COLUMN ops.access_grant.grids IS 'grid codes whose rows the login sees';
COMMENT ON COLUMN ops.access_grant.categories IS 'hub taxonomy codes (a code covers its sub-codes) of the events the login sees; NULL = all';
COMMENT ON COLUMN ops.access_grant.handling_orgs IS '承办单位 names of the events the login sees; NULL = all';
COMMENT ON COLUMN ops.access_grant.clear_pii IS 'the login may read clear personal data through the audited functions (member of hub_pii_reader)';

-- The hub's own reading logins see the city: `hub sql` and the CLI's clear reads.
INSERT INTO ops.access_grant (login, department, whole_city, reason, granted_by)
VALUES ('hub_reader', '(hub CLI: hub sql)', true, 'the operator''s read-only query path', 'migration 0008'),
       ('hub_pii_reader', '(hub CLI: audited clear reads)', true,
        'hub quarantine show --unmasked', 'migration 0008');

-- What the session's login may see, folded into one row so a row policy reads it once
-- per query (uncorrelated sub-selects become init plans). The hub's service roles
-- (owner, loader, steward) see the whole city; a login's grants add up. `hub access
-- grant` keeps the category and organization limits equal across a login's grants,
-- so folding them is exact.
CREATE TYPE ops.jurisdiction AS (
    whole_city boolean, districts text[], streets text[], grids text[],
    category_patterns text[], handling_orgs text[]);

CREATE FUNCTION ops.my_jurisdiction() RETURNS ops.jurisdiction
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
SELECT ROW(
       pg_has_role(session_user, 'hub_owner', 'MEMBER')
         OR pg_has_role(session_user, 'hub_loader', 'MEMBER')
         OR pg_has_role(session_user, 'hub_steward', 'MEMBER')
         OR coalesce(bool_or(g.whole_city), false),
       coalesce(array_agg(DISTINCT d) FILTER (WHERE d IS NOT NULL), '{}'),
       coalesce(array_agg(DISTINCT s) FILTER (WHERE s IS NOT NULL), '{}'),
       coalesce(array_agg(DISTINCT r) FILTER (WHERE r IS NOT NULL), '{}'),
       CASE WHEN bool_and(g.categories IS NOT NULL)
            THEN array_agg(DISTINCT c || '%') FILTER (WHERE c IS NOT NULL) END,
       CASE WHEN bool_and(g.handling_orgs IS NOT NULL)
            THEN array_agg(DISTINCT o) FILTER (WHERE o IS NOT NULL) END
       )::ops.jurisdiction
  FROM (SELECT * FROM ops.access_grant
         WHERE login = session_user AND revoked_at IS NULL) g
  LEFT JOIN LATERAL unnest(g.districts) d ON true
  LEFT JOIN LATERAL unnest(g.streets) s ON true
  LEFT JOIN LATERAL unnest(g.grids) r ON true
  LEFT JOIN LATERAL unnest(g.categories) c ON true
  LEFT JOIN LATERAL unnest(g.handling_orgs) o ON true;
END;
COMMENT ON FUNCTION ops.my_jurisdiction() IS 'the rows the session''s login may see: whole city, or its districts, streets and grids, and its event category and handling-organization limits (NULL = none)';

-- Row-level security on every core table that has a place. FORCE: the owner too, so
-- the marts (views owned by hub_owner) show a department its rows and no others; the
-- policy reads the login (session_user), not the role the view runs as.
DO $rls$
DECLARE
    t text;
    extra text;
BEGIN
    FOREACH t IN ARRAY ARRAY['grid', 'house', 'person', 'organization', 'thing', 'event'] LOOP
        extra := CASE WHEN t = 'event' THEN
            ' AND ((SELECT (ops.my_jurisdiction()).category_patterns) IS NULL'
            '      OR category_code LIKE ANY ((SELECT (ops.my_jurisdiction()).category_patterns)::text[]))'
            ' AND ((SELECT (ops.my_jurisdiction()).handling_orgs) IS NULL'
            '      OR handling_org = ANY ((SELECT (ops.my_jurisdiction()).handling_orgs)::text[]))'
            ELSE '' END;
        EXECUTE format('ALTER TABLE core.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE core.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY jurisdiction ON core.%I FOR SELECT USING ('
            ' ((SELECT (ops.my_jurisdiction()).whole_city)'
            '  OR division_code = ANY ((SELECT (ops.my_jurisdiction()).districts)::text[])'
            '  OR street_code = ANY ((SELECT (ops.my_jurisdiction()).streets)::text[])'
            '  OR grid_code = ANY ((SELECT (ops.my_jurisdiction()).grids)::text[]))%s)', t, extra);
        -- The owner's own sessions (migrations, a backfill) may maintain rows; inside a
        -- mart view the owner acts for the reader's login, which is no owner.
        EXECUTE format('CREATE POLICY maintenance ON core.%I FOR ALL TO hub_owner'
                       ' USING ((SELECT pg_has_role(session_user, ''hub_owner'', ''USAGE'')))'
                       ' WITH CHECK ((SELECT pg_has_role(session_user, ''hub_owner'', ''USAGE'')))', t);
        EXECUTE format('COMMENT ON POLICY jurisdiction ON core.%I IS %L', t,
                       'rows of the login''s jurisdiction (ops.access_grant via ops.my_jurisdiction())');
    END LOOP;
END
$rls$;
-- ------------------------------------------------------------------ masking

CREATE FUNCTION mart.mask_name(name text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN name IS NULL OR btrim(name) = '' THEN NULL
            ELSE left(btrim(name), 1) || repeat('*', greatest(char_length(btrim(name)) - 1, 1)) END;
COMMENT ON FUNCTION mart.mask_name(text) IS 'a person''s name as readers see it: the surname kept, one * per other character (张三丰 → 张**)';

-- The same policy as base.masking.mask_address (tests/integration/test_access.py
-- compares the two): each level of division, shortest first, in order; a place name has
-- no digits or punctuation and none of the words that begin what lies below the street.
CREATE FUNCTION mart.mask_address(address text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    place constant text := '(?:(?!大道|大街|小区|社区|校区|景区|厂区|片区|街区|园区|超市|菜市|市场|乡村|城乡)'
                           '[^\s0-9*#,，。;；:：、()（）\[\]【】<>/\\|路巷弄号室\-_.])';
    level text;
    part text;
    prefix text := '';
    rest text := btrim(address);
BEGIN
    IF rest IS NULL OR rest = '' THEN
        RETURN address;
    END IF;
    FOREACH level IN ARRAY ARRAY['{1,7}?(?:省|自治区|特别行政区)', '{1,9}?(?:自治州|地区|盟|市)',
                                 '{1,9}?(?:区|县|旗|市)', '{1,9}?(?:街道|镇|乡|苏木)'] LOOP
        part := substring(rest FROM '^(' || place || level || ')');
        IF part IS NOT NULL THEN
            prefix := prefix || part;
            rest := substr(rest, char_length(part) + 1);
        END IF;
    END LOOP;
    RETURN CASE WHEN rest = '' THEN prefix ELSE prefix || '***' END;
END $$;
COMMENT ON FUNCTION mart.mask_address(text) IS 'a home address as readers see it: down to the street (街道/镇/乡), else the district, county or city, then *** (辽宁省盘锦市兴隆台区兴隆街道幸福小区3号楼 → 辽宁省盘锦市兴隆台区兴隆街道***); as base.masking.mask_address';

-- ID numbers (18 characters, also read aloud in 3-3-4-4-4 or 6-4-4-4 groups, or legacy
-- 15 digits) and mainland mobile and landline numbers inside free text, keyed with
-- spaces or dashes, full-width digits or +86/0086: as base.masking.mask_text.
CREATE FUNCTION mart.mask_text(content text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN regexp_replace(regexp_replace(regexp_replace(regexp_replace(
           translate(content,
                     '０１２３４５６７８９Ｘｘ＋（）' || chr(12288) || chr(160)
                     || '－‐‑‒–—―−﹘﹣',
                     '0123456789Xx+()  ----------'),
           '(?<![0-9])([1-9][0-9]{2})[ -]?([0-9]{3})[ -]?([0-9]{4})[ -]?([0-9]{4})[ -]?([0-9]{3}[0-9Xx])(?![0-9])',
           '\1\2********\5', 'g'),
           '(?<![0-9])([1-9][0-9]{5})[ -]?([0-9]{5})[ -]?([0-9])[ -]?([0-9]{3})(?![0-9])',
           '\1*****\3\4', 'g'),
           '(?<![0-9])(?:(?:\+|00)?86[ -]?)?(1[3-9][0-9])[ -]?([0-9]{4})[ -]?([0-9]{4})(?![0-9])',
           '\1****\3', 'g'),
           '(?<![0-9])\(?(0[0-9]{2,3})\)?[ -]?([0-9]{3,4})([0-9]{4})(?![0-9])',
           '\1****\3', 'g');
COMMENT ON FUNCTION mart.mask_text(text) IS 'free text as readers see it: every ID number and phone number in it masked (211103********123X, 138****8000); digits keyed full-width come out in ASCII';

-- Record keys the hub derives from a keyed hash (a party or caller known by an ID
-- number or phone: party:<32–64 hex>) are the hash itself, or part of it; people see a short reference of it instead, the
-- same on every screen, which joins to nothing.
CREATE FUNCTION mart.record_ref(source_id text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN source_id ~ '^([a-z_]+:)?[0-9a-f]{32,64}$'
            -- letters only: a reference never reads as a phone or ID number
            THEN regexp_replace(source_id, '[0-9a-f]{32,64}$',
                                translate(left(md5(source_id), 12), '0123456789', 'ghijkmnpqr'))
            ELSE source_id END;
COMMENT ON FUNCTION mart.record_ref(text) IS 'a record''s key as people see it: keys derived from a keyed hash (party:/caller:<32–64 hex>) shortened to a reference that cannot be joined to the hash';
CREATE INDEX person_record_ref ON core.person (source_system, mart.record_ref(source_id))
    WHERE valid_to IS NULL;

-- ------------------------------------------------------------------ reader views
-- Current versions only, personal data masked, no keyed hashes (they would join a
-- masked row to a clear one). Rows: the login's jurisdiction (the tables' policies).

CREATE VIEW mart.person AS
SELECT p.source_system, mart.record_ref(p.source_id) AS source_id, p.source_stream, p.person_key, p.role,
       mart.mask_name(p.name) AS name_masked,
       p.gender,
       extract(year FROM p.birth_date)::int AS birth_year,
       p.ethnicity,
       p.id_number_masked,
       p.phone_masked,
       mart.mask_address(p.household_address) AS household_address_masked,
       mart.mask_address(p.current_address) AS current_address_masked,
       p.population_type,
       p.division_code, p.street_code, p.grid_code,
       p.valid_from AS loaded_at
  FROM core.person p
 WHERE p.valid_to IS NULL;

CREATE VIEW mart.organization AS
SELECT o.source_system, mart.record_ref(o.source_id) AS source_id, o.source_stream, o.org_key,
       o.org_name, o.uscc, o.org_type,
       mart.mask_name(o.legal_rep) AS legal_rep_masked,
       o.phone_masked, o.address,
       o.division_code, o.street_code, o.grid_code,
       o.valid_from AS loaded_at
  FROM core.organization o
 WHERE o.valid_to IS NULL;

CREATE VIEW mart.house AS
SELECT h.source_system, mart.record_ref(h.source_id) AS source_id, h.source_stream, h.house_code,
       mart.mask_address(h.address) AS address_masked,
       h.usage, h.owner_id_number_masked,
       h.division_code, h.street_code, h.grid_code,
       h.valid_from AS loaded_at
  FROM core.house h
 WHERE h.valid_to IS NULL;

CREATE VIEW mart.grid AS
SELECT g.source_system, mart.record_ref(g.source_id) AS source_id, g.source_stream, g.grid_code, g.grid_name, g.grid_type,
       g.division_code, g.street_code, g.community_name, g.boundary_wkt, g.area_m2,
       mart.mask_name(g.worker_name) AS worker_name_masked,
       g.worker_phone_masked,
       g.valid_from AS loaded_at
  FROM core.grid g
 WHERE g.valid_to IS NULL;

CREATE VIEW mart.thing AS
SELECT t.source_system, mart.record_ref(t.source_id) AS source_id, t.source_stream, t.thing_type, t.thing_code, t.name,
       t.category, t.state, t.owner_org, t.manage_org, t.maintain_org, t.address,
       t.division_code, t.street_code, t.grid_code, t.longitude, t.latitude,
       t.source_updated_at, t.valid_from AS loaded_at
  FROM core.thing t
 WHERE t.valid_to IS NULL;

CREATE VIEW mart.event AS
SELECT e.source_system, mart.record_ref(e.source_id) AS source_id, e.source_stream, e.cluster_key, e.transfer_ref,
       e.channel, e.appeal_type, e.category_code, e.source_category, e.status, e.source_status,
       mart.mask_text(e.title) AS title, mart.mask_text(e.description) AS description,
       e.address, e.division_code, e.street_code, e.grid_code, e.longitude, e.latitude,
       e.is_urgent, e.reported_at, e.accepted_at, e.dispatched_at, e.resolved_at, e.closed_at,
       e.deadline_at, e.derived_times, e.handling_org, e.satisfaction,
       e.reporter_name_masked, e.reporter_phone_masked, e.reporter_id_number_masked,
       e.source_updated_at, e.valid_from AS loaded_at
  FROM core.event e
 WHERE e.valid_to IS NULL;

-- Reference lists: readers reach them here, not in core.
CREATE VIEW mart.division AS
SELECT code, name, level, parent_code, table_version, retired_on, replaced_by
  FROM core.division WHERE valid_to IS NULL;

CREATE VIEW mart.event_category AS
SELECT code, name, parent_code, version FROM core.event_category;

CREATE VIEW mart.event_status AS
SELECT status, name_zh, sort_order, description FROM core.event_status;

-- ------------------------------------------------------------------ the audit

ALTER TABLE ops.pii_read ADD COLUMN login text NOT NULL DEFAULT session_user;
ALTER TABLE ops.pii_read ADD COLUMN reason text NOT NULL DEFAULT '(before reasons were required)';
ALTER TABLE ops.pii_read ALTER COLUMN reason DROP DEFAULT;
ALTER TABLE ops.pii_read ADD COLUMN on_behalf_of text;
ALTER TABLE ops.pii_read ADD COLUMN read_id bigint GENERATED ALWAYS AS IDENTITY;
COMMENT ON COLUMN ops.pii_read.read_at IS 'when the clear value was read';
COMMENT ON COLUMN ops.pii_read.reader IS 'the role the read ran as (current_user)';
COMMENT ON COLUMN ops.pii_read.login IS 'the database login that read it (session_user): the person or the hub''s service login';
COMMENT ON COLUMN ops.pii_read.what IS 'what was read, e.g. quality.quarantine.payload';
COMMENT ON COLUMN ops.pii_read.reference IS 'which record: the quarantine id, or source_system/source_id';
COMMENT ON COLUMN ops.pii_read.reason IS 'why, as the reader stated it (required)';
COMMENT ON COLUMN ops.pii_read.on_behalf_of IS 'the person a service login read for, as the client stated (the OS user of hub quarantine show --unmasked)';

-- Append-only for everyone but the owner: no UPDATE/DELETE/TRUNCATE grant to anyone,
-- and a trigger that refuses them all the same (a grant made by mistake later).
CREATE FUNCTION ops.refuse_audit_change() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pg_has_role(current_user, 'hub_owner', 'USAGE') THEN
        RAISE EXCEPTION 'ops.pii_read is append-only: % refused for %', TG_OP, session_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER pii_read_append_only BEFORE UPDATE OR DELETE ON ops.pii_read
    FOR EACH ROW EXECUTE FUNCTION ops.refuse_audit_change();
CREATE TRIGGER pii_read_no_truncate BEFORE TRUNCATE ON ops.pii_read
    FOR EACH STATEMENT EXECUTE FUNCTION ops.refuse_audit_change();

CREATE FUNCTION ops.record_clear_read(what text, reference text, reason text,
                                      on_behalf_of text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pg_has_role(session_user, 'hub_pii_reader', 'USAGE') THEN
        RAISE EXCEPTION 'login % may not read personal data in clear (not a member of hub_pii_reader)',
            session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF reason IS NULL OR char_length(btrim(reason)) < 2 THEN
        RAISE EXCEPTION 'a clear read needs a reason (what it is for), got %', coalesce(quote_literal(reason), 'none')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO ops.pii_read (reader, login, what, reference, reason, on_behalf_of)
    VALUES (current_user, session_user, what, reference, btrim(reason), nullif(btrim(on_behalf_of), ''));
END $$;
REVOKE ALL ON FUNCTION ops.record_clear_read(text, text, text, text) FROM PUBLIC;

-- ------------------------------------------------------------------ clear reads

ALTER TABLE quality.quarantine ADD COLUMN payload_sealed bytea;
ALTER TABLE quality.quarantine ADD COLUMN payload_digest text;
COMMENT ON COLUMN quality.quarantine.payload IS 'what the platform sent, personal data masked (names, ID numbers, phones, addresses below street level)';
COMMENT ON COLUMN quality.quarantine.payload_sealed IS 'the payload in clear, encrypted (AES-256-GCM, key from HUB_PII_KEY): read through ops.quarantine_payload_clear(), audited; replay unseals it';
COMMENT ON COLUMN quality.quarantine.payload_digest IS 'keyed hash of the clear payload: tells two payloads apart without clear text';

-- The sealed payload of one quarantined record, for a member of hub_pii_reader, with
-- the read recorded; the hub opens it with its key (hub quarantine show --unmasked).
CREATE FUNCTION ops.quarantine_payload_clear(quarantine_id bigint, reason text,
                                              on_behalf_of text DEFAULT NULL) RETURNS bytea
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sealed bytea;
BEGIN
    PERFORM ops.record_clear_read('quality.quarantine.payload', quarantine_id::text, reason,
                                  on_behalf_of);
    SELECT q.payload_sealed INTO sealed FROM quality.quarantine q
     WHERE q.quarantine_id = quarantine_payload_clear.quarantine_id;
    RETURN sealed;
END $$;
REVOKE ALL ON FUNCTION ops.quarantine_payload_clear(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.quarantine_payload_clear(bigint, text, text) TO hub_pii_reader;
COMMENT ON FUNCTION ops.quarantine_payload_clear(bigint, text, text) IS 'audited clear read of a quarantined payload (sealed bytes; the hub opens them with its key); hub_pii_reader only, reason required';

-- A person's clear name and addresses, within the login's jurisdiction, audited. The
-- record as mart.person shows it (source_system, source_id).
CREATE FUNCTION ops.person_clear(source_system text, source_id text, reason text,
                                 on_behalf_of text DEFAULT NULL)
    RETURNS TABLE (name text, household_address text, current_address text,
                   special_groups text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM ops.record_clear_read('core.person', source_system || '/' || source_id, reason,
                                  on_behalf_of);
    RETURN QUERY SELECT p.name, p.household_address, p.current_address, p.special_groups
      FROM core.person p
     WHERE p.source_system = person_clear.source_system
       AND mart.record_ref(p.source_id) = person_clear.source_id
       AND p.valid_to IS NULL;
END $$;
REVOKE ALL ON FUNCTION ops.person_clear(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.person_clear(text, text, text, text) TO hub_pii_reader;
COMMENT ON FUNCTION ops.person_clear(text, text, text, text) IS 'audited clear read of a person record''s name, addresses and 特殊人群 tags (sensitive personal information under PIPL art. 28) (rows of the login''s jurisdiction only); hub_pii_reader only, reason required';

-- ------------------------------------------------------------------ privileges

REVOKE ALL ON SCHEMA raw, core, quality, mart, ops FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA raw, core, quality, mart, ops FROM PUBLIC;

-- The pipeline: core, raw and quality, and its bookkeeping in ops.
GRANT USAGE ON SCHEMA raw, core, quality, ops, mart TO hub_loader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA raw, core, quality TO hub_loader;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA raw, core, quality, ops TO hub_loader;
GRANT SELECT ON ALL TABLES IN SCHEMA ops, mart TO hub_loader;
GRANT INSERT, UPDATE, DELETE ON ops.run, ops.cursor, ops.snapshot_seen, ops.rejected_file,
    ops.snapshot_acceptance TO hub_loader;
REVOKE ALL ON ops.access_grant, ops.pii_read FROM hub_loader;
ALTER DEFAULT PRIVILEGES FOR ROLE hub_owner IN SCHEMA raw, core, quality
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hub_loader;
-- The pipeline keeps the statistics of what it just wrote current (ANALYZE of the
-- snapshot keys before the anti join that closes missing records, of core.event before
-- the report): PostgreSQL 17 has a privilege for it; before 17 only the owner may, and
-- autovacuum's analyze is what keeps them current.
DO $maintain$
BEGIN
    IF current_setting('server_version_num')::int >= 170000 THEN
        EXECUTE 'GRANT MAINTAIN ON ALL TABLES IN SCHEMA raw, core, quality TO hub_loader';
        EXECUTE 'GRANT MAINTAIN ON ops.snapshot_seen TO hub_loader';
        EXECUTE 'ALTER DEFAULT PRIVILEGES FOR ROLE hub_owner IN SCHEMA raw, core, quality'
                ' GRANT MAINTAIN ON TABLES TO hub_loader';
    END IF;
END
$maintain$;
ALTER DEFAULT PRIVILEGES FOR ROLE hub_owner IN SCHEMA raw, core, quality, ops
    GRANT USAGE ON SEQUENCES TO hub_loader;

-- Readers (every department login): the marts and masked views, nothing else.
GRANT USAGE ON SCHEMA mart TO hub_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA mart TO hub_reader;
-- No default privilege: a new mart view is granted by its migration, after its masking
-- is checked (tests/integration/test_access.py scans what readers reach).

-- The quality review: runs, findings and the quarantine with its payload masked, record
-- keys as people see them (mart.record_ref), never the sealed payload.
CREATE VIEW quality.quarantine_review AS
SELECT quarantine_id, source_system, stream, mart.record_ref(source_id) AS source_id, entity,
       run_id, rule, reason, failed_rules, payload, payload_kind, quarantined_at, state,
       resolved_run_id, resolved_at
  FROM quality.quarantine;
CREATE VIEW quality.finding_review AS
SELECT run_id, source_system, entity, mart.record_ref(source_id) AS source_id, rule, severity,
       reason, found_at
  FROM quality.finding;
GRANT USAGE ON SCHEMA quality, ops TO hub_steward;
GRANT SELECT ON quality.quarantine_review, quality.finding_review, quality.rule_result,
    quality.gx_validation, quality.report, ops.run, ops.cursor, ops.rejected_file,
    ops.snapshot_acceptance, ops.city_setting, ops.schema_state, ops.schema_migration
    TO hub_steward;

-- The hub's readers check the warehouse is current before they answer.
GRANT USAGE ON SCHEMA ops TO hub_reader;
GRANT SELECT ON ops.schema_state, ops.schema_migration, ops.city_setting TO hub_reader;
