-- Department marts: the governance figures (办结率, 按期办结率, 满意率, 响应/处置时长,
-- 重复投诉率) as views over the current core rows, and the archive of weekly
-- quality reports.
--
-- Definitions, once, in mart.event_current (one row per current event with its
-- per-event flags); every figure view aggregates those flags and nothing else:
--   report week  ISO week (Asia/Shanghai local time) of accepted_at, else reported_at:
--                events are counted as a cohort in the week they were accepted, so a
--                recent week's 办结率 still rises as its events get finished.
--   accepted     accepted_at present (受理).
--   closed       办结 = accepted and resolved_at or closed_at present. Status is not
--                used: the step times are what every platform maps, and a status can
--                be 'unmapped' while the times are sound.
--   finished_at  resolved_at, else closed_at: when the work was done.
--   on time      closed and finished_at <= deadline_at; a closed event without a
--                deadline is closed but not on time (it cannot be shown to be).
--   evaluated    satisfaction is 满意, 基本满意 or 不满意 (not empty, not 未评价).
--   satisfied    satisfaction is 满意 or 基本满意.
--   response_h   dispatched_at − accepted_at in hours; handling_h resolved_at − dispatched_at.
--   repeat       the event's cluster_key is shared by more than one current event
--                (across all platforms); no cluster_key = a single report.

-- The core tables exist already: warehouse.migrate derives them from
-- schemas/model.py before it applies the numbered migrations.
CREATE INDEX IF NOT EXISTS division_current_code ON core.division (code) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS event_current_cluster ON core.event (cluster_key)
    WHERE valid_to IS NULL AND cluster_key IS NOT NULL;

CREATE VIEW mart.event_current AS
WITH ev AS (
    SELECT e.*,
           coalesce(e.accepted_at, e.reported_at) AS cohort_at,
           coalesce(e.resolved_at, e.closed_at) AS finished_at
      FROM core.event e
     WHERE e.valid_to IS NULL
), clusters AS (
    SELECT cluster_key, count(*) AS cluster_size
      FROM core.event
     WHERE valid_to IS NULL AND cluster_key IS NOT NULL
     GROUP BY cluster_key
)
SELECT ev.source_system,
       ev.source_id,
       ev.source_stream,
       ev.channel,
       ev.appeal_type,
       to_char(ev.cohort_at AT TIME ZONE 'Asia/Shanghai', 'IYYY-"W"IW') AS report_week,
       date_trunc('week', ev.cohort_at AT TIME ZONE 'Asia/Shanghai')::date AS week_start,
       ev.division_code,
       d.name AS district_name,
       ev.street_code,
       s.name AS street_name,
       ev.grid_code,
       ev.handling_org,
       coalesce(c2.code, c1.code, ev.category_code) AS category_l1_code,
       coalesce(c2.name, c1.name, c0.name, ev.category_code) AS category_l1_name,
       ev.category_code AS category_code,
       coalesce(c0.name, ev.category_code) AS category_name,
       ev.source_category,
       ev.status,
       ev.source_status,
       ev.is_urgent,
       ev.reported_at,
       ev.accepted_at,
       ev.dispatched_at,
       ev.resolved_at,
       ev.closed_at,
       ev.finished_at,
       ev.deadline_at,
       ev.satisfaction,
       ev.cluster_key,
       coalesce(cl.cluster_size, 1) AS cluster_size,
       (ev.accepted_at IS NOT NULL) AS is_accepted,
       (ev.accepted_at IS NOT NULL AND ev.finished_at IS NOT NULL) AS is_closed,
       (ev.accepted_at IS NOT NULL AND ev.finished_at IS NOT NULL
        AND ev.deadline_at IS NOT NULL AND ev.finished_at <= ev.deadline_at) AS is_closed_on_time,
       (ev.satisfaction IN ('满意', '基本满意', '不满意')) IS TRUE AS is_evaluated,
       (ev.satisfaction IN ('满意', '基本满意')) IS TRUE AS is_satisfied,
       extract(epoch FROM ev.dispatched_at - ev.accepted_at) / 3600.0 AS response_h,
       extract(epoch FROM ev.resolved_at - ev.dispatched_at) / 3600.0 AS handling_h,
       (coalesce(cl.cluster_size, 1) > 1) AS is_repeat,
       ev.source_updated_at,
       ev.valid_from AS loaded_at
  FROM ev
  LEFT JOIN core.division d ON d.code = ev.division_code AND d.valid_to IS NULL
  LEFT JOIN core.division s ON s.code = ev.street_code AND s.valid_to IS NULL
  LEFT JOIN core.event_category c0 ON c0.code = ev.category_code
  LEFT JOIN core.event_category c1 ON c1.code = c0.parent_code
  LEFT JOIN core.event_category c2 ON c2.code = c1.parent_code
  LEFT JOIN clusters cl ON cl.cluster_key = ev.cluster_key;

COMMENT ON VIEW mart.event_current IS
    'Grain: one row per current event (core.event, valid_to IS NULL) per source platform, '
    'with district/street names and the per-event flags every governance figure is built from. '
    '当前事件明细：每个平台每条事件一行，含区县/街道名称与各项考核指标的逐件标记。';
COMMENT ON COLUMN mart.event_current.report_week IS '统计周（ISO 周，北京时间，按受理时间，无则上报时间）/ ISO week (Asia/Shanghai) of accepted_at, else reported_at';
COMMENT ON COLUMN mart.event_current.week_start IS '统计周周一 / Monday of report_week';
COMMENT ON COLUMN mart.event_current.district_name IS '区县名称 / district (county) name from core.division';
COMMENT ON COLUMN mart.event_current.street_name IS '街道名称 / street name from core.division';
COMMENT ON COLUMN mart.event_current.category_l1_code IS '中心事件分类一级代码 / hub taxonomy level-1 code (unmapped stays unmapped)';
COMMENT ON COLUMN mart.event_current.category_l1_name IS '中心事件分类一级名称 / hub taxonomy level-1 name';
COMMENT ON COLUMN mart.event_current.category_code IS '中心事件分类末级代码 / hub taxonomy leaf code';
COMMENT ON COLUMN mart.event_current.category_name IS '中心事件分类末级名称 / hub taxonomy leaf name';
COMMENT ON COLUMN mart.event_current.finished_at IS '办结时间：处置完成时间，无则结案时间 / resolved_at, else closed_at';
COMMENT ON COLUMN mart.event_current.cluster_size IS '同一事件的报告数（按 cluster_key）/ current reports sharing the cluster_key (1 without one)';
COMMENT ON COLUMN mart.event_current.is_accepted IS '已受理（有受理时间）/ accepted_at present';
COMMENT ON COLUMN mart.event_current.is_closed IS '已办结：已受理且有办结或结案时间 / accepted and resolved_at or closed_at present';
COMMENT ON COLUMN mart.event_current.is_closed_on_time IS '按期办结：办结时间不晚于办理时限（无时限不算按期）/ closed and finished_at <= deadline_at (no deadline = not on time)';
COMMENT ON COLUMN mart.event_current.is_evaluated IS '已评价：满意/基本满意/不满意 / satisfaction rated (not empty, not 未评价)';
COMMENT ON COLUMN mart.event_current.is_satisfied IS '满意：满意或基本满意 / 满意 or 基本满意';
COMMENT ON COLUMN mart.event_current.response_h IS '响应时长（小时）= 派遣 − 受理 / dispatched_at − accepted_at, hours';
COMMENT ON COLUMN mart.event_current.handling_h IS '处置时长（小时）= 办结 − 派遣 / resolved_at − dispatched_at, hours';
COMMENT ON COLUMN mart.event_current.is_repeat IS '重复报告：所在事件簇多于一条报告 / in a cluster of more than one report';
COMMENT ON COLUMN mart.event_current.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

CREATE VIEW mart.governance_weekly AS
SELECT report_week,
       week_start,
       division_code,
       district_name,
       street_code,
       street_name,
       handling_org,
       category_l1_code,
       category_l1_name,
       category_code,
       category_name,
       source_system,
       count(*) AS events,
       count(*) FILTER (WHERE is_accepted) AS accepted,
       count(*) FILTER (WHERE is_closed) AS closed,
       count(*) FILTER (WHERE is_closed_on_time) AS closed_on_time,
       count(*) FILTER (WHERE is_evaluated) AS evaluated,
       count(*) FILTER (WHERE is_satisfied) AS satisfied,
       count(*) FILTER (WHERE is_repeat) AS repeat_events,
       round(count(*) FILTER (WHERE is_closed)::numeric
             / nullif(count(*) FILTER (WHERE is_accepted), 0), 4) AS closure_rate,
       round(count(*) FILTER (WHERE is_closed_on_time)::numeric
             / nullif(count(*) FILTER (WHERE is_closed), 0), 4) AS on_time_rate,
       round(count(*) FILTER (WHERE is_satisfied)::numeric
             / nullif(count(*) FILTER (WHERE is_evaluated), 0), 4) AS satisfaction_rate,
       round(count(*) FILTER (WHERE is_repeat)::numeric / count(*), 4) AS repeat_rate,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY response_h))::numeric, 2) AS response_h_median,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY response_h))::numeric, 2) AS response_h_p90,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY handling_h))::numeric, 2) AS handling_h_median,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY handling_h))::numeric, 2) AS handling_h_p90
  FROM mart.event_current
 WHERE report_week IS NOT NULL
 GROUP BY report_week, week_start, division_code, district_name, street_code, street_name,
          handling_org, category_l1_code, category_l1_name, category_code, category_name,
          source_system;

COMMENT ON VIEW mart.governance_weekly IS
    'Grain: one row per ISO week (by acceptance, Asia/Shanghai) x district x street x handling '
    'organization x hub category (level 1 and leaf) x source platform. Rates and percentiles do '
    'not add up across rows: for coarser groupings aggregate mart.event_current '
    '(or use mart.governance_weekly_district). 治理考核周报：按周×区县×街道×承办单位×分类×平台。';
COMMENT ON COLUMN mart.governance_weekly.report_week IS '统计周（ISO 周，按受理时间）/ ISO week of acceptance';
COMMENT ON COLUMN mart.governance_weekly.events IS '事件数（含未受理）/ events, accepted or not';
COMMENT ON COLUMN mart.governance_weekly.accepted IS '受理件数 / events accepted';
COMMENT ON COLUMN mart.governance_weekly.closed IS '办结件数（有办结或结案时间）/ closed: resolved_at or closed_at present';
COMMENT ON COLUMN mart.governance_weekly.closed_on_time IS '按期办结件数 / closed on or before the deadline';
COMMENT ON COLUMN mart.governance_weekly.evaluated IS '已评价件数 / rated 满意/基本满意/不满意';
COMMENT ON COLUMN mart.governance_weekly.satisfied IS '满意件数（满意+基本满意）/ rated 满意 or 基本满意';
COMMENT ON COLUMN mart.governance_weekly.repeat_events IS '重复报告件数 / events in clusters of more than one report';
COMMENT ON COLUMN mart.governance_weekly.closure_rate IS '办结率 = 办结 / 受理 / closed / accepted';
COMMENT ON COLUMN mart.governance_weekly.on_time_rate IS '按期办结率 = 按期办结 / 办结 / closed on time / closed';
COMMENT ON COLUMN mart.governance_weekly.satisfaction_rate IS '满意率 = (满意+基本满意) / 已评价 / satisfied / evaluated';
COMMENT ON COLUMN mart.governance_weekly.repeat_rate IS '重复报告率 = 重复报告件数 / 事件数 / repeat events / events';
COMMENT ON COLUMN mart.governance_weekly.response_h_median IS '响应时长中位数（小时，派遣−受理）/ median hours accepted→dispatched';
COMMENT ON COLUMN mart.governance_weekly.response_h_p90 IS '响应时长 P90（小时）/ 90th percentile hours accepted→dispatched';
COMMENT ON COLUMN mart.governance_weekly.handling_h_median IS '处置时长中位数（小时，办结−派遣）/ median hours dispatched→resolved';
COMMENT ON COLUMN mart.governance_weekly.handling_h_p90 IS '处置时长 P90（小时）/ 90th percentile hours dispatched→resolved';

-- The same figures per week and district, for the weekly report and the command
-- centre's overview (percentiles cannot be rolled up from the finer view).
CREATE VIEW mart.governance_weekly_district AS
SELECT report_week,
       week_start,
       division_code,
       district_name,
       count(*) AS events,
       count(*) FILTER (WHERE is_accepted) AS accepted,
       count(*) FILTER (WHERE is_closed) AS closed,
       count(*) FILTER (WHERE is_closed_on_time) AS closed_on_time,
       count(*) FILTER (WHERE is_evaluated) AS evaluated,
       count(*) FILTER (WHERE is_satisfied) AS satisfied,
       count(*) FILTER (WHERE is_repeat) AS repeat_events,
       round(count(*) FILTER (WHERE is_closed)::numeric
             / nullif(count(*) FILTER (WHERE is_accepted), 0), 4) AS closure_rate,
       round(count(*) FILTER (WHERE is_closed_on_time)::numeric
             / nullif(count(*) FILTER (WHERE is_closed), 0), 4) AS on_time_rate,
       round(count(*) FILTER (WHERE is_satisfied)::numeric
             / nullif(count(*) FILTER (WHERE is_evaluated), 0), 4) AS satisfaction_rate,
       round(count(*) FILTER (WHERE is_repeat)::numeric / count(*), 4) AS repeat_rate,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY response_h))::numeric, 2) AS response_h_median,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY response_h))::numeric, 2) AS response_h_p90,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY handling_h))::numeric, 2) AS handling_h_median,
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY handling_h))::numeric, 2) AS handling_h_p90
  FROM mart.event_current
 WHERE report_week IS NOT NULL
 GROUP BY report_week, week_start, division_code, district_name;

COMMENT ON VIEW mart.governance_weekly_district IS
    'Grain: one row per ISO week (by acceptance, Asia/Shanghai) x district, all platforms together; '
    'same definitions as mart.governance_weekly. 区县治理考核周报（全部平台合计）。';

-- Every weekly quality report as it was delivered, so a past week can be shown
-- again exactly, whatever happened to the data since.
CREATE TABLE quality.report (
    report_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    week         text NOT NULL CHECK (week ~ '^\d{4}-W\d{2}$'),
    generated_at timestamptz NOT NULL DEFAULT now(),
    html         text NOT NULL,
    pdf          bytea,
    summary      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX report_week ON quality.report (week, generated_at DESC);
COMMENT ON TABLE quality.report IS 'one row per generated weekly quality report: the HTML (and PDF when asked) as delivered';
COMMENT ON COLUMN quality.report.week IS 'ISO week reported on, e.g. 2026-W47 (Asia/Shanghai)';
COMMENT ON COLUMN quality.report.summary IS 'headline numbers of the report (scores per platform and dimension, counts), for trend queries';
