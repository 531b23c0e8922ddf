-- Files that were not loaded at all, snapshots an operator accepted despite the size
-- guard, and what a run wants its operator to know.

-- One row per delivered file (name and bytes) that was rejected as a whole:
-- unreadable (bad encoding, truncated workbook, not GeoJSON) or a complete snapshot
-- implausibly smaller than the register. The stream goes on without it; a corrected
-- file (other bytes) is a new delivery and is read normally.
CREATE TABLE ops.rejected_file (
    source_system text NOT NULL,
    stream        text NOT NULL,
    file_name     text NOT NULL,
    sha256        text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('unreadable', 'too_small')),
    reason        text NOT NULL,
    first_run_id  bigint NOT NULL REFERENCES ops.run,
    last_run_id   bigint NOT NULL REFERENCES ops.run,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 1,
    PRIMARY KEY (source_system, stream, file_name, sha256)
);
COMMENT ON TABLE ops.rejected_file IS 'one row per delivered file (name + sha256) rejected as a whole, with why; shown by hub status and the weekly report';
COMMENT ON COLUMN ops.rejected_file.kind IS 'unreadable: the file cannot be read as a whole; too_small: a complete snapshot far smaller than the current register (accept it with hub snapshot accept)';
COMMENT ON COLUMN ops.rejected_file.attempts IS 'runs that met this file and rejected it again';

-- A snapshot refused by the size guard loads only after an operator accepts it here.
CREATE TABLE ops.snapshot_acceptance (
    source_system text NOT NULL,
    stream        text NOT NULL,
    snapshot_id   text NOT NULL,
    accepted_by   text NOT NULL,
    reason        text NOT NULL,
    accepted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_system, stream, snapshot_id)
);
COMMENT ON TABLE ops.snapshot_acceptance IS 'snapshots an operator accepted despite the too-small guard: who, when, why';

ALTER TABLE ops.run ADD COLUMN warnings jsonb NOT NULL DEFAULT '[]'::jsonb;
COMMENT ON COLUMN ops.run.warnings IS 'what the operator should know and nothing blocked on: files matching no pattern, rows without a usable update time';

-- A row the connector could not read as a record (wrong number of fields, no key):
-- quarantined as read, not replayable until the platform sends it again readable.
ALTER TABLE quality.quarantine DROP CONSTRAINT quarantine_payload_kind_check;
ALTER TABLE quality.quarantine ADD CONSTRAINT quarantine_payload_kind_check
    CHECK (payload_kind IN ('source', 'conformed', 'unreadable'));
COMMENT ON COLUMN quality.quarantine.payload_kind IS 'source: the platform''s record as received (replayable); conformed: a row derived from one; unreadable: a row the connector could not read as a record (where it was is in failed_rules)';
