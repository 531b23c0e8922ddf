-- The warehouse layers and the hub's own bookkeeping.
-- Core entity tables are not here: they are derived from schemas/model.py and
-- brought up to date by warehouse.migrate on every migration run.

CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS quality;
CREATE SCHEMA IF NOT EXISTS mart;
CREATE SCHEMA IF NOT EXISTS ops;

COMMENT ON SCHEMA raw IS 'landed source records as received';
COMMENT ON SCHEMA core IS 'the unified 人地事物组织 model, history kept (valid_to IS NULL = current)';
COMMENT ON SCHEMA quality IS 'rule results, findings and quarantined records';
COMMENT ON SCHEMA mart IS 'department-facing views and figures';
COMMENT ON SCHEMA ops IS 'pipeline runs and incremental cursors';

-- One row per pipeline run of one source. extracted = loaded + quarantined holds
-- for every committed batch, so it holds for the run whatever happened to it.
CREATE TABLE ops.run (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_system text NOT NULL,
    connector     text NOT NULL,
    trigger       text NOT NULL DEFAULT 'cli',
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    outcome       text NOT NULL DEFAULT 'running'
                  CHECK (outcome IN ('running', 'succeeded', 'failed', 'abandoned')),
    batches       integer NOT NULL DEFAULT 0,
    extracted     bigint NOT NULL DEFAULT 0,
    loaded        bigint NOT NULL DEFAULT 0,
    quarantined   bigint NOT NULL DEFAULT 0,
    reread        bigint NOT NULL DEFAULT 0,
    inserted      bigint NOT NULL DEFAULT 0,
    updated       bigint NOT NULL DEFAULT 0,
    unchanged     bigint NOT NULL DEFAULT 0,
    closed        bigint NOT NULL DEFAULT 0,
    timings       jsonb NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    host          text,
    pid           integer,
    CONSTRAINT run_counts_reconcile CHECK (extracted = loaded + quarantined)
);
CREATE INDEX run_source_started ON ops.run (source_system, started_at DESC);
COMMENT ON TABLE ops.run IS 'one row per pipeline run and source: counts, timings, outcome';
COMMENT ON COLUMN ops.run.reread IS 'records seen again in the same run (overlap window, shifted pages), not counted as extracted';

-- Incremental position per source and stream, committed in the same transaction as the data.
CREATE TABLE ops.cursor (
    source_system text NOT NULL,
    stream        text NOT NULL,
    state         jsonb NOT NULL,
    run_id        bigint REFERENCES ops.run,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_system, stream)
);
COMMENT ON TABLE ops.cursor IS 'where each source stream''s next incremental read starts';

-- Keys seen so far of a full snapshot being loaded in several batches; when the
-- snapshot is complete, current records it did not contain are closed.
CREATE TABLE ops.snapshot_seen (
    source_system text NOT NULL,
    stream        text NOT NULL,
    snapshot_id   text NOT NULL,
    source_id     text NOT NULL
);
-- No index: rows arrive by COPY a whole batch at a time and are read once, by a hash
-- anti join when the snapshot completes; an index would only slow the COPY.

-- Every rejected record, with why, and what happened to it since.
CREATE TABLE quality.quarantine (
    quarantine_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_system  text NOT NULL,
    stream         text NOT NULL,
    source_id      text,
    entity         text NOT NULL,
    run_id         bigint NOT NULL REFERENCES ops.run,
    rule           text NOT NULL,
    reason         text NOT NULL,
    failed_rules   jsonb NOT NULL DEFAULT '[]'::jsonb,
    payload        jsonb NOT NULL,
    -- 'source': the platform's record as received (replayable); 'conformed': a
    -- row derived from one (it comes back when its source record is replayed).
    payload_kind   text NOT NULL CHECK (payload_kind IN ('source', 'conformed')),
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    state          text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'replayed', 'superseded')),
    resolved_run_id bigint REFERENCES ops.run,
    resolved_at    timestamptz
);
CREATE INDEX quarantine_open ON quality.quarantine (source_system, rule) WHERE state = 'open';
-- A source record has at most one open entry: the overlap window and reruns see a
-- rejected record again, and it must not pile up.
CREATE INDEX quarantine_open_record ON quality.quarantine (source_system, entity, source_id)
    WHERE state = 'open';
COMMENT ON TABLE quality.quarantine IS 'one row per rejected source record: rule, reason, original payload, replay state';

-- Warning-level findings on rows that were loaded.
CREATE TABLE quality.finding (
    run_id        bigint NOT NULL REFERENCES ops.run,
    source_system text NOT NULL,
    entity        text NOT NULL,
    source_id     text,
    rule          text NOT NULL,
    severity      text NOT NULL,
    reason        text NOT NULL,
    found_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX finding_run ON quality.finding (run_id, rule);
COMMENT ON TABLE quality.finding IS 'one row per loaded row and warning rule it failed';

-- Per run, entity and rule: how many rows were checked and how many failed.
CREATE TABLE quality.rule_result (
    run_id        bigint NOT NULL REFERENCES ops.run,
    source_system text NOT NULL,
    entity        text NOT NULL,
    rule          text NOT NULL,
    severity      text NOT NULL,
    dimension     text NOT NULL,
    evaluated     bigint NOT NULL,
    failed        bigint NOT NULL,
    PRIMARY KEY (run_id, entity, rule)
);
COMMENT ON TABLE quality.rule_result IS 'one row per run, entity and rule: rows evaluated and failed';

-- Great Expectations validation results, archived as GX reports them.
CREATE TABLE quality.gx_validation (
    run_id        bigint NOT NULL REFERENCES ops.run,
    entity        text NOT NULL,
    batch_no      integer NOT NULL,
    success       boolean NOT NULL,
    result        jsonb NOT NULL,
    validated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, entity, batch_no)
);

-- Every read of personal data in clear leaves a trace.
CREATE TABLE ops.pii_read (
    read_at    timestamptz NOT NULL DEFAULT now(),
    reader     text NOT NULL DEFAULT current_user,
    what       text NOT NULL,
    reference  text NOT NULL
);
COMMENT ON TABLE ops.pii_read IS 'one row per read of personal data in clear: who, when, what';
