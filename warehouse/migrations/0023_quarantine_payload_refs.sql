-- Quarantined payloads show a key the hub derived from a keyed hash (a grid resident's
-- residentKey, resident:<keyed hash of the ID number>) as the short reference
-- mart.record_ref gives it (base.masking.record_ref, its twin, masks new entries).
-- Entries kept before showed the hash itself in quality.quarantine_review.payload,
-- which a steward could join to core.person.id_number_hash: their masked payloads are
-- rewritten here, every text value at any depth that is such a key. The sealed clear
-- record (payload_sealed) and the digest are untouched: replay and matching are as
-- before.
CREATE FUNCTION pg_temp.payload_refs(payload jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN CASE jsonb_typeof(payload)
        WHEN 'string' THEN to_jsonb(mart.record_ref(payload #>> '{}'))
        WHEN 'object' THEN (SELECT coalesce(jsonb_object_agg(k, pg_temp.payload_refs(v)),
                                            '{}'::jsonb)
                              FROM jsonb_each(payload) AS e(k, v))
        WHEN 'array' THEN (SELECT coalesce(jsonb_agg(pg_temp.payload_refs(v) ORDER BY i),
                                           '[]'::jsonb)
                             FROM jsonb_array_elements(payload) WITH ORDINALITY AS e(v, i))
        ELSE payload
    END;
END $$;

UPDATE quality.quarantine SET payload = pg_temp.payload_refs(payload)
 WHERE payload::text ~ '[0-9a-f]{32}'
   AND payload IS DISTINCT FROM pg_temp.payload_refs(payload);
