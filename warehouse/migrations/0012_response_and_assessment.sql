-- 响应率, 解决率 and the weekly 考核 table per handling organization (承办单位).
--
-- 1. The city's response limits and the small-count threshold. ops.city_setting gains
--    response_limit_urgent_h, response_limit_normal_h (hours) and min_ratings, which
--    `hub migrate` records from the sources file's city.response_limits and
--    city.report.min_ratings, as it records the time zone. A trigger compiles them into
--    mart.response_limit(urgent) and mart.min_ratings(), constants the planner folds
--    (the pattern of mart.city_timezone(), 0007).
-- 2. The per-event flags, appended to mart.event_current (its columns stay, in order):
--      first_contact_at      首次联系 as the platform sent it (12345 firstContactTime).
--      is_solved             回访结果 as the platform sent it (12345 isSolved).
--      responded_at          first_contact_at, else dispatched_at: the first response.
--      response_limit_h      the limit for the event's urgency, hours.
--      is_response_due       accepted, and responded or past its limit as of
--                            mart.as_of(): an event still inside its limit without a
--                            response is not judged yet.
--      is_responded_on_time  accepted and responded (by mart.as_of()) at most the limit
--                            after acceptance.
--      is_return_called      is_solved is known (the reporter was called back).
--      is_overdue_open       accepted, not cancelled, past deadline_at and not finished
--                            as of mart.as_of().
--    "As of" is now, unless the session says otherwise (SET hub.as_of = '…'): the weekly
--    report reads the marts as of its week's end by the hub's clock (base.clock).
--    响应率 = responded on time / response due; 解决率 = solved / return called.
-- 3. The figures, still declared once: mart.governance_figures(grain text) replaces
--    governance_figures(boolean) (a function's result columns cannot change in place):
--    grain 'detailed' (mart.governance_weekly), 'district'
--    (mart.governance_weekly_district) or 'organization' (mart.assessment_weekly). New
--    result columns are appended; both weekly views get the new counts and rates as
--    appended columns, their existing columns unchanged and in order. The two views
--    depend on the function, so they are dropped and created again here: their
--    comments (0004–0009) are kept across by a save-and-restore below, and their grants
--    are given again.
-- 4. mart.assessment_weekly: per report week and handling organization the volume,
--    响应率, 按期办结率, 解决率, 满意率, overdue open events, a composite score and the
--    rank in the week, organizations with fewer accepted events than mart.min_ratings()
--    marked and ranked after the others.
-- 5. mart.event (the readers' event view) gets first_contact_at and is_solved appended.

-- ------------------------------------------------------------ 1. the city's limits

ALTER TABLE ops.city_setting
    ADD COLUMN response_limit_urgent_h numeric NOT NULL DEFAULT 2
        CHECK (response_limit_urgent_h > 0),
    ADD COLUMN response_limit_normal_h numeric NOT NULL DEFAULT 24
        CHECK (response_limit_normal_h > 0),
    ADD COLUMN min_ratings integer NOT NULL DEFAULT 10 CHECK (min_ratings >= 1);
COMMENT ON COLUMN ops.city_setting.response_limit_urgent_h IS '响应时限（小时，紧急件）：受理后在此时长内首次联系（无则派遣）即为按时响应；来自数据源文件 city.response_limits.urgent_hours / response limit of urgent events in hours (sources file city.response_limits.urgent_hours)';
COMMENT ON COLUMN ops.city_setting.response_limit_normal_h IS '响应时限（小时，非紧急件）；来自数据源文件 city.response_limits.normal_hours / response limit of other events in hours (sources file city.response_limits.normal_hours)';
COMMENT ON COLUMN ops.city_setting.min_ratings IS '小样本阈值：分母少于此数的比率在周报中置灰，受理少于此数的承办单位在考核表中标注并排在其后；来自数据源文件 city.report.min_ratings / rates from fewer events are greyed out in the report; organizations with fewer accepted events are marked and ranked last in mart.assessment_weekly (sources file city.report.min_ratings)';

CREATE FUNCTION ops.city_setting_compile_limits() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION mart.response_limit(urgent boolean) RETURNS interval'
        ' LANGUAGE sql STABLE PARALLEL SAFE'
        ' RETURN CASE WHEN urgent THEN %L::interval ELSE %L::interval END',
        NEW.response_limit_urgent_h * interval '1 hour',
        NEW.response_limit_normal_h * interval '1 hour');
    EXECUTE format('COMMENT ON FUNCTION mart.response_limit(boolean) IS %L',
        'The response limit of an event by urgency (urgent: ' || NEW.response_limit_urgent_h
        || ' h, otherwise ' || NEW.response_limit_normal_h || ' h; ops.city_setting, the sources '
        'file''s city.response_limits recorded by hub migrate). 响应时限（按紧急程度）。');
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION mart.min_ratings() RETURNS integer'
        ' LANGUAGE sql STABLE PARALLEL SAFE RETURN %s', NEW.min_ratings);
    EXECUTE format('COMMENT ON FUNCTION mart.min_ratings() IS %L',
        'Fewest events a rate is judged on: ' || NEW.min_ratings || ' (ops.city_setting, the '
        'sources file''s city.report.min_ratings recorded by hub migrate). 小样本阈值。');
    RETURN NEW;
END $$;
COMMENT ON FUNCTION ops.city_setting_compile_limits() IS 'keeps mart.response_limit() and mart.min_ratings() equal to ops.city_setting';
CREATE TRIGGER city_setting_compile_limits
    AFTER INSERT OR UPDATE OF response_limit_urgent_h, response_limit_normal_h, min_ratings
    ON ops.city_setting FOR EACH ROW EXECUTE FUNCTION ops.city_setting_compile_limits();
-- Compile the functions from the row as it stands (the defaults until hub migrate).
UPDATE ops.city_setting SET response_limit_urgent_h = response_limit_urgent_h;

-- The instant the marts judge "overdue" and "response due" at: now, or the session's
-- hub.as_of (the weekly report's cut-off, by the hub's clock).
CREATE FUNCTION mart.as_of() RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(nullif(current_setting('hub.as_of', true), '')::timestamptz, now());
COMMENT ON FUNCTION mart.as_of() IS 'The instant the marts judge overdue and response-due events at: the session''s hub.as_of if set (the weekly report sets its cut-off), else now(). 统计截止时刻。';

-- ------------------------------------------------- keep the weekly views' comments

CREATE TEMP TABLE saved_comment ON COMMIT DROP AS
SELECT c.relname AS relation, a.attname AS column_name, col_description(c.oid, a.attnum) AS comment
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'mart' AND c.relname IN ('governance_weekly', 'governance_weekly_district')
   AND col_description(c.oid, a.attnum) IS NOT NULL
UNION ALL
SELECT c.relname, NULL, obj_description(c.oid, 'pg_class')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'mart' AND c.relname IN ('governance_weekly', 'governance_weekly_district')
   AND obj_description(c.oid, 'pg_class') IS NOT NULL;

DROP VIEW mart.governance_weekly;
DROP VIEW mart.governance_weekly_district;
DROP FUNCTION mart.governance_figures(boolean);

-- ------------------------------------------------------- 2. the per-event flags

CREATE OR REPLACE VIEW mart.event_current AS
WITH ev AS (
    SELECT e.*,
           coalesce(e.accepted_at, e.reported_at) AS cohort_at,
           coalesce(e.resolved_at, e.closed_at) AS finished_at,
           coalesce(e.first_contact_at, e.dispatched_at) AS responded_at,
           mart.response_limit(e.is_urgent) AS response_limit
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
       ev.valid_from AS loaded_at,
       -- appended by 0012
       ev.first_contact_at,
       ev.is_solved,
       ev.responded_at,
       extract(epoch FROM ev.response_limit) / 3600.0 AS response_limit_h,
       (ev.accepted_at IS NOT NULL
        AND (ev.responded_at <= mart.as_of() OR ev.accepted_at + ev.response_limit <= mart.as_of()))
           IS TRUE AS is_response_due,
       (ev.accepted_at IS NOT NULL AND ev.responded_at <= mart.as_of()
        AND ev.responded_at <= ev.accepted_at + ev.response_limit) IS TRUE
           AS is_responded_on_time,
       (ev.is_solved IS NOT NULL) AS is_return_called,
       (ev.accepted_at IS NOT NULL AND ev.status IS DISTINCT FROM 'cancelled'
        AND ev.deadline_at < mart.as_of()
        AND (ev.finished_at IS NULL OR ev.finished_at > mart.as_of())) IS TRUE
           AS is_overdue_open
  FROM ev
  LEFT JOIN core.division d ON d.code = ev.division_code AND d.valid_to IS NULL
  LEFT JOIN core.division s ON s.code = ev.street_code AND s.valid_to IS NULL
  LEFT JOIN core.event_category c0 ON c0.code = ev.category_code
  LEFT JOIN core.event_category c1 ON c1.code = c0.parent_code
  LEFT JOIN core.event_category c2 ON c2.code = c1.parent_code
  LEFT JOIN clusters cl ON cl.cluster_key = ev.cluster_key;

COMMENT ON COLUMN mart.event_current.first_contact_at IS '首次联系时间：承办单位首次联系反映人的时间（12345 firstContactTime；可选，旧平台不发）/ when the handling unit first contacted the reporter, as sent (12345 firstContactTime; optional, older platforms lack it)';
COMMENT ON COLUMN mart.event_current.is_solved IS '回访结果：反映人认为已解决（true）或未解决（false）；回访前或平台不发时为 NULL（12345 isSolved）/ the return call''s verdict: solved (true) or not (false); NULL before the call or where the platform does not send it (12345 isSolved)';
COMMENT ON COLUMN mart.event_current.responded_at IS '首次响应时间 = 首次联系时间，无则派遣时间 / first response: first_contact_at where sent, else dispatched_at';
COMMENT ON COLUMN mart.event_current.response_limit_h IS '响应时限（小时）：紧急件与非紧急件各一（城市设置，mart.response_limit()）/ the response limit for the event''s urgency, hours (city setting, mart.response_limit())';
COMMENT ON COLUMN mart.event_current.is_response_due IS '应响应：已受理，且截至统计时刻（mart.as_of()，默认当前时间）已响应或已过响应时限（时限未到且未响应的不计入）/ accepted, and responded or past its response limit as of mart.as_of() (default now; an event still inside its limit without a response is not judged yet)';
COMMENT ON COLUMN mart.event_current.is_responded_on_time IS '按时响应：已受理，且首次响应时间不晚于 受理时间 + 响应时限（截至统计时刻 mart.as_of()）/ accepted and responded_at <= accepted_at + the response limit (responded by mart.as_of())';
COMMENT ON COLUMN mart.event_current.is_return_called IS '已回访：有回访结果（is_solved 非空）/ the reporter was called back: is_solved is known';
COMMENT ON COLUMN mart.event_current.is_overdue_open IS '超期未办结：已受理、未撤销，截至统计时刻（mart.as_of()，默认当前时间）已过办理时限且未办结 / accepted, not cancelled, past its deadline and not finished as of mart.as_of() (default now)';

-- ------------------------------------------------------------ 3. the figures, once

CREATE FUNCTION mart.governance_figures(grain text)
    RETURNS TABLE (report_week text, week_start date, division_code text, district_name text,
                   street_code text, street_name text, handling_org text,
                   category_l1_code text, category_l1_name text, category_code text,
                   category_name text, source_system text,
                   events bigint, accepted bigint, closed bigint, closed_on_time bigint,
                   evaluated bigint, satisfied bigint, repeat_events bigint,
                   closure_rate numeric, on_time_rate numeric, satisfaction_rate numeric,
                   repeat_rate numeric, response_h_median numeric, response_h_p90 numeric,
                   handling_h_median numeric, handling_h_p90 numeric,
                   response_due bigint, responded_on_time bigint, return_called bigint,
                   solved bigint, overdue_open bigint, response_rate numeric,
                   solution_rate numeric, assessment_score numeric)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
SELECT f.report_week, f.week_start, f.division_code, f.district_name, f.street_code,
       f.street_name, f.handling_org, f.category_l1_code, f.category_l1_name, f.category_code,
       f.category_name, f.source_system,
       f.events, f.accepted, f.closed, f.closed_on_time, f.evaluated, f.satisfied,
       f.repeat_events, f.closure_rate, f.on_time_rate, f.satisfaction_rate, f.repeat_rate,
       f.response_h_median, f.response_h_p90, f.handling_h_median, f.handling_h_p90,
       f.response_due, f.responded_on_time, f.return_called, f.solved, f.overdue_open,
       f.response_rate, f.solution_rate,
       -- 考核得分: the mean of the four handling rates the group has.
       round((coalesce(f.response_rate, 0) + coalesce(f.on_time_rate, 0)
              + coalesce(f.solution_rate, 0) + coalesce(f.satisfaction_rate, 0))
             / nullif((f.response_rate IS NOT NULL)::int + (f.on_time_rate IS NOT NULL)::int
                      + (f.solution_rate IS NOT NULL)::int
                      + (f.satisfaction_rate IS NOT NULL)::int, 0), 4)
  FROM (
    SELECT e.report_week,
           e.week_start,
           CASE WHEN grain <> 'organization' THEN e.division_code END AS division_code,
           CASE WHEN grain <> 'organization' THEN e.district_name END AS district_name,
           CASE WHEN grain = 'detailed' THEN e.street_code END AS street_code,
           CASE WHEN grain = 'detailed' THEN e.street_name END AS street_name,
           CASE WHEN grain IN ('detailed', 'organization') THEN e.handling_org END AS handling_org,
           CASE WHEN grain = 'detailed' THEN e.category_l1_code END AS category_l1_code,
           CASE WHEN grain = 'detailed' THEN e.category_l1_name END AS category_l1_name,
           CASE WHEN grain = 'detailed' THEN e.category_code END AS category_code,
           CASE WHEN grain = 'detailed' THEN e.category_name END AS category_name,
           CASE WHEN grain = 'detailed' THEN e.source_system END AS source_system,
           count(*) AS events,
           count(*) FILTER (WHERE e.is_accepted) AS accepted,
           count(*) FILTER (WHERE e.is_closed) AS closed,
           count(*) FILTER (WHERE e.is_closed_on_time) AS closed_on_time,
           count(*) FILTER (WHERE e.is_evaluated) AS evaluated,
           count(*) FILTER (WHERE e.is_satisfied) AS satisfied,
           count(*) FILTER (WHERE e.is_repeat) AS repeat_events,
           round(count(*) FILTER (WHERE e.is_closed)::numeric
                 / nullif(count(*) FILTER (WHERE e.is_accepted), 0), 4) AS closure_rate,
           round(count(*) FILTER (WHERE e.is_closed_on_time)::numeric
                 / nullif(count(*) FILTER (WHERE e.is_closed), 0), 4) AS on_time_rate,
           round(count(*) FILTER (WHERE e.is_satisfied)::numeric
                 / nullif(count(*) FILTER (WHERE e.is_evaluated), 0), 4) AS satisfaction_rate,
           round(count(*) FILTER (WHERE e.is_repeat)::numeric / count(*), 4) AS repeat_rate,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY e.response_h))::numeric, 2)
               AS response_h_median,
           round((percentile_cont(0.9) WITHIN GROUP (ORDER BY e.response_h))::numeric, 2)
               AS response_h_p90,
           round((percentile_cont(0.5) WITHIN GROUP (ORDER BY e.handling_h))::numeric, 2)
               AS handling_h_median,
           round((percentile_cont(0.9) WITHIN GROUP (ORDER BY e.handling_h))::numeric, 2)
               AS handling_h_p90,
           count(*) FILTER (WHERE e.is_response_due) AS response_due,
           count(*) FILTER (WHERE e.is_responded_on_time) AS responded_on_time,
           count(*) FILTER (WHERE e.is_return_called) AS return_called,
           count(*) FILTER (WHERE e.is_solved) AS solved,
           count(*) FILTER (WHERE e.is_overdue_open) AS overdue_open,
           round(count(*) FILTER (WHERE e.is_responded_on_time)::numeric
                 / nullif(count(*) FILTER (WHERE e.is_response_due), 0), 4) AS response_rate,
           round(count(*) FILTER (WHERE e.is_solved)::numeric
                 / nullif(count(*) FILTER (WHERE e.is_return_called), 0), 4) AS solution_rate
      FROM mart.event_current e
     WHERE e.report_week IS NOT NULL
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
  ) f;
END;
COMMENT ON FUNCTION mart.governance_figures(text) IS
    'The governance figures (counts, 办结率, 按期办结率, 满意率, 重复报告率, 响应率, 解决率, '
    'overdue open events, response and handling hours, 考核得分) of current events, declared once. '
    'grain: detailed = per week x district x street x handling organization x category x '
    'platform (mart.governance_weekly); district = per week x district '
    '(mart.governance_weekly_district); organization = per week x handling organization '
    '(mart.assessment_weekly). Definitions: see mart.event_current. '
    '治理考核指标的唯一定义，各周报视图都由此取数。';

CREATE VIEW mart.governance_weekly AS
SELECT report_week, week_start, division_code, district_name, street_code, street_name,
       handling_org, category_l1_code, category_l1_name, category_code, category_name,
       source_system,
       events, accepted, closed, closed_on_time, evaluated, satisfied, repeat_events,
       closure_rate, on_time_rate, satisfaction_rate, repeat_rate,
       response_h_median, response_h_p90, handling_h_median, handling_h_p90,
       response_due, responded_on_time, return_called, solved, overdue_open,
       response_rate, solution_rate
  FROM mart.governance_figures('detailed');

CREATE VIEW mart.governance_weekly_district AS
SELECT report_week, week_start, division_code, district_name,
       events, accepted, closed, closed_on_time, evaluated, satisfied, repeat_events,
       closure_rate, on_time_rate, satisfaction_rate, repeat_rate,
       response_h_median, response_h_p90, handling_h_median, handling_h_p90,
       response_due, responded_on_time, return_called, solved, overdue_open,
       response_rate, solution_rate
  FROM mart.governance_figures('district');

-- The comments they had (0004, 0005, 0009), then those of the appended columns.
DO $restore$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM saved_comment LOOP
        IF c.column_name IS NULL THEN
            EXECUTE format('COMMENT ON VIEW mart.%I IS %L', c.relation, c.comment);
        ELSE
            EXECUTE format('COMMENT ON COLUMN mart.%I.%I IS %L', c.relation, c.column_name,
                           c.comment);
        END IF;
    END LOOP;
END
$restore$;

CREATE VIEW mart.assessment_weekly AS
SELECT report_week, week_start, handling_org,
       events, accepted,
       response_due, responded_on_time, response_rate,
       closed, closed_on_time, on_time_rate,
       return_called, solved, solution_rate,
       evaluated, satisfied, satisfaction_rate,
       overdue_open,
       assessment_score,
       accepted < mart.min_ratings() AS is_small,
       rank() OVER (PARTITION BY report_week
                    ORDER BY accepted < mart.min_ratings(), assessment_score DESC NULLS LAST)
           AS rank_in_week,
       count(*) OVER (PARTITION BY report_week) AS organizations_in_week
  FROM mart.governance_figures('organization')
 WHERE handling_org IS NOT NULL;

-- Comments shared by the three figure views: the new counts and rates.
DO $figures$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['governance_weekly', 'governance_weekly_district', 'assessment_weekly'] LOOP
        EXECUTE format('COMMENT ON COLUMN mart.%I.response_due IS %L', v,
            '应响应件数（件：已受理，且截至统计时刻已响应或已过响应时限）/ count of accepted events responded to or past their response limit as of mart.as_of() (mart.event_current.is_response_due)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.responded_on_time IS %L', v,
            '按时响应件数（件：首次联系，无则派遣，不晚于受理后的响应时限；紧急件与非紧急件时限见 ops.city_setting）/ count of accepted events first contacted (else dispatched) within the response limit of their urgency');
        EXECUTE format('COMMENT ON COLUMN mart.%I.return_called IS %L', v,
            '已回访件数（件：有回访结果 is_solved）/ count of events with a return-call verdict (is_solved known)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.solved IS %L', v,
            '已解决件数（件：回访认为已解决）/ count of events the reporter judged solved on the return call');
        EXECUTE format('COMMENT ON COLUMN mart.%I.overdue_open IS %L', v,
            '超期未办结件数（件：已受理、未撤销，截至统计时刻已过办理时限且未办结；统计时刻见 mart.as_of()，默认当前时间）/ count of accepted events, not cancelled, past their deadline and not finished as of mart.as_of() (default now)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.response_rate IS %L', v,
            '响应率 = 按时响应件数 / 应响应件数（0–1 的比例，4 位小数；无应响应件为 NULL）/ response rate = responded_on_time / response_due, a share 0–1 (4 decimals; NULL when none is due)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.solution_rate IS %L', v,
            '解决率 = 已解决件数 / 已回访件数（0–1 的比例，4 位小数；无回访为 NULL）/ solution rate = solved / return_called, a share 0–1 (4 decimals; NULL when none was called back)');
    END LOOP;
END
$figures$;

COMMENT ON VIEW mart.assessment_weekly IS
    'Grain: one row per report week (ISO week of acceptance, else report, in the city''s time zone) '
    'x handling organization (承办单位), all platforms together; events without a handling '
    'organization are left out. Figures from mart.governance_figures(''organization''), the '
    'definitions of mart.governance_weekly. rank_in_week orders the week''s organizations by '
    'assessment_score, those with fewer accepted events than mart.min_ratings() (is_small) after '
    'the others. Rows: events of the login''s jurisdiction, so a department ranks what it sees. '
    '承办单位考核周报：响应率、按期办结率、解决率、满意率、超期未办结与排名。';
COMMENT ON COLUMN mart.assessment_weekly.report_week IS '统计周：受理时间（无则上报时间）所在的 ISO 8601 周，按城市时区，如 2026-W47 / ISO 8601 week of accepted_at, else reported_at, in the city''s time zone (mart.city_timezone())';
COMMENT ON COLUMN mart.assessment_weekly.week_start IS '统计周周一（城市时区的日期）/ Monday of report_week, a date in the city''s time zone';
COMMENT ON COLUMN mart.assessment_weekly.handling_org IS '承办单位名称（各平台所发）/ handling organization (承办单位) as the platforms name it';
COMMENT ON COLUMN mart.assessment_weekly.events IS '事件数（件，含未受理）/ count of events of the organization, accepted or not';
COMMENT ON COLUMN mart.assessment_weekly.accepted IS '受理件数（件，考核量）/ count of events accepted: the volume assessed';
COMMENT ON COLUMN mart.assessment_weekly.closed IS '办结件数（件：已受理且有办结或结案时间）/ count of events closed';
COMMENT ON COLUMN mart.assessment_weekly.closed_on_time IS '按期办结件数（件）/ count of events closed on or before their deadline';
COMMENT ON COLUMN mart.assessment_weekly.on_time_rate IS '按期办结率 = 按期办结件数 / 办结件数（0–1，4 位小数）/ on-time rate = closed_on_time / closed, a share 0–1';
COMMENT ON COLUMN mart.assessment_weekly.evaluated IS '已评价件数（件：满意/基本满意/不满意）/ count of events rated';
COMMENT ON COLUMN mart.assessment_weekly.satisfied IS '满意件数（件：满意+基本满意）/ count of events rated 满意 or 基本满意';
COMMENT ON COLUMN mart.assessment_weekly.satisfaction_rate IS '满意率 = (满意 + 基本满意) / 已评价件数（0–1，4 位小数）/ satisfaction rate = satisfied / evaluated, a share 0–1';
COMMENT ON COLUMN mart.assessment_weekly.assessment_score IS '考核得分 = 响应率、按期办结率、解决率、满意率中有数据各项的平均（0–1，4 位小数）/ assessment score: the mean of response_rate, on_time_rate, solution_rate and satisfaction_rate where known, a share 0–1';
COMMENT ON COLUMN mart.assessment_weekly.is_small IS '小样本：受理件数少于阈值（mart.min_ratings()），比率波动大，排名在其他单位之后 / fewer accepted events than mart.min_ratings(): its rates say little, it is ranked after the others';
COMMENT ON COLUMN mart.assessment_weekly.rank_in_week IS '本周排名（1 = 最好，按考核得分；小样本单位排在后面；得分相同名次相同）/ rank in the week by assessment_score, 1 = best; small organizations after the others; ties share a rank';
COMMENT ON COLUMN mart.assessment_weekly.organizations_in_week IS '本周参与排名的承办单位数 / number of organizations ranked in the week';

-- ------------------------------------------------------------- 5. the readers' events

CREATE OR REPLACE VIEW mart.event AS
SELECT e.source_system, mart.record_ref(e.source_id) AS source_id, e.source_stream, e.cluster_key, e.transfer_ref,
       e.channel, e.appeal_type, e.category_code, e.source_category, e.status, e.source_status,
       mart.mask_text(e.title) AS title, mart.mask_text(e.description) AS description,
       e.address, e.division_code, e.street_code, e.grid_code, e.longitude, e.latitude,
       e.is_urgent, e.reported_at, e.accepted_at, e.dispatched_at, e.resolved_at, e.closed_at,
       e.deadline_at, e.derived_times, e.handling_org, e.satisfaction,
       e.reporter_name_masked, e.reporter_phone_masked, e.reporter_id_number_masked,
       e.source_updated_at, e.valid_from AS loaded_at,
       e.first_contact_at, e.is_solved
  FROM core.event e
 WHERE e.valid_to IS NULL;
COMMENT ON COLUMN mart.event.first_contact_at IS '首次联系时间：承办单位首次联系反映人的时间（12345 firstContactTime；可选）/ when the handling unit first contacted the reporter, as sent (12345 firstContactTime; optional)';
COMMENT ON COLUMN mart.event.is_solved IS '回访结果：已解决（true）/ 未解决（false）；回访前或平台不发时为 NULL / the return call''s verdict; NULL before the call or where the platform does not send it';

-- ------------------------------------------------------------------ privileges
-- No default privileges (0008): each view is granted here, its masking checked
-- (tests/integration/test_access.py). The pipeline's role reads the marts for the report.

GRANT SELECT ON mart.governance_weekly, mart.governance_weekly_district, mart.assessment_weekly
    TO hub_reader, hub_loader;
