-- 重复报告率 as it is usually defined: the reports after an incident's first, over all
-- reports, i.e. (reports - incidents) / reports. 0004-0012 counted every report of a
-- cluster of two or more, the first included, so an incident reported twice read as
-- 100 % repeats. Only is_repeat's expression changes; the figures built on it
-- (mart.governance_figures and its views) follow.

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
    -- Each clustered report, its cluster's size and its place in it (first = 1).
    SELECT source_system, source_id,
           count(*) OVER incident AS cluster_size,
           row_number() OVER (incident ORDER BY coalesce(reported_at, accepted_at),
                              source_system, source_id) AS cluster_rank
      FROM core.event
     WHERE valid_to IS NULL AND cluster_key IS NOT NULL
    WINDOW incident AS (PARTITION BY cluster_key)
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
       (cl.cluster_rank > 1) IS TRUE AS is_repeat,
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
  LEFT JOIN clusters cl ON cl.source_system = ev.source_system AND cl.source_id = ev.source_id;

COMMENT ON COLUMN mart.event_current.is_repeat IS '重复报告：同一事件（事件簇）中首报之后的报告（按上报时间，无则受理时间）；重复报告率 =（报告数 − 事件数）/ 报告数 / a report after its incident''s first (by reported_at, else accepted_at) in its cluster: 重复报告率 = (reports - incidents) / reports';
