-- What the marts' acceptance and district columns mean, now that every platform has
-- an acceptance time and retired division codes are folded in the core rows. The
-- view definitions of 0004 are unchanged: only their column comments are added.
--
-- 受理 (accepted_at), per platform, as the conform step sets it:
--   12345 hotline   acceptTime (受理时间).
--   数字城管        register_time (立案).
--   grid events     the report time (reportTime) once the platform's status is past
--                   上报 (受理/处置中/已办结/已归档). The platform sends no acceptance time;
--                   a grid worker's report enters the platform as it is made, and the
--                   report time is the one sent time that stays put as the event moves
--                   on. Before this, no grid event counted in 办结率.
--   video alarms    none: an alarm is a report; it is accepted on the platform it is
--                   dispatched to, as an event of that platform.
-- Times the hub derived rather than the platform sent are listed per event in
-- core.event.derived_times.
--
-- division_code: the current GB/T 2260 county code. A retired code a platform sends
-- (211121 大洼县, 320684 海门市) is folded to its successor (211104 大洼区, 320614
-- 海门区), so a district is one row in the marts; the code as sent is kept in
-- core.<table>.source_division_code and reported by the rule division_code_known.
--
-- Both are done by the conform step: rows loaded before it keep what they had until
-- their record is read again (no core row is rewritten here).

COMMENT ON COLUMN mart.event_current.division_code IS '区县代码（现行 GB/T 2260；已撤销的代码已换为现行代码，平台原值见 core.event.source_division_code）/ current county code: a retired code the platform sent is folded to its successor (as sent: core.event.source_division_code)';
COMMENT ON COLUMN mart.event_current.accepted_at IS '受理时间：12345 为受理时间 acceptTime，数字城管为立案时间，网格事件为状态过了“上报”后的上报时间（平台不发受理时间），视频告警无 / acceptance: 12345 acceptTime, 数字城管 register_time (立案), grid events the report time once the status is past 上报 (the platform sends no acceptance time), video alarms none';
COMMENT ON COLUMN mart.event_current.is_accepted IS '已受理（有受理时间；各平台受理时间的定义见 accepted_at）/ accepted_at present (what acceptance is per platform: see accepted_at)';
COMMENT ON COLUMN mart.governance_weekly.division_code IS '区县代码（现行代码，已撤销的代码已并入其继承代码）/ current county code (retired codes folded to their successor)';
COMMENT ON COLUMN mart.governance_weekly.accepted IS '受理件数（受理时间的定义各平台不同，见 mart.event_current.accepted_at；网格事件状态过了“上报”即为受理）/ events accepted (per platform, see mart.event_current.accepted_at; a grid event once its status is past 上报)';
COMMENT ON COLUMN mart.governance_weekly.closure_rate IS '办结率 = 办结 / 受理（受理的定义见 mart.event_current.accepted_at）/ closed / accepted (acceptance per platform: mart.event_current.accepted_at)';
COMMENT ON COLUMN mart.governance_weekly_district.division_code IS '区县代码（现行代码，已撤销的代码已并入其继承代码）/ current county code (retired codes folded to their successor)';
COMMENT ON COLUMN mart.governance_weekly_district.accepted IS '受理件数（受理的定义见 mart.event_current.accepted_at）/ events accepted (per platform, see mart.event_current.accepted_at)';
COMMENT ON COLUMN mart.governance_weekly_district.closure_rate IS '办结率 = 办结 / 受理 / closed / accepted (acceptance per platform: mart.event_current.accepted_at)';
