-- Person linking writes the records' keys (core.person.person_key) and the events'
-- reporter keys on a second connection, alongside its own transaction, and commits them
-- right after it: a city's first run rewrites a million core.person rows for their keys,
-- which then no longer waits behind the golden persons' and links' writes. A run is
-- recorded with its keys pending, and the second connection clears the mark as it
-- commits; a run found still marked by the next one (its process ended between the two
-- commits) has its keys written again from core.person_link before anything else.
ALTER TABLE ops.link_run ADD COLUMN keys_pending boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN ops.link_run.keys_pending IS
    'true while the run''s record keys (core.person.person_key) and event reporter keys are not committed: they are written on a connection of their own and committed just after the run; the next run writes them again from core.person_link if the mark stayed / 人员主键待写回';
