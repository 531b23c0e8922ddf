-- mart.record_ref without its unanchored regular expression: the same references,
-- computed with string functions.
--
-- 0008's definition replaced the hex part with regexp_replace(…, '[0-9a-f]{32,64}$', …),
-- which tries the pattern at every position of the key with up to 64 characters of
-- backtracking: evaluated for each row written to core.person (the expression index
-- person_record_ref), it took about two thirds of a resident snapshot's COPY (150,000
-- hash-keyed rows: the index alone 9.7 s, now 1.9 s; a plain index on the key 0.9 s).
-- A key matching ^([a-z_]+:)?[0-9a-f]{32,64}$ has at most one ':' and its hex part is
-- everything after it, so the prefix is left(key, strpos(key, ':')).
CREATE OR REPLACE FUNCTION mart.record_ref(source_id text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN length(source_id) - strpos(source_id, ':') BETWEEN 32 AND 64
             -- the hex part: nothing left once its digits are taken out
             AND translate(substr(source_id, strpos(source_id, ':') + 1),
                           '0123456789abcdef', '') = ''
             -- the prefix, if any: one or more of a–z and _
             AND (strpos(source_id, ':') = 0
                  OR (strpos(source_id, ':') > 1
                      AND translate(left(source_id, strpos(source_id, ':') - 1),
                                    'abcdefghijklmnopqrstuvwxyz_', '') = ''))
            -- letters only: a reference never reads as a phone or ID number
            THEN left(source_id, strpos(source_id, ':'))
                 || translate(left(md5(source_id), 12), '0123456789', 'ghijkmnpqr')
            ELSE source_id END;
COMMENT ON FUNCTION mart.record_ref(text) IS 'a record''s key as people see it: keys derived from a keyed hash (party:/caller:<32–64 hex>) shortened to a reference that cannot be joined to the hash';
-- Same values as before for every key; rebuilt so the index is the function's own.
REINDEX INDEX core.person_record_ref;
