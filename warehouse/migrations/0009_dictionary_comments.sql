-- The data dictionary's text: a comment on every view and column a department reader
-- can reach (schema mart) and on every column of the quality and ops tables stewards
-- and operators read. `hub docs` (warehouse.dictionary) builds the dictionary from
-- these comments and the model; a test holds every column a reader or steward may
-- SELECT to having one.
--
-- Each comment says what the value means, its unit (hours, a share 0–1, a count), the
-- code standard it follows (GB/T 2260, GB 11643, GB 32100, GB/T 28181, GB/T 30428.2,
-- the hub taxonomy and statuses) and, for masked columns, how they are masked. The
-- figures' formulas are those of mart.event_current (0004) and
-- mart.governance_figures (0007). No view is redefined here: comments only. Comments
-- of 0004/0005 that still named Asia/Shanghai as the marts' time zone are replaced:
-- since 0007 the weeks are the city's (mart.city_timezone()).

-- ======================================================================== mart: events

COMMENT ON VIEW mart.event_current IS
    'Grain: one row per current event (core.event, valid_to IS NULL) per source platform. '
    'With district/street names, the hub category''s level 1 and leaf, the report week and the '
    'per-event flags every governance figure is built from (is_accepted, is_closed, '
    'is_closed_on_time, is_evaluated, is_satisfied, response_h, handling_h, is_repeat). Rows: the '
    'login''s jurisdiction (row-level security). No personal data. '
    '当前事件明细：每个平台每条事件一行，含区县/街道名称、分类与各项考核指标的逐件标记；只含本账号辖区的行。';

COMMENT ON COLUMN mart.event_current.source_system IS '来源平台实例 / platform instance the record came from, e.g. hotline12345 (the sources file''s source name)';
COMMENT ON COLUMN mart.event_current.source_id IS '平台自身的记录编号（如 12345 工单号）/ the platform''s own key of the event (e.g. the 12345 order number); unique per source_system among current rows';
COMMENT ON COLUMN mart.event_current.source_stream IS '平台的数据流（记录类别）/ which of the platform''s record kinds it came from, e.g. workorders, events, alarms';
COMMENT ON COLUMN mart.event_current.channel IS '受理渠道：电话/网站/微信/APP/监督员/网格员/视频 … / channel the report came in by';
COMMENT ON COLUMN mart.event_current.appeal_type IS '诉求类型：咨询/求助/投诉/举报/建议/表扬（12345）/ appeal type (12345 orders; NULL elsewhere)';
COMMENT ON COLUMN mart.event_current.report_week IS '统计周：受理时间（无则上报时间）所在的 ISO 8601 周，按城市时区（mart.city_timezone()），如 2026-W47 / ISO 8601 week of accepted_at, else reported_at, in the city''s time zone (mart.city_timezone()); NULL when neither time is known';
COMMENT ON COLUMN mart.event_current.week_start IS '统计周周一（城市时区的日期）/ Monday of report_week, a date in the city''s time zone';
COMMENT ON COLUMN mart.event_current.division_code IS '区县代码（GB/T 2260 六位，现行；已撤销的代码已换为现行代码，平台原值见 core.event.source_division_code）/ GB/T 2260 6-digit county code, current: a retired code the platform sent is folded to its successor';
COMMENT ON COLUMN mart.event_current.district_name IS '区县名称（mart.division）/ district (county) name of division_code';
COMMENT ON COLUMN mart.event_current.street_code IS '街道（乡镇）代码（九位统计用区划代码，GB/T 2260 区县码 + 三位）/ 9-digit street (乡级) code: the GB/T 2260 county code plus 3 digits (NBS code table)';
COMMENT ON COLUMN mart.event_current.street_name IS '街道名称（mart.division）/ street name of street_code';
COMMENT ON COLUMN mart.event_current.grid_code IS '网格编码（平台所发，或按坐标落入的网格，见 mart.grid）/ grid code as sent, or the grid the event''s point lies in (mart.grid)';
COMMENT ON COLUMN mart.event_current.handling_org IS '承办单位名称 / name of the handling organization (承办单位)';
COMMENT ON COLUMN mart.event_current.category_l1_code IS '中心事件分类一级代码（中心事件分类，见 mart.event_category；未映射为 unmapped）/ hub taxonomy level-1 code (mart.event_category); unmapped stays unmapped';
COMMENT ON COLUMN mart.event_current.category_l1_name IS '中心事件分类一级名称 / hub taxonomy level-1 name (mart.event_category)';
COMMENT ON COLUMN mart.event_current.category_code IS '中心事件分类末级代码（中心事件分类，见 mart.event_category；未映射为 unmapped）/ hub taxonomy leaf code (mart.event_category), or unmapped';
COMMENT ON COLUMN mart.event_current.category_name IS '中心事件分类末级名称 / hub taxonomy leaf name (mart.event_category)';
COMMENT ON COLUMN mart.event_current.source_category IS '平台自身的分类代码与名称 / the platform''s own category code and name, as sent';
COMMENT ON COLUMN mart.event_current.status IS '中心事件状态（见 mart.event_status；未映射为 unmapped）/ hub event status (mart.event_status): reported/accepted/dispatched/in_progress/resolved/closed/returned/cancelled, or unmapped';
COMMENT ON COLUMN mart.event_current.source_status IS '平台自身的状态 / the platform''s own status, as sent';
COMMENT ON COLUMN mart.event_current.is_urgent IS '紧急件 / urgent flag as the platform sent it';
COMMENT ON COLUMN mart.event_current.reported_at IS '上报时间（12345 无单独上报时间，取受理时间）/ first report (12345: the acceptance time; the hotline sends no separate report time)';
COMMENT ON COLUMN mart.event_current.accepted_at IS '受理时间：12345 为受理时间 acceptTime，数字城管为立案时间，网格事件为状态过了“上报”后的上报时间（平台不发受理时间），视频告警无 / acceptance: 12345 acceptTime, 数字城管 register_time (立案), grid events the report time once the status is past 上报 (the platform sends no acceptance time), video alarms none';
COMMENT ON COLUMN mart.event_current.dispatched_at IS '派遣时间（派单）/ when the event was dispatched to a handling organization';
COMMENT ON COLUMN mart.event_current.resolved_at IS '办结（处置完成）时间 / when handling was completed';
COMMENT ON COLUMN mart.event_current.closed_at IS '结案时间（回访/核查结案/归档）/ when the event was verified and closed';
COMMENT ON COLUMN mart.event_current.finished_at IS '办结时间：处置完成时间，无则结案时间 / resolved_at, else closed_at: when the work was done';
COMMENT ON COLUMN mart.event_current.deadline_at IS '办理时限 / handling deadline; none = a closed event cannot count as on time';
COMMENT ON COLUMN mart.event_current.satisfaction IS '满意度评价：满意/基本满意/不满意/未评价（空 = 无评价）/ satisfaction rating as sent';
COMMENT ON COLUMN mart.event_current.cluster_key IS '同一事件簇的键：同一事件的多条报告共享 / key shared by reports of the same incident; NULL = not linked to another report';
COMMENT ON COLUMN mart.event_current.cluster_size IS '同一事件的当前报告数（按 cluster_key，跨平台；无键为 1）/ count of current reports sharing the cluster_key, across platforms (1 without one)';
COMMENT ON COLUMN mart.event_current.is_accepted IS '已受理（有受理时间；各平台受理时间的定义见 accepted_at）/ accepted_at present (what acceptance is per platform: see accepted_at)';
COMMENT ON COLUMN mart.event_current.is_closed IS '已办结：已受理且有办结或结案时间（不看状态）/ accepted and resolved_at or closed_at present (the status is not used)';
COMMENT ON COLUMN mart.event_current.is_closed_on_time IS '按期办结：已办结且办结时间 finished_at 不晚于办理时限（无时限不算按期）/ closed and finished_at <= deadline_at (no deadline = not on time)';
COMMENT ON COLUMN mart.event_current.is_evaluated IS '已评价：满意/基本满意/不满意 / satisfaction rated 满意, 基本满意 or 不满意 (not empty, not 未评价)';
COMMENT ON COLUMN mart.event_current.is_satisfied IS '满意：满意或基本满意 / rated 满意 or 基本满意';
COMMENT ON COLUMN mart.event_current.response_h IS '响应时长（小时）= 派遣时间 − 受理时间 / response time in hours = dispatched_at − accepted_at; NULL when either is missing';
COMMENT ON COLUMN mart.event_current.handling_h IS '处置时长（小时）= 办结时间 − 派遣时间 / handling time in hours = resolved_at − dispatched_at; NULL when either is missing';
COMMENT ON COLUMN mart.event_current.is_repeat IS '重复报告：所在事件簇多于一条当前报告（cluster_size > 1）/ in a cluster of more than one current report (cluster_size > 1)';
COMMENT ON COLUMN mart.event_current.source_updated_at IS '平台上的最后更新时间 / last update of the record on the platform';
COMMENT ON COLUMN mart.event_current.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

-- ---------------------------------------------------------------- the weekly figures
-- Rates are shares 0–1 rounded to 4 places, NULL when the denominator is 0; hours are
-- percentiles (percentile_cont) of the per-event hours, rounded to 2 places, NULL
-- when no event of the group has them. Events without an acceptance or report time
-- have no report week and are in no weekly row.

COMMENT ON VIEW mart.governance_weekly IS
    'Grain: one row per report week (ISO week of acceptance, else report, in the city''s time zone) '
    'x district x street x handling organization x hub category (level 1 and leaf) x source '
    'platform. Figures from mart.governance_figures(true) over mart.event_current. Rates and '
    'percentiles do not add up across rows: for coarser groupings aggregate mart.event_current '
    '(or use mart.governance_weekly_district). Rows: events of the login''s jurisdiction. '
    '治理考核周报：按周×区县×街道×承办单位×分类×平台。';

COMMENT ON VIEW mart.governance_weekly_district IS
    'Grain: one row per report week (ISO week of acceptance, else report, in the city''s time zone) '
    'x district, all platforms together; same definitions as mart.governance_weekly '
    '(mart.governance_figures(false)). Rows: events of the login''s jurisdiction. '
    '区县治理考核周报（全部平台合计）。';

DO $figures$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY ARRAY['governance_weekly', 'governance_weekly_district'] LOOP
        EXECUTE format('COMMENT ON COLUMN mart.%I.report_week IS %L', v,
            '统计周：受理时间（无则上报时间）所在的 ISO 8601 周，按城市时区，如 2026-W47 / ISO 8601 week of accepted_at, else reported_at, in the city''s time zone (mart.city_timezone())');
        EXECUTE format('COMMENT ON COLUMN mart.%I.week_start IS %L', v,
            '统计周周一（城市时区的日期）/ Monday of report_week, a date in the city''s time zone');
        EXECUTE format('COMMENT ON COLUMN mart.%I.division_code IS %L', v,
            '区县代码（GB/T 2260 六位，现行；已撤销的代码已并入其继承代码）/ GB/T 2260 6-digit county code, current (retired codes folded to their successor)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.district_name IS %L', v,
            '区县名称（mart.division）/ district (county) name of division_code');
        EXECUTE format('COMMENT ON COLUMN mart.%I.events IS %L', v,
            '事件数（件，含未受理）/ count of events of the group, accepted or not');
        EXECUTE format('COMMENT ON COLUMN mart.%I.accepted IS %L', v,
            '受理件数（件；受理时间的定义各平台不同，见 mart.event_current.accepted_at）/ count of events accepted (acceptance per platform: mart.event_current.accepted_at)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.closed IS %L', v,
            '办结件数（件：已受理且有办结或结案时间）/ count of events closed: accepted and resolved_at or closed_at present');
        EXECUTE format('COMMENT ON COLUMN mart.%I.closed_on_time IS %L', v,
            '按期办结件数（件：办结时间不晚于办理时限）/ count of events closed on or before their deadline');
        EXECUTE format('COMMENT ON COLUMN mart.%I.evaluated IS %L', v,
            '已评价件数（件：满意/基本满意/不满意）/ count of events rated 满意, 基本满意 or 不满意');
        EXECUTE format('COMMENT ON COLUMN mart.%I.satisfied IS %L', v,
            '满意件数（件：满意+基本满意）/ count of events rated 满意 or 基本满意');
        EXECUTE format('COMMENT ON COLUMN mart.%I.repeat_events IS %L', v,
            '重复报告件数（件：所在事件簇多于一条报告）/ count of events in clusters of more than one current report');
        EXECUTE format('COMMENT ON COLUMN mart.%I.closure_rate IS %L', v,
            '办结率 = 办结件数 / 受理件数（0–1 的比例，4 位小数；无受理为 NULL）/ closure rate = closed / accepted, a share 0–1 (4 decimals; NULL when nothing was accepted)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.on_time_rate IS %L', v,
            '按期办结率 = 按期办结件数 / 办结件数（0–1 的比例，4 位小数；无时限的办结件不算按期）/ on-time rate = closed_on_time / closed, a share 0–1 (4 decimals; a closed event without a deadline is not on time; NULL when none closed)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.satisfaction_rate IS %L', v,
            '满意率 = (满意 + 基本满意) / 已评价件数（0–1 的比例，4 位小数）/ satisfaction rate = satisfied / evaluated, a share 0–1 (4 decimals; NULL when none was rated)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.repeat_rate IS %L', v,
            '重复报告率 = 重复报告件数 / 事件数（0–1 的比例，4 位小数）/ repeat-report rate = repeat_events / events, a share 0–1 (4 decimals)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.response_h_median IS %L', v,
            '响应时长中位数（小时，派遣时间 − 受理时间，2 位小数）/ median response time in hours, dispatched_at − accepted_at (2 decimals)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.response_h_p90 IS %L', v,
            '响应时长 P90（小时，派遣时间 − 受理时间）/ 90th percentile of the response time in hours, dispatched_at − accepted_at');
        EXECUTE format('COMMENT ON COLUMN mart.%I.handling_h_median IS %L', v,
            '处置时长中位数（小时，办结时间 − 派遣时间，2 位小数）/ median handling time in hours, resolved_at − dispatched_at (2 decimals)');
        EXECUTE format('COMMENT ON COLUMN mart.%I.handling_h_p90 IS %L', v,
            '处置时长 P90（小时，办结时间 − 派遣时间）/ 90th percentile of the handling time in hours, resolved_at − dispatched_at');
    END LOOP;
END
$figures$;

COMMENT ON COLUMN mart.governance_weekly.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code; NULL = the events name no street';
COMMENT ON COLUMN mart.governance_weekly.street_name IS '街道名称（mart.division）/ street name of street_code';
COMMENT ON COLUMN mart.governance_weekly.handling_org IS '承办单位名称 / handling organization (承办单位); NULL = not dispatched to one';
COMMENT ON COLUMN mart.governance_weekly.category_l1_code IS '中心事件分类一级代码（中心事件分类，见 mart.event_category）/ hub taxonomy level-1 code (mart.event_category), or unmapped';
COMMENT ON COLUMN mart.governance_weekly.category_l1_name IS '中心事件分类一级名称 / hub taxonomy level-1 name';
COMMENT ON COLUMN mart.governance_weekly.category_code IS '中心事件分类末级代码（中心事件分类，见 mart.event_category）/ hub taxonomy leaf code (mart.event_category), or unmapped';
COMMENT ON COLUMN mart.governance_weekly.category_name IS '中心事件分类末级名称 / hub taxonomy leaf name';
COMMENT ON COLUMN mart.governance_weekly.source_system IS '来源平台实例 / platform instance the events came from, e.g. hotline12345';

-- ============================================================ mart: the reader views
-- Current versions (valid_to IS NULL) of the core tables, personal data masked, keyed
-- hashes left out (0008). Clear names and addresses of a person only through the
-- audited ops.person_clear() for members of hub_pii_reader; clear ID numbers and phone
-- numbers are not kept in the core tables (only sealed, in a quarantined record's payload).

COMMENT ON VIEW mart.person IS
    'Grain: one row per current person record per source platform (not per human: records of one '
    'person share person_key). 人：居民、来电人、当事人，按各平台所知，当前版本；姓名、证件号、电话、地址已脱敏。 '
    'Rows: the login''s jurisdiction (row-level security on core.person). Masked: name, ID number, '
    'phone, addresses; clear name and addresses only through ops.person_clear() (hub_pii_reader, audited).';
COMMENT ON COLUMN mart.person.source_system IS '来源平台实例 / platform instance the record came from, e.g. grid';
COMMENT ON COLUMN mart.person.source_id IS '平台自身的记录编号；中心由键控散列生成的编号（如 party:…）只显示为短引用（mart.record_ref），不能与散列关联 / the platform''s own key of the record; keys the hub derived from a keyed hash (party:…) are shown as a short reference (mart.record_ref) that joins to nothing';
COMMENT ON COLUMN mart.person.source_stream IS '平台的数据流 / which of the platform''s record kinds it came from, e.g. residents';
COMMENT ON COLUMN mart.person.person_key IS '人员归并键：同一人在各平台的记录共享（未归并时为 NULL）/ key of the golden person this record resolves to (records of one human share it); NULL while not linked';
COMMENT ON COLUMN mart.person.role IS '人员角色：resident 居民 / caller 来电人 / party 当事人 / how the source knows the person';
COMMENT ON COLUMN mart.person.name_masked IS '姓名（脱敏：保留姓，其余每字一个 *，如 张三丰 → 张**；mart.mask_name）/ name, masked: the surname kept, one * per other character (mart.mask_name)';
COMMENT ON COLUMN mart.person.gender IS '性别：男 / 女 / gender';
COMMENT ON COLUMN mart.person.birth_year IS '出生年份（只给年份，不给出生日期）/ year of birth (the full birth date is not shown)';
COMMENT ON COLUMN mart.person.ethnicity IS '民族 / ethnicity as recorded';
COMMENT ON COLUMN mart.person.id_number_masked IS '公民身份号码（GB 11643，已规范为 18 位；脱敏：保留前 6 位行政区划码和后 4 位，如 211103********123X；明文不入核心表）/ citizen ID number (GB 11643, normalised to 18 characters), masked: the 6-digit region code and the last 4 kept; the clear number is not kept in the core tables';
COMMENT ON COLUMN mart.person.phone_masked IS '联系电话（已规范，无 +86；脱敏：手机保留前 3 位和后 4 位，如 138****8000，座机保留区号前 4 位和后 4 位；明文不入核心表）/ phone, normalised, masked: mobiles keep the first 3 and last 4 digits, landlines the first 4 and last 4; the clear number is not kept in the core tables';
COMMENT ON COLUMN mart.person.household_address_masked IS '户籍地址（脱敏：只保留到街道/镇/乡，否则到区县或市，其后为 ***；mart.mask_address）/ household registration address, masked: kept up to the street (街道/镇/乡), else the district or city, then *** (mart.mask_address)';
COMMENT ON COLUMN mart.person.current_address_masked IS '现住址（脱敏：只保留到街道/镇/乡，否则到区县或市，其后为 ***；mart.mask_address）/ current address, masked: kept up to the street (街道/镇/乡), else the district or city, then *** (mart.mask_address)';
COMMENT ON COLUMN mart.person.population_type IS '人口类型：户籍 / 流动 / 境外 / population type';
COMMENT ON COLUMN mart.person.division_code IS '区县代码（GB/T 2260 六位，现行）/ GB/T 2260 6-digit county code, current (retired codes folded to their successor)';
COMMENT ON COLUMN mart.person.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.person.grid_code IS '网格编码（见 mart.grid）/ grid code (mart.grid)';
COMMENT ON COLUMN mart.person.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

COMMENT ON VIEW mart.organization IS
    'Grain: one row per current organization record per source platform (records of one '
    'organization share org_key). 组织：企业、社会组织、政府部门（承办单位），当前版本；法定代表人与电话已脱敏。 '
    'Rows: the login''s jurisdiction (row-level security on core.organization).';
COMMENT ON COLUMN mart.organization.source_system IS '来源平台实例 / platform instance the record came from';
COMMENT ON COLUMN mart.organization.source_id IS '平台自身的记录编号；中心由键控散列生成的编号（如 party:…）只显示为短引用（mart.record_ref），不能与散列关联 / the platform''s own key of the record; keys the hub derived from a keyed hash (party:…) are shown as a short reference (mart.record_ref) that joins to nothing';
COMMENT ON COLUMN mart.organization.source_stream IS '平台的数据流 / which of the platform''s record kinds it came from, e.g. orgs';
COMMENT ON COLUMN mart.organization.org_key IS '组织归并键：同一组织在各平台的记录共享（未归并时为 NULL）/ key of the golden organization this record resolves to; NULL while not linked';
COMMENT ON COLUMN mart.organization.org_name IS '组织名称 / name';
COMMENT ON COLUMN mart.organization.uscc IS '统一社会信用代码（GB 32100，18 位含校验码）/ unified social credit code (GB 32100, 18 characters with its check character)';
COMMENT ON COLUMN mart.organization.org_type IS '组织类型：enterprise 企业 / social 社会组织 / department 部门 … / organization type';
COMMENT ON COLUMN mart.organization.legal_rep_masked IS '法定代表人（脱敏：保留姓，其余每字一个 *；mart.mask_name）/ legal representative, masked: the surname kept, one * per other character (mart.mask_name)';
COMMENT ON COLUMN mart.organization.phone_masked IS '联系电话（脱敏：手机保留前 3 位和后 4 位，如 138****8000，座机保留区号前 4 位和后 4 位；明文不入核心表）/ phone, masked: mobiles keep the first 3 and last 4 digits, landlines the first 4 and last 4';
COMMENT ON COLUMN mart.organization.address IS '组织地址（单位地址，不脱敏）/ the organization''s address (not personal, not masked)';
COMMENT ON COLUMN mart.organization.division_code IS '区县代码（GB/T 2260 六位，现行）/ GB/T 2260 6-digit county code, current';
COMMENT ON COLUMN mart.organization.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.organization.grid_code IS '网格编码（见 mart.grid）/ grid code (mart.grid)';
COMMENT ON COLUMN mart.organization.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

COMMENT ON VIEW mart.house IS
    'Grain: one row per current house (实有房屋) record per source platform. 实有房屋与地址，当前版本；'
    '地址与产权人证件号已脱敏。 Rows: the login''s jurisdiction (row-level security on core.house).';
COMMENT ON COLUMN mart.house.source_system IS '来源平台实例 / platform instance the record came from';
COMMENT ON COLUMN mart.house.source_id IS '平台自身的记录编号；中心由键控散列生成的编号（如 party:…）只显示为短引用（mart.record_ref），不能与散列关联 / the platform''s own key of the record; keys the hub derived from a keyed hash (party:…) are shown as a short reference (mart.record_ref) that joins to nothing';
COMMENT ON COLUMN mart.house.source_stream IS '平台的数据流 / which of the platform''s record kinds it came from, e.g. houses';
COMMENT ON COLUMN mart.house.house_code IS '房屋编码（平台所发）/ house code as the platform keys it';
COMMENT ON COLUMN mart.house.address_masked IS '房屋地址（脱敏：只保留到街道/镇/乡，否则到区县或市，其后为 ***；楼栋、单元、房号不提供）/ address, masked: kept up to the street (街道/镇/乡), else the district or city, then *** (mart.mask_address); building, unit and room are not shown';
COMMENT ON COLUMN mart.house.usage IS '房屋用途 / use of the house as recorded';
COMMENT ON COLUMN mart.house.owner_id_number_masked IS '产权人公民身份号码（GB 11643；脱敏：保留前 6 位和后 4 位，如 211103********123X；明文不入核心表）/ owner''s citizen ID number (GB 11643), masked: the 6-digit region code and the last 4 kept';
COMMENT ON COLUMN mart.house.division_code IS '区县代码（GB/T 2260 六位，现行）/ GB/T 2260 6-digit county code, current';
COMMENT ON COLUMN mart.house.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.house.grid_code IS '网格编码（见 mart.grid）/ grid code (mart.grid)';
COMMENT ON COLUMN mart.house.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

COMMENT ON VIEW mart.grid IS
    'Grain: one row per current grid per source platform. 网格 (综合/专属) from grid management and '
    '单元网格 from 数字城管. 网格与单元网格，当前版本；网格员姓名与电话已脱敏。 '
    'Rows: the login''s jurisdiction (row-level security on core.grid).';
COMMENT ON COLUMN mart.grid.source_system IS '来源平台实例 / platform instance the grid came from';
COMMENT ON COLUMN mart.grid.source_id IS '平台自身的记录编号；中心由键控散列生成的编号（如 party:…）只显示为短引用（mart.record_ref），不能与散列关联 / the platform''s own key of the record; keys the hub derived from a keyed hash (party:…) are shown as a short reference (mart.record_ref) that joins to nothing';
COMMENT ON COLUMN mart.grid.source_stream IS '平台的数据流 / which of the platform''s record kinds it came from, e.g. grids';
COMMENT ON COLUMN mart.grid.grid_code IS '网格编码（单元网格按 GB/T 30428.2 为 15 位，旧系统 14 位）/ grid code (unit grids: 15 digits under GB/T 30428.2, 14 in older systems)';
COMMENT ON COLUMN mart.grid.grid_name IS '网格名称 / grid name';
COMMENT ON COLUMN mart.grid.grid_type IS '网格类型：综合 / 专属 / 单元 / grid type';
COMMENT ON COLUMN mart.grid.division_code IS '区县代码（GB/T 2260 六位，现行）/ GB/T 2260 6-digit county code, current';
COMMENT ON COLUMN mart.grid.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.grid.community_name IS '所属社区 / community the grid belongs to';
COMMENT ON COLUMN mart.grid.boundary_wkt IS '网格边界（WKT 多边形，WGS84/CGCS2000 经纬度）/ boundary polygon, WKT in WGS84/CGCS2000 longitude/latitude';
COMMENT ON COLUMN mart.grid.area_m2 IS '面积（平方米）/ area in square metres';
COMMENT ON COLUMN mart.grid.worker_name_masked IS '网格员姓名（脱敏：保留姓，其余每字一个 *；mart.mask_name）/ grid worker''s name, masked: the surname kept, one * per other character (mart.mask_name)';
COMMENT ON COLUMN mart.grid.worker_phone_masked IS '网格员电话（脱敏：手机保留前 3 位和后 4 位，如 138****8000，座机保留区号前 4 位和后 4 位；明文不入核心表）/ grid worker''s phone, masked: mobiles keep the first 3 and last 4 digits, landlines the first 4 and last 4';
COMMENT ON COLUMN mart.grid.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

COMMENT ON VIEW mart.thing IS
    'Grain: one row per current thing per source platform. City components (部件, GB/T 30428.2) '
    'and video devices (GB/T 28181). 物：城市部件与视频设备，当前版本。 '
    'Rows: the login''s jurisdiction (row-level security on core.thing).';
COMMENT ON COLUMN mart.thing.source_system IS '来源平台实例 / platform instance the record came from';
COMMENT ON COLUMN mart.thing.source_id IS '平台自身的记录编号；中心由键控散列生成的编号（如 party:…）只显示为短引用（mart.record_ref），不能与散列关联 / the platform''s own key of the record; keys the hub derived from a keyed hash (party:…) are shown as a short reference (mart.record_ref) that joins to nothing';
COMMENT ON COLUMN mart.thing.source_stream IS '平台的数据流 / which of the platform''s record kinds it came from, e.g. components, devices';
COMMENT ON COLUMN mart.thing.thing_type IS '物的类型：component 部件 / camera 摄像机 / nvr 录像机 / kind of thing';
COMMENT ON COLUMN mart.thing.thing_code IS '部件编码（GB/T 30428.2 16 位，GB/T 47678 17 位）或设备编码（GB/T 28181 20 位）/ component code (GB/T 30428.2, 16 digits; 17 under GB/T 47678) or GB/T 28181 20-digit device id';
COMMENT ON COLUMN mart.thing.name IS '名称 / name';
COMMENT ON COLUMN mart.thing.category IS '部件小类或设备类型 / component class or device type';
COMMENT ON COLUMN mart.thing.state IS '状态：完好/破损/丢失/占用，或 online/offline / state';
COMMENT ON COLUMN mart.thing.owner_org IS '权属单位 / owner';
COMMENT ON COLUMN mart.thing.manage_org IS '主管单位 / managing organization';
COMMENT ON COLUMN mart.thing.maintain_org IS '养护单位 / maintaining organization';
COMMENT ON COLUMN mart.thing.address IS '位置描述（设施地址，不脱敏）/ where the thing is (not personal, not masked)';
COMMENT ON COLUMN mart.thing.division_code IS '区县代码（GB/T 2260 六位，现行）/ GB/T 2260 6-digit county code, current';
COMMENT ON COLUMN mart.thing.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.thing.grid_code IS '网格编码（平台所发，或按坐标落入的网格，见 mart.grid）/ grid code as sent, or the grid the point lies in (mart.grid)';
COMMENT ON COLUMN mart.thing.longitude IS '经度（WGS84/CGCS2000，GCJ-02 与投影坐标已在入库时换算）/ longitude, WGS84/CGCS2000 (GCJ-02 and projected inputs converted on load)';
COMMENT ON COLUMN mart.thing.latitude IS '纬度（WGS84/CGCS2000）/ latitude, WGS84/CGCS2000';
COMMENT ON COLUMN mart.thing.source_updated_at IS '平台上的最后更新时间 / last update of the record on the platform';
COMMENT ON COLUMN mart.thing.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

COMMENT ON VIEW mart.event IS
    'Grain: one row per current incident report per source platform (reports of one incident share '
    'cluster_key). 12345 orders, 数字城管 cases, grid events and video alarms in one lifecycle. '
    '事：全部渠道的事件，当前版本；标题与内容中的证件号和电话已脱敏，报告人姓名、电话、证件号已脱敏。 '
    'Rows: the login''s jurisdiction (row-level security on core.event). For the figures use '
    'mart.event_current.';
COMMENT ON COLUMN mart.event.source_system IS '来源平台实例 / platform instance the record came from, e.g. hotline12345';
COMMENT ON COLUMN mart.event.source_id IS '平台自身的记录编号（如 12345 工单号）；由键控散列生成的编号只显示为短引用（mart.record_ref）/ the platform''s own key of the event (e.g. the 12345 order number); keys the hub derived from a keyed hash are shown as a short reference (mart.record_ref)';
COMMENT ON COLUMN mart.event.source_stream IS '平台的数据流 / which of the platform''s record kinds it came from, e.g. workorders, events, alarms';
COMMENT ON COLUMN mart.event.cluster_key IS '同一事件簇的键：同一事件的多条报告共享 / key shared by reports of the same incident; NULL = not linked to another report';
COMMENT ON COLUMN mart.event.transfer_ref IS '转办来源编号：原平台的记录编号（如转到综治的 12345 工单号），跨平台关联同一事件 / the originating platform''s key of a transferred event (e.g. the 12345 order number of a dispute transferred to 综治)';
COMMENT ON COLUMN mart.event.channel IS '受理渠道：电话/网站/微信/APP/监督员/网格员/视频 … / channel the report came in by';
COMMENT ON COLUMN mart.event.appeal_type IS '诉求类型：咨询/求助/投诉/举报/建议/表扬（12345）/ appeal type (12345 orders; NULL elsewhere)';
COMMENT ON COLUMN mart.event.category_code IS '中心事件分类代码（中心事件分类，见 mart.event_category；未映射为 unmapped）/ hub taxonomy code (mart.event_category), or unmapped';
COMMENT ON COLUMN mart.event.source_category IS '平台自身的分类代码与名称 / the platform''s own category code and name, as sent';
COMMENT ON COLUMN mart.event.status IS '中心事件状态（见 mart.event_status；未映射为 unmapped）/ hub event status (mart.event_status), or unmapped';
COMMENT ON COLUMN mart.event.source_status IS '平台自身的状态 / the platform''s own status, as sent';
COMMENT ON COLUMN mart.event.title IS '标题（脱敏：其中的身份证号与电话号码已打码，如 211103********123X、138****8000；mart.mask_text）/ title, with every ID number and phone number in it masked (mart.mask_text)';
COMMENT ON COLUMN mart.event.description IS '内容（原样保存；脱敏：其中的身份证号与电话号码已打码；mart.mask_text）/ content as stored verbatim, with every ID number and phone number in it masked (mart.mask_text); names in the text are not masked';
COMMENT ON COLUMN mart.event.address IS '事发地址（按上报原样，不脱敏）/ address of the incident as reported (not masked)';
COMMENT ON COLUMN mart.event.division_code IS '区县代码（GB/T 2260 六位，现行；已撤销的代码已换为现行代码）/ GB/T 2260 6-digit county code, current (retired codes folded to their successor)';
COMMENT ON COLUMN mart.event.street_code IS '街道（乡镇）代码（九位统计用区划代码）/ 9-digit street (乡级) code';
COMMENT ON COLUMN mart.event.grid_code IS '网格编码（平台所发，或按坐标落入的网格，见 mart.grid）/ grid code as sent, or the grid the event''s point lies in (mart.grid)';
COMMENT ON COLUMN mart.event.longitude IS '经度（WGS84/CGCS2000，GCJ-02 与投影坐标已在入库时换算）/ longitude, WGS84/CGCS2000 (GCJ-02 and projected inputs converted on load)';
COMMENT ON COLUMN mart.event.latitude IS '纬度（WGS84/CGCS2000）/ latitude, WGS84/CGCS2000';
COMMENT ON COLUMN mart.event.is_urgent IS '紧急件 / urgent flag as the platform sent it';
COMMENT ON COLUMN mart.event.reported_at IS '上报时间（12345 无单独上报时间，取受理时间）/ first report (12345: the acceptance time)';
COMMENT ON COLUMN mart.event.accepted_at IS '受理时间：12345 为 acceptTime，数字城管为立案时间，网格事件为状态过了“上报”后的上报时间，视频告警无 / acceptance: 12345 acceptTime, 数字城管 register_time (立案), grid events the report time once past 上报, video alarms none';
COMMENT ON COLUMN mart.event.dispatched_at IS '派遣时间（派单）/ when the event was dispatched to a handling organization';
COMMENT ON COLUMN mart.event.resolved_at IS '办结（处置完成）时间 / when handling was completed';
COMMENT ON COLUMN mart.event.closed_at IS '结案时间（回访/核查结案/归档）/ when the event was verified and closed';
COMMENT ON COLUMN mart.event.deadline_at IS '办理时限 / handling deadline';
COMMENT ON COLUMN mart.event.derived_times IS '由中心推算（而非平台发送）的环节时间，逗号分隔，如 reported_at,closed_at；NULL = 全部按平台所发 / lifecycle times the hub derived rather than the platform sent, comma-separated; NULL = every time as sent';
COMMENT ON COLUMN mart.event.handling_org IS '承办单位名称 / name of the handling organization (承办单位)';
COMMENT ON COLUMN mart.event.satisfaction IS '满意度评价：满意/基本满意/不满意/未评价 / satisfaction rating as sent';
COMMENT ON COLUMN mart.event.reporter_name_masked IS '报告人姓名（入库时即脱敏：保留姓，其余为 *）/ reporter''s name, masked when loaded: the surname kept, the rest *';
COMMENT ON COLUMN mart.event.reporter_phone_masked IS '报告人电话（脱敏：手机保留前 3 位和后 4 位，如 138****8000，座机保留区号前 4 位和后 4 位；明文不入核心表）/ reporter''s phone, masked: mobiles keep the first 3 and last 4 digits, landlines the first 4 and last 4';
COMMENT ON COLUMN mart.event.reporter_id_number_masked IS '报告人公民身份号码（GB 11643；脱敏：保留前 6 位和后 4 位，如 211103********123X；明文不入核心表）/ reporter''s citizen ID number (GB 11643), masked: the 6-digit region code and the last 4 kept';
COMMENT ON COLUMN mart.event.source_updated_at IS '平台上的最后更新时间 / last update of the record on the platform';
COMMENT ON COLUMN mart.event.loaded_at IS '本版本入库时间 / when this version was loaded (valid_from)';

-- ============================================================ mart: reference lists

COMMENT ON VIEW mart.division IS
    'Grain: one row per division code (the current version of the code table). 省/市/区县/街道 from '
    'the National Bureau of Statistics code tables (GB/T 2260 for provinces, cities and counties; '
    '9-digit street codes), with retired county codes and their successors. 行政区划代码表。 '
    'Every login sees every row.';
COMMENT ON COLUMN mart.division.code IS '区划代码（GB/T 2260：省 2 位、市 4 位、区县 6 位；街道 9 位统计用区划代码）/ division code: GB/T 2260 2-digit province, 4-digit city, 6-digit county; 9-digit street';
COMMENT ON COLUMN mart.division.name IS '区划名称（官方名称）/ official name';
COMMENT ON COLUMN mart.division.level IS '层级：province 省 / city 市 / county 区县 / street 街道 / level';
COMMENT ON COLUMN mart.division.parent_code IS '上级区划代码 / code of the enclosing division';
COMMENT ON COLUMN mart.division.table_version IS '代码表版本（数据截止日期，如 2022-10-31）/ cut-off date of the code table';
COMMENT ON COLUMN mart.division.retired_on IS '撤销日期（未撤销为 NULL）/ date the code was retired; NULL = in use';
COMMENT ON COLUMN mart.division.replaced_by IS '继承代码：撤销代码并入的现行代码（如 211121 大洼县 → 211104 大洼区）/ code that replaced a retired one';

COMMENT ON VIEW mart.event_category IS
    'Grain: one row per category of the hub''s event taxonomy (中心事件分类, schemas/taxonomy.csv). '
    'Level-1 codes of two letters (SR 市容环境 …) and their sub-categories (SR01 …). Every platform '
    'category maps onto it; a category no mapping covers is unmapped. Every login sees every row.';
COMMENT ON COLUMN mart.event_category.code IS '中心事件分类代码（一级两位字母，二级加两位数字，如 SR、SR01）/ hub taxonomy code: two letters for level 1, plus two digits for a sub-category';
COMMENT ON COLUMN mart.event_category.name IS '分类名称 / category name';
COMMENT ON COLUMN mart.event_category.parent_code IS '上级分类代码（一级为 NULL）/ parent category code; NULL for level 1';
COMMENT ON COLUMN mart.event_category.version IS '分类体系版本 / taxonomy version, e.g. v1';

COMMENT ON VIEW mart.event_status IS
    'Grain: one row per hub event status (中心事件状态, schemas/statuses.csv). The one lifecycle '
    'every platform''s statuses map onto. Every login sees every row.';
COMMENT ON COLUMN mart.event_status.status IS '中心事件状态代码 / hub status code (what event.status holds)';
COMMENT ON COLUMN mart.event_status.name_zh IS '状态中文名 / Chinese name';
COMMENT ON COLUMN mart.event_status.sort_order IS '生命周期顺序（1 = 上报）/ order in the lifecycle (1 = reported)';
COMMENT ON COLUMN mart.event_status.description IS '说明 / what the status means';

-- ================================================================== quality (stewards)

COMMENT ON COLUMN quality.quarantine.quarantine_id IS '隔离记录编号（hub quarantine show <id>）/ id of the entry (hub quarantine show <id>)';
COMMENT ON COLUMN quality.quarantine.source_system IS '来源平台实例 / platform instance the record came from';
COMMENT ON COLUMN quality.quarantine.stream IS '平台的数据流 / the platform''s record kind (stream) it was read from';
COMMENT ON COLUMN quality.quarantine.source_id IS '平台自身的记录编号（读不出键时为 NULL）/ the platform''s own key of the record; NULL when none could be read';
COMMENT ON COLUMN quality.quarantine.entity IS '目标实体：person/organization/house/grid/thing/event/division / the model entity the record was for';
COMMENT ON COLUMN quality.quarantine.run_id IS '隔离它的运行（ops.run）/ ops.run that quarantined it';
COMMENT ON COLUMN quality.quarantine.rule IS '首个阻断规则名（quality/rules.yaml）/ the first blocking rule it failed (quality/rules.yaml)';
COMMENT ON COLUMN quality.quarantine.reason IS '原因（不含明文个人信息）/ why, in words; never quotes personal data in clear';
COMMENT ON COLUMN quality.quarantine.failed_rules IS '未通过的全部规则（JSON 数组：rule、severity、reason；读不出的行含文件与行号）/ every rule it failed (JSON array of rule, severity, reason; for an unreadable row also where it was)';
COMMENT ON COLUMN quality.quarantine.quarantined_at IS '隔离时间 / when it was quarantined';
COMMENT ON COLUMN quality.quarantine.state IS '状态：open 待处理 / replayed 已重放入库 / superseded 平台已更正并重新入库 / open, replayed (loaded by hub quarantine replay), superseded (fixed on the platform and loaded)';
COMMENT ON COLUMN quality.quarantine.resolved_run_id IS '使其离开隔离区的运行（ops.run）/ ops.run that replayed or superseded it';
COMMENT ON COLUMN quality.quarantine.resolved_at IS '离开隔离区的时间 / when it left quarantine';

COMMENT ON COLUMN quality.finding.run_id IS '发现问题的运行（ops.run）/ ops.run that loaded the row';
COMMENT ON COLUMN quality.finding.source_system IS '来源平台实例 / platform instance the row came from';
COMMENT ON COLUMN quality.finding.entity IS '实体：person/organization/house/grid/thing/event / the model entity of the row';
COMMENT ON COLUMN quality.finding.source_id IS '平台自身的记录编号 / the platform''s own key of the row';
COMMENT ON COLUMN quality.finding.rule IS '未通过的警告规则名（quality/rules.yaml）/ the warning rule it failed (quality/rules.yaml)';
COMMENT ON COLUMN quality.finding.severity IS '严重程度：warning 警告（行已入库）/ severity: warning (the row was loaded)';
COMMENT ON COLUMN quality.finding.reason IS '原因（个人信息已脱敏）/ why, in words; personal data masked';
COMMENT ON COLUMN quality.finding.found_at IS '记录时间 / when it was recorded';

COMMENT ON COLUMN quality.rule_result.run_id IS '运行（ops.run）/ ops.run the counts are of';
COMMENT ON COLUMN quality.rule_result.source_system IS '来源平台实例 / platform instance';
COMMENT ON COLUMN quality.rule_result.entity IS '实体 / the model entity checked';
COMMENT ON COLUMN quality.rule_result.rule IS '规则名（quality/rules.yaml）/ rule name (quality/rules.yaml)';
COMMENT ON COLUMN quality.rule_result.severity IS '严重程度：blocking 阻断（隔离）/ warning 警告（入库并记录）/ blocking (row quarantined) or warning (loaded, finding recorded)';
COMMENT ON COLUMN quality.rule_result.dimension IS '质量维度：完整性/准确性/有效性/一致性/及时性/唯一性 / quality dimension';
COMMENT ON COLUMN quality.rule_result.evaluated IS '检查行数（行）/ count of rows the rule checked in the run';
COMMENT ON COLUMN quality.rule_result.failed IS '未通过行数（行；评分 = 1 − failed/evaluated）/ count of rows that failed it (score = 1 − failed/evaluated)';

COMMENT ON TABLE quality.gx_validation IS 'one row per run, entity and batch: the Great Expectations validation result as GX reports it (examples masked)';
COMMENT ON COLUMN quality.gx_validation.run_id IS '运行（ops.run）/ ops.run validated';
COMMENT ON COLUMN quality.gx_validation.entity IS '实体 / the model entity validated';
COMMENT ON COLUMN quality.gx_validation.batch_no IS '批次序号（每次运行每个流只验证一次）/ batch number within the run (GX runs once per stream and run)';
COMMENT ON COLUMN quality.gx_validation.success IS '是否全部通过 / whether every expectation passed';
COMMENT ON COLUMN quality.gx_validation.result IS 'GX 验证结果（JSON，原样存档）/ the GX validation result (JSON), archived as GX reports it';
COMMENT ON COLUMN quality.gx_validation.validated_at IS '验证时间 / when it was validated';

COMMENT ON COLUMN quality.report.report_id IS '周报编号 / id of the generated report';
COMMENT ON COLUMN quality.report.week IS '报告周（ISO 8601 周，按城市时区），如 2026-W47 / ISO week reported on, e.g. 2026-W47, in the city''s time zone';
COMMENT ON COLUMN quality.report.generated_at IS '生成时间 / when it was generated';
COMMENT ON COLUMN quality.report.html IS '报告页面（自包含 HTML，无明文个人信息）/ the page as delivered (self-contained HTML, no personal data in clear)';
COMMENT ON COLUMN quality.report.pdf IS '同一页面的 PDF（要求时才有）/ the same page as PDF, when asked for';

-- The steward's review views (0008) show these tables' columns, record keys as people
-- see them (mart.record_ref) and never the sealed payload: each column says what the
-- table's column of the same name says.
DO $review$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT v.view, v.base, v.about FROM (VALUES
            ('quality.quarantine_review', 'quality.quarantine',
             'Grain: one row per quarantined source record (quality.quarantine). The steward''s view: '
             'the payload masked, record keys derived from a keyed hash shown as a short reference '
             '(mart.record_ref), never the sealed payload (clear reads: ops.quarantine_payload_clear(), '
             'audited). 隔离区（供质量审核，个人信息已脱敏）。'),
            ('quality.finding_review', 'quality.finding',
             'Grain: one row per loaded row and warning rule it failed (quality.finding). The steward''s '
             'view: record keys derived from a keyed hash shown as a short reference (mart.record_ref). '
             '警告级问题明细（供质量审核）。')) v(view, base, about)
         WHERE to_regclass(v.view) IS NOT NULL
    LOOP
        EXECUTE format('COMMENT ON VIEW %s IS %L', r.view, r.about);
        EXECUTE (
            SELECT string_agg(format('COMMENT ON COLUMN %s.%I IS %L', r.view, va.attname,
                                     CASE WHEN va.attname = 'source_id'
                                          THEN '平台自身的记录编号；由键控散列生成的编号只显示为短引用（mart.record_ref）/ the platform''s own key of the record; keys the hub derived from a keyed hash are shown as a short reference (mart.record_ref)'
                                          ELSE col_description(ba.attrelid, ba.attnum) END), '; ')
              FROM pg_attribute va
              JOIN pg_attribute ba ON ba.attrelid = r.base::regclass AND ba.attname = va.attname
             WHERE va.attrelid = r.view::regclass AND va.attnum > 0 AND NOT va.attisdropped);
    END LOOP;
END
$review$;

-- ======================================================================= ops (operators)

COMMENT ON COLUMN ops.run.run_id IS '运行编号 / id of the run';
COMMENT ON COLUMN ops.run.source_system IS '来源平台实例 / source the run pulled';
COMMENT ON COLUMN ops.run.connector IS '连接器（平台协议）/ the connector the source uses';
COMMENT ON COLUMN ops.run.trigger IS '触发方式：cli / airflow / replay / demo / what started the run';
COMMENT ON COLUMN ops.run.started_at IS '开始时间 / when the run started';
COMMENT ON COLUMN ops.run.finished_at IS '结束时间（运行中为 NULL）/ when it ended; NULL while running';
COMMENT ON COLUMN ops.run.outcome IS '结果：running / succeeded / failed / abandoned（进程中途终止，已提交批次保留）/ outcome; abandoned = the process ended mid-run (committed batches stand)';
COMMENT ON COLUMN ops.run.batches IS '已提交批次数 / count of batches committed';
COMMENT ON COLUMN ops.run.extracted IS '采集记录数（= loaded + quarantined）/ count of records read (= loaded + quarantined)';
COMMENT ON COLUMN ops.run.loaded IS '入库记录数 / count of records loaded';
COMMENT ON COLUMN ops.run.quarantined IS '隔离记录数 / count of records quarantined';
COMMENT ON COLUMN ops.run.inserted IS '新增版本数（新记录）/ count of new records inserted';
COMMENT ON COLUMN ops.run.updated IS '变更版本数（旧版本关闭、新版本写入）/ count of records changed (old version closed, new one written)';
COMMENT ON COLUMN ops.run.unchanged IS '未变记录数 / count of records seen unchanged';
COMMENT ON COLUMN ops.run.closed IS '关闭记录数（完整快照中不再出现）/ count of records closed because a complete snapshot no longer held them';
COMMENT ON COLUMN ops.run.timings IS '各阶段耗时（JSON，秒）/ seconds per stage (JSON)';
COMMENT ON COLUMN ops.run.error IS '失败原因（已脱敏）/ why it failed, masked';
COMMENT ON COLUMN ops.run.host IS '运行主机名 / host the run ran on';
COMMENT ON COLUMN ops.run.pid IS '运行进程号 / process id of the run';

COMMENT ON COLUMN ops.cursor.source_system IS '来源平台实例 / source';
COMMENT ON COLUMN ops.cursor.stream IS '数据流 / stream';
COMMENT ON COLUMN ops.cursor.state IS '增量位置（JSON：更新时间、翻页令牌、已读文件名与 sha256 等，随连接器而定）/ where the next incremental read starts (JSON, per connector: last update time, page token, files read with their sha256)';
COMMENT ON COLUMN ops.cursor.run_id IS '最后推进它的运行（ops.run）/ ops.run that last advanced it';
COMMENT ON COLUMN ops.cursor.updated_at IS '最后推进时间 / when it last advanced';

COMMENT ON TABLE ops.snapshot_seen IS 'keys seen so far of a complete snapshot loaded in several batches; when the snapshot completes, current records it did not hold are closed';
COMMENT ON COLUMN ops.snapshot_seen.source_system IS '来源平台实例 / source';
COMMENT ON COLUMN ops.snapshot_seen.stream IS '数据流 / stream';
COMMENT ON COLUMN ops.snapshot_seen.snapshot_id IS '快照标识（文件名#sha256）/ the snapshot: file name#sha256';
COMMENT ON COLUMN ops.snapshot_seen.source_id IS '快照中出现的记录编号 / a source key the snapshot holds';

COMMENT ON COLUMN ops.rejected_file.source_system IS '来源平台实例 / source';
COMMENT ON COLUMN ops.rejected_file.stream IS '数据流 / stream the file was for';
COMMENT ON COLUMN ops.rejected_file.file_name IS '文件名 / file name as delivered';
COMMENT ON COLUMN ops.rejected_file.sha256 IS '文件内容的 SHA-256（十六进制）：内容不同即为新交付 / SHA-256 of the bytes (hex): other bytes are a new delivery';
COMMENT ON COLUMN ops.rejected_file.reason IS '原因 / why it was rejected';
COMMENT ON COLUMN ops.rejected_file.first_run_id IS '首次拒收的运行（ops.run）/ ops.run that first rejected it';
COMMENT ON COLUMN ops.rejected_file.last_run_id IS '最近拒收的运行（ops.run）/ ops.run that last rejected it';
COMMENT ON COLUMN ops.rejected_file.first_seen_at IS '首次拒收时间 / when first rejected';
COMMENT ON COLUMN ops.rejected_file.last_seen_at IS '最近拒收时间 / when last rejected';

COMMENT ON COLUMN ops.snapshot_acceptance.source_system IS '来源平台实例 / source';
COMMENT ON COLUMN ops.snapshot_acceptance.stream IS '数据流 / stream';
COMMENT ON COLUMN ops.snapshot_acceptance.snapshot_id IS '被接受的快照（文件名#sha256）/ the accepted snapshot: file name#sha256';
COMMENT ON COLUMN ops.snapshot_acceptance.accepted_by IS '接受人（操作系统用户）/ who accepted it (the operator''s OS user)';
COMMENT ON COLUMN ops.snapshot_acceptance.reason IS '接受理由 / why, as the operator stated it';
COMMENT ON COLUMN ops.snapshot_acceptance.accepted_at IS '接受时间 / when';

COMMENT ON COLUMN ops.city_setting.singleton IS '单行表标志（恒为 true）/ always true: the table holds one row';
COMMENT ON COLUMN ops.city_setting.updated_at IS '最近记录时间 / when the setting was last recorded';

COMMENT ON TABLE ops.schema_migration IS 'one row per numbered migration applied, with its checksum (an edited migration is refused)';
COMMENT ON COLUMN ops.schema_migration.version IS '迁移编号 / migration number (warehouse/migrations/NNNN_*.sql)';
COMMENT ON COLUMN ops.schema_migration.name IS '迁移名称 / migration name';
COMMENT ON COLUMN ops.schema_migration.checksum IS '迁移文件的 SHA-256 / SHA-256 of the migration file as applied';
COMMENT ON COLUMN ops.schema_migration.applied_at IS '应用时间 / when it was applied';

COMMENT ON TABLE ops.schema_state IS 'one row: the fingerprint of everything the last complete migration brought (hub migrate compares it before doing anything)';
COMMENT ON COLUMN ops.schema_state.singleton IS '单行表标志（恒为 true）/ always true: the table holds one row';
COMMENT ON COLUMN ops.schema_state.fingerprint IS '库结构指纹（迁移、模型 DDL、参考数据的 SHA-256）/ SHA-256 over the migrations, the model''s DDL and the reference data';
COMMENT ON COLUMN ops.schema_state.migrated_at IS '最近完成迁移的时间 / when the last migration completed';

COMMENT ON COLUMN ops.access_grant.grant_id IS '授权编号 / id of the grant';
COMMENT ON COLUMN ops.access_grant.reason IS '授权理由 / why, as the operator stated it';
COMMENT ON COLUMN ops.access_grant.granted_by IS '授权人（操作系统用户与数据库账号）/ who granted it (OS user and database login)';
COMMENT ON COLUMN ops.access_grant.granted_at IS '授权时间 / when it was granted';
COMMENT ON COLUMN ops.access_grant.revoked_by IS '撤销人 / who revoked it; NULL = active';
COMMENT ON COLUMN ops.access_grant.revoked_at IS '撤销时间 / when it was revoked; NULL = active';

COMMENT ON COLUMN ops.pii_read.read_id IS '明文读取记录编号 / id of the clear read';
