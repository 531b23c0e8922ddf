-- The marts in the city's own time zone, and the governance figures declared once.
--
-- 1. The time zone. Report weeks and days are the city's local ones: its time zone is
--    the sources file's `city.timezone`, which `hub migrate` records in the one row of
--    ops.city_setting. The marts read it through mart.city_timezone(), a function that
--    a trigger rewrites whenever the row changes, so that it holds the time zone as a
--    constant: the planner inlines it and reads no table, neither per row nor per
--    query, and parallel plans stay possible (a scalar subquery would be evaluated once
--    per query too, but as an InitPlan it keeps the aggregation out of parallel
--    workers). A session may override it (SET hub.city_timezone = 'Asia/Urumqi'): the
--    weekly report does, for the week it reports, so that its figures and its week
--    agree whatever is recorded.
-- 2. The figures. The counts, 办结率, 按期办结率, 满意率, 重复报告率 and the percentiles
--    are written once, in mart.governance_figures(detailed); mart.governance_weekly
--    (detailed) and mart.governance_weekly_district (per district) select from it.
--    The per-event flags they aggregate are still mart.event_current's.
--
-- Every view keeps its columns, names, order and comments (CREATE OR REPLACE VIEW
-- keeps the comments of 0004 and 0005); only how a column is computed changes.

CREATE TABLE ops.city_setting (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    timezone   text NOT NULL
               CHECK ((timestamptz '2000-01-01 00:00+00' AT TIME ZONE timezone) IS NOT NULL),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ops.city_setting IS 'one row: the city settings the marts read, recorded from the sources file by hub migrate';
COMMENT ON COLUMN ops.city_setting.timezone IS 'the city''s IANA time zone (sources file city.timezone): the marts'' report weeks and days are local to it';

-- mart.city_timezone() as the row says: rewritten whenever the row is written.
CREATE FUNCTION ops.city_setting_compile() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION mart.city_timezone() RETURNS text'
        ' LANGUAGE sql STABLE PARALLEL SAFE'
        ' RETURN coalesce(nullif(current_setting(%L, true), %L), %L)',
        'hub.city_timezone', '', NEW.timezone);
    EXECUTE format('COMMENT ON FUNCTION mart.city_timezone() IS %L',
        'The city''s time zone, which the marts count weeks and days in: the session''s '
        'hub.city_timezone if set, else ' || NEW.timezone || ' (ops.city_setting: the '
        'sources file''s city.timezone, recorded by hub migrate). 城市时区：统计周与日期按此时区划分。');
    RETURN NEW;
END $$;
COMMENT ON FUNCTION ops.city_setting_compile() IS 'keeps mart.city_timezone() equal to ops.city_setting.timezone';
CREATE TRIGGER city_setting_compile AFTER INSERT OR UPDATE OF timezone ON ops.city_setting
    FOR EACH ROW EXECUTE FUNCTION ops.city_setting_compile();

-- Until `hub migrate` records the sources file's: the sources file's own default.
INSERT INTO ops.city_setting (timezone) VALUES ('Asia/Shanghai');

CREATE OR REPLACE VIEW mart.event_current AS
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
       to_char(ev.cohort_at AT TIME ZONE mart.city_timezone(), 'IYYY-"W"IW') AS report_week,
       date_trunc('week', ev.cohort_at AT TIME ZONE mart.city_timezone())::date AS week_start,
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

-- The figures of a group of current events, once. `detailed`: per week x district x
-- street x handling organization x category x platform (mart.governance_weekly);
-- otherwise per week x district, all platforms together (mart.governance_weekly_district;
-- percentiles cannot be rolled up from the finer grain). The function is inlined into
-- the query that reads a view, so a filter on the week or the district still narrows
-- the events before they are aggregated.
CREATE FUNCTION mart.governance_figures(detailed boolean)
    RETURNS TABLE (report_week text, week_start date, division_code text, district_name text,
                   street_code text, street_name text, handling_org text,
                   category_l1_code text, category_l1_name text, category_code text,
                   category_name text, source_system text,
                   events bigint, accepted bigint, closed bigint, closed_on_time bigint,
                   evaluated bigint, satisfied bigint, repeat_events bigint,
                   closure_rate numeric, on_time_rate numeric, satisfaction_rate numeric,
                   repeat_rate numeric, response_h_median numeric, response_h_p90 numeric,
                   handling_h_median numeric, handling_h_p90 numeric)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
SELECT e.report_week,
       e.week_start,
       e.division_code,
       e.district_name,
       CASE WHEN detailed THEN e.street_code END,
       CASE WHEN detailed THEN e.street_name END,
       CASE WHEN detailed THEN e.handling_org END,
       CASE WHEN detailed THEN e.category_l1_code END,
       CASE WHEN detailed THEN e.category_l1_name END,
       CASE WHEN detailed THEN e.category_code END,
       CASE WHEN detailed THEN e.category_name END,
       CASE WHEN detailed THEN e.source_system END,
       count(*),
       count(*) FILTER (WHERE e.is_accepted),
       count(*) FILTER (WHERE e.is_closed),
       count(*) FILTER (WHERE e.is_closed_on_time),
       count(*) FILTER (WHERE e.is_evaluated),
       count(*) FILTER (WHERE e.is_satisfied),
       count(*) FILTER (WHERE e.is_repeat),
       round(count(*) FILTER (WHERE e.is_closed)::numeric
             / nullif(count(*) FILTER (WHERE e.is_accepted), 0), 4),
       round(count(*) FILTER (WHERE e.is_closed_on_time)::numeric
             / nullif(count(*) FILTER (WHERE e.is_closed), 0), 4),
       round(count(*) FILTER (WHERE e.is_satisfied)::numeric
             / nullif(count(*) FILTER (WHERE e.is_evaluated), 0), 4),
       round(count(*) FILTER (WHERE e.is_repeat)::numeric / count(*), 4),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY e.response_h))::numeric, 2),
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY e.response_h))::numeric, 2),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY e.handling_h))::numeric, 2),
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY e.handling_h))::numeric, 2)
  FROM mart.event_current e
 WHERE e.report_week IS NOT NULL
 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
END;
COMMENT ON FUNCTION mart.governance_figures(boolean) IS
    'The governance figures (counts, 办结率, 按期办结率, 满意率, 重复报告率, response and handling '
    'hours) of current events, declared once: detailed = per week x district x street x handling '
    'organization x category x platform (mart.governance_weekly), else per week x district '
    '(mart.governance_weekly_district). Definitions: see mart.event_current. '
    '治理考核指标的唯一定义，两个周报视图都由此取数。';

CREATE OR REPLACE VIEW mart.governance_weekly AS
SELECT report_week, week_start, division_code, district_name, street_code, street_name,
       handling_org, category_l1_code, category_l1_name, category_code, category_name,
       source_system,
       events, accepted, closed, closed_on_time, evaluated, satisfied, repeat_events,
       closure_rate, on_time_rate, satisfaction_rate, repeat_rate,
       response_h_median, response_h_p90, handling_h_median, handling_h_p90
  FROM mart.governance_figures(true);

CREATE OR REPLACE VIEW mart.governance_weekly_district AS
SELECT report_week, week_start, division_code, district_name,
       events, accepted, closed, closed_on_time, evaluated, satisfied, repeat_events,
       closure_rate, on_time_rate, satisfaction_rate, repeat_rate,
       response_h_median, response_h_p90, handling_h_median, handling_h_p90
  FROM mart.governance_figures(false);
