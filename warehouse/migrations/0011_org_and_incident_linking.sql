-- Resolve, part 2 and 3 (issue 10): one organization however each platform names it,
-- and one incident however many reports of it came in.
--
-- Organizations (link/orgs.py, link_organizations): every current core.organization
-- row gets the org_key of its golden organization, first by a valid GB 32100 code,
-- then by its name's normal form (NFKC, half-width, brackets unified, blanks removed,
-- 有限责任公司 = 有限公司, abbreviations and place-in-brackets spellings of departments
-- expanded by the curated list below), with address, legal representative or phone
-- deciding where one name stands for several registered codes.
--   core.org_alias_curated  the curated spellings (schemas/reference/org_aliases.csv,
--                           loaded by `hub migrate`)
--   core.org_golden         one row per golden organization, with its provenance
--   core.org_alias          every name a platform uses (organization records and the
--                           承办单位 of events) → org_key: the marts join
--                           core.event.handling_org = core.org_alias.name
--
-- Incidents (link/incidents.py, cluster_incidents): reports of one incident share
-- core.event.cluster_key; core.incident_cluster holds one row per cluster of two or
-- more current reports, its lead (earliest) report and the evidence that joined each
-- member. A report alone in its cluster keeps cluster_key NULL (mart.event_current
-- counts it as cluster_size 1).

-- ------------------------------------------------------------------ organizations

CREATE TABLE core.org_alias_curated (
    kind      text NOT NULL CHECK (kind IN ('word', 'name')),
    alias     text NOT NULL CHECK (btrim(alias) <> ''),
    canonical text NOT NULL CHECK (btrim(canonical) <> ''),
    note      text,
    PRIMARY KEY (kind, alias)
);
COMMENT ON TABLE core.org_alias_curated IS
    'Grain: one row per curated spelling of an organization name (schemas/reference/org_aliases.csv, '
    'loaded by hub migrate). word: an abbreviation replaced wherever it stands in a name '
    '(城管局 → 城市管理综合行政执法局); name: a whole name that means another (市城管局 → '
    '盘锦市城市管理综合行政执法局). 组织名称的人工维护别名表。';
COMMENT ON COLUMN core.org_alias_curated.kind IS 'word: replaced inside any name; name: the whole name (after normalising) stands for canonical';
COMMENT ON COLUMN core.org_alias_curated.alias IS 'the spelling platforms use, e.g. 城管局';
COMMENT ON COLUMN core.org_alias_curated.canonical IS 'what it stands for, e.g. 城市管理综合行政执法局';
COMMENT ON COLUMN core.org_alias_curated.note IS 'why the alias holds (who confirmed it, where it was seen)';

CREATE TABLE core.org_golden (
    org_key         text PRIMARY KEY,
    name            text NOT NULL,
    name_normal     text NOT NULL,
    uscc            text,
    org_type        text,
    address         text,
    division_code   text,
    street_code     text,
    parent_key      text,
    members         integer NOT NULL CHECK (members >= 0),
    source_systems  text[] NOT NULL DEFAULT '{}',
    provenance      jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_linked_at timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz,
    replaced_by     text
);
-- One golden organization per registered code.
CREATE UNIQUE INDEX org_golden_uscc ON core.org_golden (uscc)
    WHERE uscc IS NOT NULL AND retired_at IS NULL;
CREATE INDEX org_golden_name_normal ON core.org_golden (name_normal) WHERE retired_at IS NULL;
CREATE INDEX org_golden_division ON core.org_golden (division_code);
COMMENT ON TABLE core.org_golden IS
    'Grain: one row per golden organization (org_key): the organization behind the current '
    'core.organization records of every platform that share its org_key, and behind the event '
    '承办单位 names that core.org_alias maps to it. A key no record holds any more is kept, '
    'retired, with the key most of its records moved to. 组织主数据（跨平台合并后的组织）。';
COMMENT ON COLUMN core.org_golden.org_key IS 'the golden organization''s key (org_ + 16 hex), kept while any of its records remains';
COMMENT ON COLUMN core.org_golden.name IS '名称: the name its records use most (a record with a valid credit code first)';
COMMENT ON COLUMN core.org_golden.name_normal IS 'the name''s normal form the linking compares (NFKC, brackets unified, blanks removed, 有限责任公司 = 有限公司, curated abbreviations expanded)';
COMMENT ON COLUMN core.org_golden.uscc IS 'GB 32100 统一社会信用代码 of its records (only codes with a valid check character); NULL: none known';
COMMENT ON COLUMN core.org_golden.org_type IS 'enterprise / social / department / mediation_committee …: the type its records give most';
COMMENT ON COLUMN core.org_golden.address IS '地址: the address its records give most';
COMMENT ON COLUMN core.org_golden.division_code IS 'GB/T 2260 6-digit county code its records give most (current code)';
COMMENT ON COLUMN core.org_golden.street_code IS '9-digit street (乡级) code its records give most';
COMMENT ON COLUMN core.org_golden.parent_key IS 'the org_key of the organization a branch (分公司, 分店, 营业部, 分局 …) belongs to, when that organization is known; NULL otherwise';
COMMENT ON COLUMN core.org_golden.members IS 'current core.organization records carrying this org_key (0: known only as an event''s 承办单位, or retired)';
COMMENT ON COLUMN core.org_golden.source_systems IS 'the platforms whose records or events name it';
COMMENT ON COLUMN core.org_golden.provenance IS 'how its records were linked: {"rules": {rule: records}, "names": [names its records and events use, up to 20], "handling_org_events": events naming it as 承办单位, "uscc_rejected": [codes its records gave that fail the GB 32100 check], "ambiguous_names": [normal names it shares with another organization]}; rules: uscc (the same valid code), name (the same name but for spelling), alias (a curated abbreviation or name, or a place written otherwise, made the names one), legal_rep / phone / address (one name, several codes: the record agrees with one of them on this), own (linked to no other record)';
COMMENT ON COLUMN core.org_golden.first_linked_at IS 'when the key was first given';
COMMENT ON COLUMN core.org_golden.updated_at IS 'when the row last changed';
COMMENT ON COLUMN core.org_golden.retired_at IS 'when the last record left the key (NULL: in use)';
COMMENT ON COLUMN core.org_golden.replaced_by IS 'for a retired key: the key most of its last records carry now';

CREATE TABLE core.org_alias (
    name           text NOT NULL,
    org_key        text NOT NULL,
    name_normal    text NOT NULL,
    rule           text NOT NULL,
    ambiguous      boolean NOT NULL DEFAULT false,
    records        integer NOT NULL DEFAULT 0,
    events         bigint NOT NULL DEFAULT 0,
    source_systems text[] NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, org_key)
);
CREATE INDEX org_alias_key ON core.org_alias (org_key);
CREATE INDEX org_alias_normal ON core.org_alias (name_normal);
COMMENT ON TABLE core.org_alias IS
    'Grain: one row per organization name as a platform writes it (trimmed) and golden organization '
    'it stands for: the names of current core.organization records and the 承办单位 '
    '(core.event.handling_org) of current events. Join events with '
    'core.event.handling_org = core.org_alias.name AND NOT ambiguous. 组织名称 → 组织主数据键。';
COMMENT ON COLUMN core.org_alias.name IS 'the name as written on a platform (surrounding blanks removed), e.g. 城管局（兴隆台）';
COMMENT ON COLUMN core.org_alias.org_key IS 'the golden organization it stands for (core.org_golden)';
COMMENT ON COLUMN core.org_alias.name_normal IS 'the name''s normal form (as core.org_golden.name_normal)';
COMMENT ON COLUMN core.org_alias.rule IS 'how the name reached the organization: uscc, name, alias, legal_rep, phone, address (as core.org_golden.provenance), or own (the organization''s only name)';
COMMENT ON COLUMN core.org_alias.ambiguous IS 'true: the name stands for more than one organization (e.g. one name, several registered codes); a join on the name alone is not safe';
COMMENT ON COLUMN core.org_alias.records IS 'current core.organization records with this name and org_key';
COMMENT ON COLUMN core.org_alias.events IS 'current events whose 承办单位 is this name';
COMMENT ON COLUMN core.org_alias.source_systems IS 'the platforms that use the name';
COMMENT ON COLUMN core.org_alias.updated_at IS 'when the row last changed';

-- ------------------------------------------------------------------ incidents

CREATE TABLE core.incident_cluster (
    cluster_key        text PRIMARY KEY,
    lead_source_system text NOT NULL,
    lead_source_id     text NOT NULL,
    members            integer NOT NULL CHECK (members > 1),
    source_systems     text[] NOT NULL,
    first_reported_at  timestamptz,
    last_reported_at   timestamptz,
    category_code      text,
    division_code      text,
    street_code        text,
    grid_code          text,
    evidence           jsonb NOT NULL,
    first_clustered_at timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX incident_cluster_lead ON core.incident_cluster (lead_source_system, lead_source_id);
CREATE INDEX incident_cluster_first ON core.incident_cluster (first_reported_at);
COMMENT ON TABLE core.incident_cluster IS
    'Grain: one row per incident reported two or more times (a cluster of current core.event rows '
    'sharing cluster_key), across platforms: its lead (earliest) report and the evidence that '
    'joined each member. A report alone has no cluster_key and no row here. '
    '事件簇：同一事件的多次报告（跨平台），含首报与归并依据。';
COMMENT ON COLUMN core.incident_cluster.cluster_key IS 'the key its reports share in core.event.cluster_key (inc_ + 16 hex); kept while its lead report remains in the cluster';
COMMENT ON COLUMN core.incident_cluster.lead_source_system IS 'platform of the lead report: the earliest reported member';
COMMENT ON COLUMN core.incident_cluster.lead_source_id IS 'the platform''s key of the lead report';
COMMENT ON COLUMN core.incident_cluster.members IS 'current reports in the cluster (2 or more)';
COMMENT ON COLUMN core.incident_cluster.source_systems IS 'the platforms its reports came from';
COMMENT ON COLUMN core.incident_cluster.first_reported_at IS 'reported_at of the earliest member (the lead)';
COMMENT ON COLUMN core.incident_cluster.last_reported_at IS 'reported_at of the latest member';
COMMENT ON COLUMN core.incident_cluster.category_code IS 'hub taxonomy code of the lead report';
COMMENT ON COLUMN core.incident_cluster.division_code IS 'GB/T 2260 county code of the lead report';
COMMENT ON COLUMN core.incident_cluster.street_code IS '9-digit street code of the lead report';
COMMENT ON COLUMN core.incident_cluster.grid_code IS 'grid code of the lead report';
COMMENT ON COLUMN core.incident_cluster.evidence IS 'how each member joined: {"params": {window_hours, distance_m, text_threshold, text_stretch, compatible}, "members": [{"source_system", "source_id", "rule": lead | transfer | near | grid, "via": [source_system, source_id] of the earlier member it matched, "distance_m" (metres), "minutes" (apart from that member), "text_similarity" (character-bigram Jaccard of title + description; absent when not compared), "categories": [its, via''s hub category]}]}. rule transfer: its transfer_ref (or the 工单号 its text quotes) is the other report''s key; near: within distance_m and window_hours of it, compatible categories, similar text (or, without text of its own, the same category); grid: the same, in the same grid, one of the two without coordinates';
COMMENT ON COLUMN core.incident_cluster.first_clustered_at IS 'when the key was first given';
COMMENT ON COLUMN core.incident_cluster.updated_at IS 'when the row last changed';

-- ------------------------------------------------------------------ access
-- As 0008 for the core tables with a place: rows of the login's jurisdiction; the
-- owner's own sessions maintain. Readers reach core through no grant today; the
-- policies stand for a mart view that will show these tables.
ALTER TABLE core.org_golden ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.org_golden FORCE ROW LEVEL SECURITY;
CREATE POLICY jurisdiction ON core.org_golden FOR SELECT USING (
    (SELECT (ops.my_jurisdiction()).whole_city)
    OR division_code = ANY ((SELECT (ops.my_jurisdiction()).districts)::text[])
    OR street_code = ANY ((SELECT (ops.my_jurisdiction()).streets)::text[]));
CREATE POLICY maintenance ON core.org_golden FOR ALL TO hub_owner
    USING ((SELECT pg_has_role(session_user, 'hub_owner', 'USAGE')))
    WITH CHECK ((SELECT pg_has_role(session_user, 'hub_owner', 'USAGE')));
COMMENT ON POLICY jurisdiction ON core.org_golden IS 'rows of the login''s jurisdiction (ops.access_grant via ops.my_jurisdiction())';

ALTER TABLE core.incident_cluster ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.incident_cluster FORCE ROW LEVEL SECURITY;
CREATE POLICY jurisdiction ON core.incident_cluster FOR SELECT USING (
    (SELECT (ops.my_jurisdiction()).whole_city)
    OR division_code = ANY ((SELECT (ops.my_jurisdiction()).districts)::text[])
    OR street_code = ANY ((SELECT (ops.my_jurisdiction()).streets)::text[])
    OR grid_code = ANY ((SELECT (ops.my_jurisdiction()).grids)::text[]));
CREATE POLICY maintenance ON core.incident_cluster FOR ALL TO hub_owner
    USING ((SELECT pg_has_role(session_user, 'hub_owner', 'USAGE')))
    WITH CHECK ((SELECT pg_has_role(session_user, 'hub_owner', 'USAGE')));
COMMENT ON POLICY jurisdiction ON core.incident_cluster IS 'rows of the login''s jurisdiction (ops.access_grant via ops.my_jurisdiction())';

-- The linking runs as the pipeline (hub_loader, which bypasses row security to write
-- every district's rows). Default privileges give it new core tables already; said
-- here so the grant does not hang on them.
GRANT SELECT, INSERT, UPDATE, DELETE ON core.org_golden, core.org_alias, core.incident_cluster
    TO hub_loader;
-- The curated list is the migration's to write (hub migrate loads the file).
GRANT SELECT ON core.org_alias_curated TO hub_loader;
REVOKE INSERT, UPDATE, DELETE ON core.org_alias_curated FROM hub_loader;
