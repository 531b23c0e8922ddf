-- A source record has at most one open quarantine entry: the overlap window and
-- reruns see a rejected record again, and it must not pile up.
CREATE INDEX quarantine_open_record ON quality.quarantine (source_system, entity, source_id)
    WHERE state = 'open';
