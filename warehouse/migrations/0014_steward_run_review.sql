-- The quality review reads runs through a view whose error text has ID and phone
-- numbers masked: an error is written masked by the pipeline, but a row written any
-- other way (a script, a hand fix) must not show the steward clear personal data.
CREATE VIEW ops.run_review AS
SELECT run_id, source_system, connector, trigger, started_at, finished_at, outcome, batches,
       extracted, loaded, quarantined, reread, inserted, updated, unchanged, closed, timings,
       mart.mask_text(error) AS error, host, pid, warnings, streams
  FROM ops.run;
COMMENT ON VIEW ops.run_review IS
    'Grain: one row per pipeline run and source (ops.run). The steward''s view: the error text '
    'with ID and phone numbers masked (mart.mask_text). 运行记录（供质量审核，错误信息已脱敏）。';
DO $review$
BEGIN
    EXECUTE (
        SELECT string_agg(format('COMMENT ON COLUMN ops.run_review.%I IS %L', va.attname,
                                 CASE WHEN va.attname = 'error'
                                      THEN '运行失败的原因（身份证号、电话已脱敏）/ why the run failed, ID and phone numbers masked'
                                      ELSE col_description(ba.attrelid, ba.attnum) END), '; ')
          FROM pg_attribute va
          JOIN pg_attribute ba ON ba.attrelid = 'ops.run'::regclass AND ba.attname = va.attname
         WHERE va.attrelid = 'ops.run_review'::regclass AND va.attnum > 0 AND NOT va.attisdropped);
END
$review$;
REVOKE SELECT ON ops.run FROM hub_steward;
GRANT SELECT ON ops.run_review TO hub_steward;
