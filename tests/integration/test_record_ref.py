"""mart.record_ref, computed with string functions since 0017, gives every key the
reference 0008's regular expressions gave it: the references people already hold (in
reports, in tickets) still find their records."""

from __future__ import annotations

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base.masking import record_ref

# Each key, its reference now, and its reference by 0008's definition as it was.
BOTH = """SELECT k, mart.record_ref(k),
    CASE WHEN k ~ '^([a-z_]+:)?[0-9a-f]{32,64}$'
         THEN regexp_replace(k, '[0-9a-f]{32,64}$',
                             translate(left(md5(k), 12), '0123456789', 'ghijkmnpqr'))
         ELSE k END
    FROM unnest(%(keys)s::text[]) AS t(k)"""

HEX = st.text("0123456789abcdef", min_size=28, max_size=70)
PREFIX = st.sampled_from(["", "party:", "caller:", "resident:", "Party:", ":", "a:b:", "x_y:",
                          "1a:", "dead", "B", "R-", "ａ:"])
KEYS = st.one_of(
    st.builds(lambda p, h, tail: p + h + tail, PREFIX, HEX, st.sampled_from(["", "g", ":", " "])),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80),  # text holds no NUL
)


# The connection is only read from: one for all examples.
@settings(max_examples=300,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(KEYS, min_size=1, max_size=20))
def test_every_key_gets_the_reference_the_regular_expression_gave(db: psycopg.Connection, keys):
    for key, now, before in db.execute(BOTH, {"keys": keys}).fetchall():
        assert now == before, key


def test_a_hash_keyed_record_is_shown_as_letters_and_an_own_key_as_it_is(db):
    hashed = "party:" + "0123456789abcdef" * 2
    ref, own = db.execute("SELECT mart.record_ref(%s), mart.record_ref('B1024')",
                          (hashed,)).fetchone()
    assert own == "B1024"
    assert ref.startswith("party:") and len(ref) == len("party:") + 12
    assert not any(c.isdigit() for c in ref) and "0123456789abcdef" not in ref


@settings(max_examples=200,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(KEYS, min_size=1, max_size=20))
def test_the_python_twin_gives_every_key_the_same_reference(db: psycopg.Connection, keys):
    """Quarantined payloads are masked in Python (base.masking.record_ref) and keys shown
    by the views in SQL: one record, one reference, wherever it is shown."""
    refs = db.execute("SELECT mart.record_ref(k) FROM unnest(%(keys)s::text[]) AS t(k)",
                      {"keys": keys}).fetchall()
    assert [r[0] for r in refs] == [record_ref(k) for k in keys]
