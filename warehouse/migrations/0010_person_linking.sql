-- Resolve, part 1 (issue 10): one person however many platforms know them.
--
-- link/people.py (link_people) gives every current core.person record the person_key of
-- its golden person: records sharing a keyed ID-number hash are one person; the rest are
-- scored by a Splink model (name, pinyin, birth date, gender, phone hash, address and
-- grid) and linked above a conservative threshold, never across two different ID
-- numbers and never across a data steward's split.
--   core.person_golden  one row per golden person: the surviving value of each attribute
--                       and which record it came from
--   core.person_link    one row per current person record: its key, how it was linked
--                       and the evidence
--   ops.link_model      the linking models, with their estimated parameters
--   ops.link_decision   data stewards' splits and merges, applied on every run
--   ops.link_run        one row per linking run
--   mart.person_golden  the golden persons as readers see them (masked)
-- core.event.reporter_person_key (declared in schemas/model.py) holds the person_key of
-- an event's reporter.

-- ------------------------------------------------------------------ golden persons

CREATE TABLE core.person_golden (
    person_key       text PRIMARY KEY,
    name             text,
    gender           text,
    birth_date       date,
    id_number_hash   text,
    id_number_masked text,
    phone_hash       text,
    phone_masked     text,
    current_address  text,
    division_code    text,
    street_code      text,
    grid_code        text,
    members          integer NOT NULL CHECK (members >= 0),
    source_systems   text[] NOT NULL DEFAULT '{}',
    provenance       jsonb NOT NULL DEFAULT '{}'::jsonb,
    model_version    text,
    first_linked_at  timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz,
    replaced_by      text
);
CREATE INDEX person_golden_id_number ON core.person_golden (id_number_hash)
    WHERE retired_at IS NULL;
CREATE INDEX person_golden_grid ON core.person_golden (grid_code) WHERE retired_at IS NULL;
COMMENT ON TABLE core.person_golden IS
    'Grain: one row per golden person (person_key): the human behind the current core.person '
    'records of every platform that share the key. Each attribute is the most recent value '
    'from the most trusted platform that has one (trust order: a parameter of link_people), '
    'provenance says which record it came from. A key no record holds any more is kept, '
    'retired, with the key most of its last records moved to. 人员主数据（跨平台合并后的人）。';
COMMENT ON COLUMN core.person_golden.person_key IS 'the golden person''s key (P + 12 letters), kept while any of its records remains; core.person.person_key';
COMMENT ON COLUMN core.person_golden.name IS '姓名 in its normal form (NFKC, simplified characters, no spaces or separators)';
COMMENT ON COLUMN core.person_golden.gender IS '男 / 女';
COMMENT ON COLUMN core.person_golden.birth_date IS '出生日期';
COMMENT ON COLUMN core.person_golden.id_number_hash IS '公民身份号码 (GB 11643), keyed hash of its identity form (as core.person.id_number_hash)';
COMMENT ON COLUMN core.person_golden.id_number_masked IS '公民身份号码 (GB 11643), masked (211103********123X); from the same record as id_number_hash';
COMMENT ON COLUMN core.person_golden.phone_hash IS '联系电话, keyed hash of its national form (as core.person.phone_hash)';
COMMENT ON COLUMN core.person_golden.phone_masked IS '联系电话, masked (138****8000); from the same record as phone_hash';
COMMENT ON COLUMN core.person_golden.current_address IS '现住址 as its record gives it';
COMMENT ON COLUMN core.person_golden.division_code IS 'GB/T 2260 6-digit county code (current); division, street and grid come from one record';
COMMENT ON COLUMN core.person_golden.street_code IS '9-digit street (乡级) code';
COMMENT ON COLUMN core.person_golden.grid_code IS '网格 code';
COMMENT ON COLUMN core.person_golden.members IS 'current core.person records carrying this person_key (0: retired)';
COMMENT ON COLUMN core.person_golden.source_systems IS 'the platforms whose records it links, sorted';
COMMENT ON COLUMN core.person_golden.provenance IS 'where each attribute came from: one entry per record that gave the golden person something, [{"source_system", "source_id", "loaded_at" (that version''s valid_from), "attributes": [name, gender, birth_date, id_number, phone, current_address, location (division, street and grid together)]}], the record that gave the name first';
COMMENT ON COLUMN core.person_golden.model_version IS 'ops.link_model of the run that last wrote the row';
COMMENT ON COLUMN core.person_golden.first_linked_at IS 'when the key was first given';
COMMENT ON COLUMN core.person_golden.updated_at IS 'when the row last changed';
COMMENT ON COLUMN core.person_golden.retired_at IS 'when the last record left the key (NULL: in use)';
COMMENT ON COLUMN core.person_golden.replaced_by IS 'for a retired key: the key most of its last records carry now (NULL: they are gone)';

-- ------------------------------------------------------------------ links

CREATE TABLE core.person_link (
    source_system     text NOT NULL,
    source_id         text NOT NULL,
    person_key        text NOT NULL,
    method            text NOT NULL
                      CHECK (method IN ('id_number', 'probabilistic', 'steward', 'singleton')),
    match_probability double precision CHECK (match_probability BETWEEN 0 AND 1),
    evidence          jsonb NOT NULL DEFAULT '{}'::jsonb,
    model_version     text,
    linked_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_system, source_id)
);
CREATE INDEX person_link_key ON core.person_link (person_key);
COMMENT ON TABLE core.person_link IS
    'Grain: one row per current core.person record (source_system, source_id): the golden '
    'person it resolves to, how, and the evidence. 人员记录 → 人员主数据键及归并依据。';
COMMENT ON COLUMN core.person_link.source_system IS 'platform instance of the record (core.person.source_system)';
COMMENT ON COLUMN core.person_link.source_id IS 'the platform''s key of the record (core.person.source_id)';
COMMENT ON COLUMN core.person_link.person_key IS 'the golden person (core.person_golden) the record resolves to';
COMMENT ON COLUMN core.person_link.method IS 'id_number: another record of the person has the same ID-number hash; probabilistic: the model scored it a match with another record; steward: a data steward merged it (ops.link_decision); singleton: no other record of the person is known';
COMMENT ON COLUMN core.person_link.match_probability IS 'probabilistic: the model''s match probability of its best link (0–1); id_number and steward 1; singleton NULL';
COMMENT ON COLUMN core.person_link.evidence IS 'what linked it: {"with": [source_system, source_id] of the record it matched, "match_weight", "comparisons": {name, birth_date, gender, phone, place: the agreement level of each, e.g. exact, pinyin, null}} for probabilistic; {"id_number_hash": "equal", "records": n} for id_number; {"decision_id"} for steward';
COMMENT ON COLUMN core.person_link.model_version IS 'ops.link_model that scored it (NULL: no model took part)';
COMMENT ON COLUMN core.person_link.linked_at IS 'when the key or the evidence last changed';

-- Where the reporters' look-ups join core.person. No index on core.person.person_key:
-- the linking rewrites it in place, and an index on it would make every such update
-- touch every index of the table; core.person_link has the key's index.
CREATE INDEX IF NOT EXISTS person_current_id_number ON core.person (id_number_hash)
    WHERE valid_to IS NULL AND id_number_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS person_current_phone ON core.person (phone_hash)
    WHERE valid_to IS NULL AND phone_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_reporter_person ON core.event (reporter_person_key)
    WHERE valid_to IS NULL AND reporter_person_key IS NOT NULL;

-- ------------------------------------------------------------------ models, decisions, runs

CREATE TABLE ops.link_model (
    model_version text PRIMARY KEY,
    entity        text NOT NULL CHECK (entity IN ('person', 'organization', 'incident')),
    settings      jsonb NOT NULL,
    trained_at    timestamptz NOT NULL DEFAULT now(),
    records       bigint NOT NULL CHECK (records >= 0)
);
CREATE INDEX link_model_latest ON ops.link_model (entity, trained_at DESC);
COMMENT ON TABLE ops.link_model IS
    'Grain: one row per linking model: its settings with the estimated parameters. The version '
    'is a hash of the settings, so retraining on the same records gives the same version.';
COMMENT ON COLUMN ops.link_model.model_version IS 'the model''s version: entity and 12 hex characters of the hash of its settings';
COMMENT ON COLUMN ops.link_model.entity IS 'what it links: person, organization or incident';
COMMENT ON COLUMN ops.link_model.settings IS '{"splink": the Splink 5 settings with each comparison level''s m and u probability, "threshold": the match probability a link needs, "training": how the parameters were estimated (em, or prior when too few records), "rules": the hard rules applied beside the model}';
COMMENT ON COLUMN ops.link_model.trained_at IS 'when it was estimated';
COMMENT ON COLUMN ops.link_model.records IS 'records it was estimated on';

CREATE TABLE ops.link_decision (
    decision_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity          text NOT NULL CHECK (entity IN ('person', 'organization', 'incident')),
    action          text NOT NULL CHECK (action IN ('split', 'merge')),
    source_system_a text,
    source_id_a     text,
    source_system_b text,
    source_id_b     text,
    key_a           text,
    key_b           text,
    decided_by      text NOT NULL CHECK (btrim(decided_by) <> ''),
    reason          text NOT NULL CHECK (btrim(reason) <> ''),
    decided_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_by      text,
    revoke_reason   text,
    CONSTRAINT link_decision_names_two CHECK (
        (source_system_a IS NOT NULL AND source_id_a IS NOT NULL
         AND source_system_b IS NOT NULL AND source_id_b IS NOT NULL)
        OR (key_a IS NOT NULL AND key_b IS NOT NULL)),
    CONSTRAINT link_decision_revoked_with_reason CHECK (
        revoked_at IS NULL OR (revoked_by IS NOT NULL AND btrim(coalesce(revoke_reason, '')) <> ''))
);
CREATE INDEX link_decision_active ON ops.link_decision (entity, decided_at)
    WHERE revoked_at IS NULL;
COMMENT ON TABLE ops.link_decision IS
    'Grain: one row per data steward''s decision on linking: split (two records are different '
    'people or organizations: they never end in one cluster) or merge (two are one: they always '
    'do). Applied on every later run, a full rebuild too, until revoked. 人工拆分/合并决定。';
COMMENT ON COLUMN ops.link_decision.decision_id IS 'the decision''s number';
COMMENT ON COLUMN ops.link_decision.entity IS 'person, organization or incident';
COMMENT ON COLUMN ops.link_decision.action IS 'split: never together; merge: always together';
COMMENT ON COLUMN ops.link_decision.source_system_a IS 'first record: its platform instance (for a merge of keys: the record that stood for key_a when it was decided)';
COMMENT ON COLUMN ops.link_decision.source_id_a IS 'first record: the platform''s key of it';
COMMENT ON COLUMN ops.link_decision.source_system_b IS 'second record: its platform instance';
COMMENT ON COLUMN ops.link_decision.source_id_b IS 'second record: the platform''s key of it';
COMMENT ON COLUMN ops.link_decision.key_a IS 'merge: the first golden key as the steward saw it';
COMMENT ON COLUMN ops.link_decision.key_b IS 'merge: the second golden key as the steward saw it';
COMMENT ON COLUMN ops.link_decision.decided_by IS 'who decided (a person, not a role)';
COMMENT ON COLUMN ops.link_decision.reason IS 'why: what the steward checked';
COMMENT ON COLUMN ops.link_decision.decided_at IS 'when it was decided';
COMMENT ON COLUMN ops.link_decision.revoked_at IS 'when it was revoked (NULL: in force)';
COMMENT ON COLUMN ops.link_decision.revoked_by IS 'who revoked it';
COMMENT ON COLUMN ops.link_decision.revoke_reason IS 'why it was revoked';

CREATE TABLE ops.link_run (
    link_run_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity        text NOT NULL CHECK (entity IN ('person', 'organization', 'incident')),
    mode          text NOT NULL CHECK (mode IN ('full', 'incremental')),
    model_version text,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    records       bigint NOT NULL,
    compared      bigint NOT NULL,
    summary       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX link_run_latest ON ops.link_run (entity, started_at DESC);
COMMENT ON TABLE ops.link_run IS
    'Grain: one row per completed linking run. An incremental run compares the records new or '
    'changed since the latest run''s start. 归并运行记录。';
COMMENT ON COLUMN ops.link_run.link_run_id IS 'the run''s number';
COMMENT ON COLUMN ops.link_run.entity IS 'person, organization or incident';
COMMENT ON COLUMN ops.link_run.mode IS 'full: every record compared again; incremental: the new and changed records (and the clusters they touch) against the rest';
COMMENT ON COLUMN ops.link_run.model_version IS 'ops.link_model the run scored with';
COMMENT ON COLUMN ops.link_run.started_at IS 'when the run started (the next incremental run compares records loaded since)';
COMMENT ON COLUMN ops.link_run.finished_at IS 'when it committed';
COMMENT ON COLUMN ops.link_run.records IS 'current records it linked';
COMMENT ON COLUMN ops.link_run.compared IS 'records it compared (all of them in a full run)';
COMMENT ON COLUMN ops.link_run.summary IS 'counts of the run: pairs scored, links by method, clusters, keys new / kept / retired, records whose key changed, events given a reporter, decisions applied, seconds per step';

-- ------------------------------------------------------------------ access

-- As 0008 for the core tables with a place: rows of the login's jurisdiction; the owner's
-- own sessions maintain.
ALTER TABLE core.person_golden ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.person_golden FORCE ROW LEVEL SECURITY;
CREATE POLICY jurisdiction ON core.person_golden FOR SELECT USING (
    (SELECT (ops.my_jurisdiction()).whole_city)
    OR division_code = ANY ((SELECT (ops.my_jurisdiction()).districts)::text[])
    OR street_code = ANY ((SELECT (ops.my_jurisdiction()).streets)::text[])
    OR grid_code = ANY ((SELECT (ops.my_jurisdiction()).grids)::text[]));
CREATE POLICY maintenance ON core.person_golden FOR ALL TO hub_owner
    USING ((SELECT pg_has_role(session_user, 'hub_owner', 'USAGE')))
    WITH CHECK ((SELECT pg_has_role(session_user, 'hub_owner', 'USAGE')));
COMMENT ON POLICY jurisdiction ON core.person_golden IS 'rows of the login''s jurisdiction (ops.access_grant via ops.my_jurisdiction())';

-- The linking runs as the pipeline (hub_loader bypasses row security to write every
-- district's rows). Default privileges give it new core tables; said here all the same.
GRANT SELECT, INSERT, UPDATE, DELETE ON core.person_golden, core.person_link TO hub_loader;
GRANT SELECT, INSERT, UPDATE ON ops.link_model, ops.link_decision, ops.link_run TO hub_loader;
GRANT SELECT ON ops.link_model, ops.link_decision, ops.link_run TO hub_steward;

-- ------------------------------------------------------------------ the readers' view

CREATE VIEW mart.person_golden AS
SELECT g.person_key,
       mart.mask_name(g.name) AS name_masked,
       g.gender,
       extract(year FROM g.birth_date)::int AS birth_year,
       g.id_number_masked,
       g.phone_masked,
       mart.mask_address(g.current_address) AS current_address_masked,
       g.division_code, g.street_code, g.grid_code,
       g.members, g.source_systems,
       g.updated_at
  FROM core.person_golden g
 WHERE g.retired_at IS NULL;
GRANT SELECT ON mart.person_golden TO hub_reader;
COMMENT ON VIEW mart.person_golden IS
    'Grain: one row per golden person in use (core.person_golden, not retired): the human behind '
    'the mart.person records that share its person_key, across platforms. Each attribute is the '
    'most recent value from the most trusted platform that has one. Personal data masked; no '
    'keyed hashes. Rows: the login''s jurisdiction (row-level security). '
    '人员主数据：跨平台合并后每人一行，个人信息已脱敏；只含本账号辖区的行。';
COMMENT ON COLUMN mart.person_golden.person_key IS '人员归并键：与 mart.person.person_key 相同 / the golden person''s key; mart.person rows with this person_key are its records';
COMMENT ON COLUMN mart.person_golden.name_masked IS '姓名（脱敏：保留姓，其余每字一个 *，如 张三丰 → 张**；mart.mask_name）/ name, masked: the surname kept, one * per other character (mart.mask_name)';
COMMENT ON COLUMN mart.person_golden.gender IS '性别：男 / 女 / gender';
COMMENT ON COLUMN mart.person_golden.birth_year IS '出生年份（只给年份，不给出生日期）/ year of birth (the full birth date is not shown)';
COMMENT ON COLUMN mart.person_golden.id_number_masked IS '公民身份号码（GB 11643，已规范为 18 位；脱敏：保留前 6 位行政区划码和后 4 位，如 211103********123X）/ citizen ID number (GB 11643), masked: the 6-digit region code and the last 4 kept';
COMMENT ON COLUMN mart.person_golden.phone_masked IS '联系电话（脱敏：手机保留前 3 位和后 4 位，如 138****8000，座机保留区号前 4 位和后 4 位）/ phone, masked: mobiles keep the first 3 and last 4 digits, landlines the first 4 and last 4';
COMMENT ON COLUMN mart.person_golden.current_address_masked IS '现住址（脱敏：只保留到街道/镇/乡，否则到区县或市，其后为 ***；mart.mask_address）/ current address, masked: kept up to the street (街道/镇/乡), else the district or city, then *** (mart.mask_address)';
COMMENT ON COLUMN mart.person_golden.division_code IS '区县代码（GB/T 2260 六位，现行）/ GB/T 2260 6-digit county code, current; division, street and grid come from one record';
COMMENT ON COLUMN mart.person_golden.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.person_golden.grid_code IS '网格编码（见 mart.grid）/ grid code (mart.grid)';
COMMENT ON COLUMN mart.person_golden.members IS '归并的当前人员记录数 / current person records (mart.person) with this person_key';
COMMENT ON COLUMN mart.person_golden.source_systems IS '记录所在平台 / the platforms whose records it links, sorted';
COMMENT ON COLUMN mart.person_golden.updated_at IS '最近一次变更时间 / when the golden person last changed';
