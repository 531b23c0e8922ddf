-- Which streams a run covered. An Airflow ingest DAG runs one task per stream, each a
-- recorded run of its own (locked, counted, crash-safe like any); `hub run` covers
-- every stream of the source; the refresh DAG's consistency checks are a run that
-- covers none. NULL: a run recorded before this column (it covered every stream).
ALTER TABLE ops.run ADD COLUMN streams text[];
COMMENT ON COLUMN ops.run.streams IS '本次运行覆盖的数据流（空数组 = 仅一致性检查；NULL = 此列之前的运行，覆盖全部数据流）/ the streams the run covered, in loading order; empty = consistency checks only; NULL = a run recorded before this column (every stream)';
COMMENT ON COLUMN ops.run.trigger IS '触发方式：cli / airflow / replay / demo / refresh（Airflow 的 hub_refresh 一致性检查）/ what started the run; refresh = the consistency checks of the hub_refresh DAG';
