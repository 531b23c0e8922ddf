-- Everything one person reported, on every platform: readers see the reporter's golden
-- person key (linking, 0010) beside each event, never the hashes it was linked by.
CREATE OR REPLACE VIEW mart.event AS
SELECT e.source_system, mart.record_ref(e.source_id) AS source_id, e.source_stream, e.cluster_key, e.transfer_ref,
       e.channel, e.appeal_type, e.category_code, e.source_category, e.status, e.source_status,
       mart.mask_text(e.title) AS title, mart.mask_text(e.description) AS description,
       e.address, e.division_code, e.street_code, e.grid_code, e.longitude, e.latitude,
       e.is_urgent, e.reported_at, e.accepted_at, e.dispatched_at, e.resolved_at, e.closed_at,
       e.deadline_at, e.derived_times, e.handling_org, e.satisfaction,
       e.reporter_name_masked, e.reporter_phone_masked, e.reporter_id_number_masked,
       e.source_updated_at, e.valid_from AS loaded_at,
       e.first_contact_at, e.is_solved,
       e.reporter_person_key
  FROM core.event e
 WHERE e.valid_to IS NULL;
COMMENT ON COLUMN mart.event.reporter_person_key IS '反映人的人员主键（与 mart.person.person_key 相同，跨平台关联后）；未关联时为 NULL / the reporter''s golden person key (as mart.person.person_key): every event one person reported, on every platform; NULL while not linked';
