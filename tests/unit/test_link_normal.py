"""link.normal, link.clusters: one spelling per name and address; clusters that keep the
hard rules; keys that outlive a rerun."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from link.clusters import Clusters, new_key, stable_keys
from link.normal import (
    address_coarse,
    address_normal,
    addresses,
    gender,
    name_forms,
    name_normal,
    name_pinyin,
    split_name,
)


@pytest.mark.parametrize("spelling", ["刘伟", "劉偉", "刘 伟", "刘\u3000伟", " 刘·伟 ", "刘\u200b伟"])
def test_every_spelling_of_a_name_has_one_normal_form(spelling):
    assert name_normal(spelling) == "刘伟"


def test_latin_letters_fold_and_honorifics_drop():
    assert name_normal("ＬＩ　Ｍｉｎｇ") == "liming"
    assert name_normal("王女士") == "王"
    assert name_normal("女士") == "女士"  # nothing but the word: left as it is
    assert name_normal("  ") is None and name_normal(None) is None


def test_surname_and_given_name():
    assert split_name("刘伟") == ("刘", "伟")
    assert split_name("欧阳娜娜") == ("欧阳", "娜娜")
    assert split_name("欧阳") == ("欧", "阳")  # two characters: 欧 is the surname
    assert split_name("liming") == (None, "liming")


def test_pinyin_catches_homophones_and_reads_surnames_as_surnames():
    assert name_pinyin("张伟") == name_pinyin("张玮") == "zhangwei"
    assert name_pinyin("曾小贤") == "zengxiaoxian"
    assert name_pinyin("单田芳") == "shantianfang"
    assert name_pinyin(None) is None


def test_name_forms_of_a_column_are_row_aligned():
    forms = name_forms(pa.array(["劉偉", None, "张玮", "劉偉"]))
    assert forms.name.to_pylist() == ["刘伟", None, "张玮", "刘伟"]
    assert forms.surname.to_pylist() == ["刘", None, "张", "刘"]
    assert forms.given.to_pylist() == ["伟", None, "玮", "伟"]
    assert forms.pinyin.to_pylist() == ["liuwei", None, "zhangwei", "liuwei"]


def test_genders():
    assert [gender(v) for v in ("男", "Ｆ", " 女 ", "male", "未知", None)] == [
        "男", "女", "女", "男", None, None]


def test_addresses_normal_and_coarse():
    full = "盘锦市 兴隆台区兴隆大街１２号幸福社区5号楼3单元201室"
    assert address_normal(full) == "盘锦市兴隆台区兴隆大街12号幸福社区5号楼3单元201室"
    # Neighbours in one estate share the coarse key; building and room are dropped.
    assert address_coarse(full) == address_coarse("盘锦市兴隆台区興隆大街12号幸福社区12号楼") \
        == "盘锦市兴隆台区兴隆大街12号幸福社区"
    assert address_coarse("盘锦市兴隆台区兴隆大街12号幸福社区3-2-201") == \
        "盘锦市兴隆台区兴隆大街12号幸福社区"
    normal, coarse = addresses(pa.array([full, None]))
    assert normal.to_pylist()[1] is None and coarse.to_pylist()[0].endswith("幸福社区")


# ------------------------------------------------------------------ clusters


def test_two_identities_never_share_a_cluster_unless_a_steward_says():
    c = Clusters(4, ["a", "b", None, None])
    assert c.union(0, 2) and not c.union(2, 1)  # 2 joined a's person: b may not follow
    assert c.find(1) != c.find(0)
    assert c.union(1, 3)
    assert c.union(0, 1, force_identity=True)  # a steward's merge
    assert c.union(2, 3)  # one cluster holding a and b takes records of either


def test_a_split_is_never_crossed_not_even_through_a_third_record():
    c = Clusters(3, [None, None, None], cannot_link=[(0, 1)])
    assert c.union(0, 2)
    assert not c.union(2, 1)
    assert not c.union(1, 0, force_identity=True)
    assert len(set(c.labels().tolist())) == 2


def test_new_keys_are_letters_only_and_depend_on_the_record():
    key = new_key("P", "gridmgmt\x1fR-1")
    assert re.fullmatch(r"P[a-z]{12}", key)
    assert key == new_key("P", "gridmgmt\x1fR-1") != new_key("P", "gridmgmt\x1fR-2")
    assert new_key("P", "gridmgmt\x1fR-1", 1) != key


def test_a_cluster_keeps_the_key_it_overlaps_most():
    labels = np.array([0, 0, 0, 1, 1, 2])
    previous = ["K1", "K1", "K2", "K1", "K2", None]
    seeds = [f"s{i}" for i in range(6)]
    out = stable_keys(labels, previous, seeds, "P", taken=set())
    keys = out.keys.tolist()
    assert keys[0] == keys[1] == keys[2] == "K1"  # two of K1's records
    assert keys[3] == keys[4] == "K2"  # K1 is taken: the next best
    assert keys[5] == new_key("P", "s5")
    assert (out.kept, out.new, out.retired) == (2, 1, {})


def test_a_key_no_cluster_keeps_retires_pointing_where_its_records_went():
    labels = np.array([0, 0, 0])
    out = stable_keys(labels, ["K1", "K1", "K2"], ["a", "b", "c"], "P", taken=set())
    assert set(out.keys.tolist()) == {"K1"} and out.retired == {"K2": "K1"}


def test_a_new_key_never_repeats_a_retired_one():
    taken = {new_key("P", "a")}
    out = stable_keys(np.array([0]), [None], ["a"], "P", taken=taken)
    assert out.keys[0] == new_key("P", "a", 1)


def test_no_chain_of_links_joins_two_birth_dates():
    # Father (1950) and son (1980) of one name; a record with no birth date fits both.
    c = Clusters(3, [None, None, None], exclusive=(["1950-01-01", None, "1980-01-01"],))
    assert c.union(0, 1)
    assert not c.union(1, 2)
    assert c.union(1, 2, force_identity=True)  # a steward may


def test_groups_that_held_stand_and_keep_their_rules():
    c = Clusters(5, ["a", None, "b", None, None], exclusive=([None, "1950", None, None, None],))
    c.group(np.array([0, 0, 1, 1, -1]))
    labels = c.labels()
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[4] == 4
    assert not c.union(1, 3)  # a's and b's clusters: two identities
    assert c.union(4, 0) and c.labels()[4] == labels[0]
    with pytest.raises(ValueError):
        c.group(np.array([0, 0, -1, -1, -1]))


def test_groups_are_joined_at_once_only_where_no_rule_could_refuse():
    # Three records of one ID number; two of another that disagree on the birth date; two
    # of a third, one of which a steward split from a fifth record.
    births = ["1950", None, "1950", "1960", "1961", None, None, None]
    c = Clusters(8, ["a", "a", "a", "b", "b", "c", "c", None], cannot_link=[(6, 7)],
                 exclusive=(births,))
    rest = c.join_consistent(np.array([0, 0, 0, 1, 1, 2, 2, -1]))
    labels = c.labels()
    assert labels[0] == labels[1] == labels[2]
    assert rest.tolist() == [-1, -1, -1, 1, 1, 2, 2, -1]  # left to union, one at a time
    assert not c.union(3, 4)
    assert c.union(5, 6) and not c.union(6, 7)
