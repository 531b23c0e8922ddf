-- Person linking now writes the golden persons, too, on a connection of their own beside
-- the run's (with the records' keys and the events' reporter keys on another), and
-- commits both just after the run: a city's first run COPYs some 700,000 golden persons,
-- which then no longer wait behind the links' writes on the run's one connection. The
-- mark of 0028 covers both, and what repairs them changes: the run after one found still
-- marked (its process ended between the commits) is a full run, which writes every key
-- and golden person that is not as it should be.
ALTER TABLE ops.link_run RENAME COLUMN keys_pending TO side_writes_pending;
COMMENT ON COLUMN ops.link_run.side_writes_pending IS
    'true while the run''s side writes (core.person.person_key, event reporter keys, core.person_golden) are not committed: they are written on connections of their own and committed just after the run; the next run is a full one if the mark stayed / 旁路写入（人员主键、黄金人员）待提交';
