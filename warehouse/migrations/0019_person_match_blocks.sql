-- Person linking at city scale (issue 10): an incremental run looks up, for each new
-- record with a birth date, the stored records of that birth date with its surname or its
-- pinyin (link/person_store.py, the blocks of link/person_model.py). With an index on the
-- birth date alone each look-up read every record of the date (about 40 in a city of a
-- million: one page each) to keep the one or none of the same surname; with the surname
-- and the pinyin in the index it reads only those (a bitmap OR of the two).
CREATE INDEX person_match_birth_surname ON core.person_match (birth_date, surname)
    WHERE birth_date IS NOT NULL;
CREATE INDEX person_match_birth_pinyin ON core.person_match (birth_date, pinyin)
    WHERE birth_date IS NOT NULL;
-- Its look-ups are served by the first of these.
DROP INDEX core.person_match_birth;
