"""A seeded, deterministic model of a real city for the platform simulators.

Districts and streets come from the real division tables (schemas/reference);
communities, grids, people and organizations are generated on top, the same for
every simulator given the same seed, so the platforms share people, places and
incidents the way real platforms of one city do. That shared ground truth is what
the linkage and quality tests check against (sandbox.truth writes it out).

Some people are planted hard negatives for linking (`Person.relation`): twins (one
birth date and address, two ID numbers), namesakes in one grid, a parent and child
sharing the household's phone. The variants below are how platforms key the same
values differently (traditional characters, homophones, full-width digits, 15-digit
legacy IDs …).
"""

from __future__ import annotations

import _random
import bisect
import csv
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import cached_property
from hashlib import sha512
from pathlib import Path

from stdnum.cn import ric, uscc

REFERENCE = Path(__file__).resolve().parent.parent / "schemas" / "reference"

# Approximate WGS84 extents (min_lon, min_lat, max_lon, max_lat) of cities the
# sandbox can simulate; the same figures sit in the sources configuration as the
# city's extent for the coordinate rule.
CITY_EXTENTS: dict[str, tuple[float, float, float, float]] = {
    "2111": (121.42, 40.65, 122.52, 41.45),  # 盘锦市
}

# Realistic size of 盘锦 at scale 1: ~1.4 M people, ~4,600 grids.
PEOPLE_AT_SCALE_1 = 1_400_000
GRIDS_AT_SCALE_1 = 4_600

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红梅鑫波斌宇浩凯健俊帆帅旭宁欣怡佳琪子涵雨轩博文思远晨阳诗琪梓萱一诺浩然"
# A few simplified → traditional pairs, for the "name in traditional characters" dirt.
TRADITIONAL = str.maketrans("刘陈杨黄赵吴马郭罗郑谢韩冯邓萧许华丽强军杰娟涛兰红梅鑫",
                            "劉陳楊黃趙吳馬郭羅鄭謝韓馮鄧蕭許華麗強軍傑娟濤蘭紅梅鑫")
# Names keyed in by ear: a character swapped for another of the same sound (pinyin input
# offers both), the way a hotline operator or a grid worker mistypes a caller's name.
# Every character of GIVEN has one, so every name has a homophone spelling.
HOMOPHONES: dict[str, str] = {
    # given names
    "伟": "玮炜", "芳": "方舫", "娜": "纳", "秀": "琇", "英": "瑛莹", "敏": "闵珉", "静": "婧靖",
    "丽": "莉俐", "强": "蔷", "磊": "垒", "军": "君钧", "洋": "阳扬", "勇": "永涌", "艳": "燕彦",
    "杰": "洁捷", "娟": "鹃", "涛": "滔韬", "明": "铭鸣", "超": "潮", "兰": "岚", "霞": "侠",
    "平": "萍苹", "刚": "钢", "桂": "贵", "华": "桦骅", "玉": "钰煜", "萍": "平苹", "红": "虹宏",
    "梅": "玫媚", "鑫": "新馨", "波": "博", "斌": "彬滨", "宇": "雨羽", "浩": "皓昊", "凯": "恺楷",
    "健": "建", "俊": "骏峻", "帆": "凡", "帅": "率", "旭": "煦栩", "宁": "凝", "欣": "馨新",
    "怡": "宜仪", "佳": "嘉", "琪": "琦淇", "子": "紫梓", "涵": "晗含", "雨": "宇语", "轩": "萱宣",
    "博": "波", "文": "雯闻", "思": "斯丝", "远": "媛源", "晨": "辰宸", "阳": "洋扬", "诗": "师施",
    "梓": "子紫", "萱": "轩宣", "一": "依伊", "诺": "糯", "然": "冉",
    # surnames
    "张": "章", "王": "汪", "刘": "柳", "吴": "伍武", "徐": "许", "许": "徐", "于": "余俞",
    "余": "于", "付": "傅", "江": "姜蒋", "姜": "江", "蒋": "江", "周": "邹", "邹": "周", "程": "成",
    "石": "时", "严": "颜阎", "闫": "阎严", "武": "吴", "戴": "代", "汤": "唐", "唐": "汤",
    "魏": "卫", "韦": "魏", "黎": "李", "李": "黎", "何": "贺", "贺": "何", "罗": "骆", "冯": "封",
    "袁": "元苑", "陆": "卢路", "卢": "陆鲁", "钟": "仲", "谭": "覃", "覃": "谭", "范": "樊",
    "邱": "丘秋", "尹": "殷", "向": "项", "龚": "宫",
}
# Characters of similar shape, for the rarer typo that is no homophone.
SIMILAR_SHAPES: dict[str, str] = {"王": "玉", "玉": "王", "浩": "洁", "晨": "晟", "俊": "浚",
                                  "杨": "扬", "斌": "赋", "娟": "涓"}
FULLWIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
ETHNICITIES = ["汉族"] * 90 + ["满族"] * 6 + ["蒙古族", "回族", "朝鲜族", "锡伯族"]
ROADS = "兴隆大街 石油大街 双兴路 惠宾街 泰山路 渤海路 中兴路 新工街 辽河路 胜利街 建设街 鑫安街 光明路 育才路 平安路 文化街".split()
COMMUNITY_WORDS = "幸福 和平 友谊 阳光 丽景 新兴 锦华 春苑 金湾 翠园 东湖 西城 康乐 惠民 安居 振兴".split()

# Text the platforms really receive and the warehouse must store verbatim.
HOSTILE_TEXT = [
    "楼下烧烤店油烟太大🔥😡，晚上根本没法开窗",
    "ＡＢＣ小区（全角）门口“占道经营”严重",
    "路灯不亮\n已经三天了\r\n请尽快处理",
    "'; DROP TABLE core.event; --",
    "<script>alert('x')</script> 井盖缺失",
    'He said "快来人" and left \\ backslash',
    "下水道堵了 Robert'); SELECT pg_sleep(10); --",
    "tab\tseparated\tcomplaint, with commas, and ,,,",
]


def _seeded_fast(text: str) -> random.Random:
    """random.Random(text) without Random.seed's Python steps: the generator seeded in C
    from the text's bytes and their SHA-512, as seed version 2 does."""
    data = text.encode()
    rng = random.Random.__new__(random.Random)
    _random.Random.seed(rng, int.from_bytes(data + sha512(data).digest(), "big"))
    rng.gauss_next = None  # type: ignore[attr-defined]
    return rng


def _same_streams() -> bool:
    probe = "20261124:person:1"
    fast, plain = _seeded_fast(probe), random.Random(probe)
    return ([fast.random() for _ in range(3)] + [fast.getrandbits(40)]
            == [plain.random() for _ in range(3)] + [plain.getrandbits(40)])


# random.Random(text) made faster where this Python seeds as checked here (the same
# stream, so the same city); random.Random itself anywhere else.
seeded: Callable[[str], random.Random] = _seeded_fast if _same_streams() else random.Random

_BIRTH_FROM = date(1940, 1, 1)
# rng.choices(["户籍", "流动", "境外"], weights=[85, 14, 1]): its cumulative weights.
_POPULATION_TYPES = ("户籍", "流动", "境外")
_POPULATION_CUM_WEIGHTS = (85, 99, 100)


@dataclass(frozen=True)
class District:
    code: str
    name: str


@dataclass(frozen=True)
class Street:
    code: str
    name: str
    district_code: str


@dataclass(frozen=True)
class Grid:
    code: str  # 15 digits: 9-digit street + 3-digit community + 3-digit serial
    name: str
    street_code: str
    district_code: str
    community_name: str
    grid_type: str  # 综合 / 专属
    bbox: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2)

    def wkt(self) -> str:
        x0, y0, x1, y1 = self.bbox
        return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


@dataclass(frozen=True)
class Person:
    index: int
    name: str
    gender: str
    id_number: str
    birth_date: date
    ethnicity: str
    phone: str
    grid: Grid
    address: str
    population_type: str
    # A planted hard negative: `relation` of this person to `related_to`, the resident of
    # the same grid one row before (index - number of grids). twin: the same birth date,
    # surname and address, another ID number; namesake: the same name in the same grid;
    # child / parent: one household, one phone (the parent's), another ID number.
    relation: str | None = None
    related_to: int | None = None


# Shares of people with a planted relation to their grid neighbour one row before, per
# kind (cumulative draw); the first three people of the second row carry one each, so
# every city has them.
RELATION_RATES: tuple[tuple[str, float], ...] = (
    ("twin", 0.006), ("namesake", 0.01), ("shared_phone", 0.03))
RELATIONS = tuple(kind for kind, _ in RELATION_RATES)


@dataclass(frozen=True)
class Organization:
    index: int
    name: str
    uscc: str
    org_type: str
    legal_rep: str
    phone: str
    grid: Grid
    address: str


def _read(name: str) -> list[dict[str, str]]:
    with open(REFERENCE / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def citizen_id(area_code: str, birth: date, seq: int, male: bool) -> str:
    """A valid GB 11643 number: area + birth date + sequence (odd = male) + check."""
    seq3 = (seq % 500) * 2 + (1 if male else 0)
    body = f"{area_code}{birth.year:04d}{birth.month:02d}{birth.day:02d}{seq3:03d}"
    # stdnum's ric.calc_check_digit takes all 18 characters and ignores the last.
    return body + ric.calc_check_digit(body + "0")


def credit_code(area_code: str, serial: int) -> str:
    """A valid GB 32100 code: 91 (enterprise) + 6-digit area + 9-char org code + check."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    org = "".join(alphabet[(serial // 31**i) % 31] for i in range(8))[::-1]
    org += str(serial % 10)
    body = f"91{area_code}{org}"
    return body + uscc.calc_check_digit(body)


class City:
    """The simulated city. Everything is a pure function of (city_code, seed, scale)."""

    def __init__(self, city_code: str = "2111", seed: int = 20261124, scale: float = 1.0):
        if city_code not in CITY_EXTENTS:
            raise ValueError(f"no extent known for city {city_code}; known: {sorted(CITY_EXTENTS)}")
        self.code = city_code
        self.seed = seed
        self.scale = scale
        self.extent = CITY_EXTENTS[city_code]
        self.name = next(r["name"] for r in _read("cities.csv") if r["code"] == city_code)

    @cached_property
    def districts(self) -> list[District]:
        return [District(r["code"], r["name"]) for r in _read("areas.csv")
                if r["cityCode"] == self.code]

    @cached_property
    def streets(self) -> list[Street]:
        return [Street(r["code"], r["name"], r["areaCode"]) for r in _read("streets.csv")
                if r["cityCode"] == self.code]

    @cached_property
    def grids(self) -> list[Grid]:
        """Tiles the extent: a vertical strip per district, a band per street, grids inside."""
        rng = random.Random(self.seed)
        min_lon, min_lat, max_lon, max_lat = self.extent
        total = max(len(self.streets), round(GRIDS_AT_SCALE_1 * self.scale))
        per_street = max(1, total // len(self.streets))
        grids: list[Grid] = []
        width = (max_lon - min_lon) / len(self.districts)
        for d_i, district in enumerate(self.districts):
            streets = [s for s in self.streets if s.district_code == district.code]
            band = (max_lat - min_lat) / len(streets)
            x0 = min_lon + d_i * width
            for s_i, street in enumerate(streets):
                y0 = min_lat + s_i * band
                cols = math.ceil(math.sqrt(per_street))
                rows = math.ceil(per_street / cols)
                for g in range(per_street):
                    c, r = g % cols, g // cols
                    gx0 = x0 + c * width / cols
                    gy0 = y0 + r * band / rows
                    community = g // 10 + 1
                    serial = g % 10 + 1
                    cname = f"{COMMUNITY_WORDS[(community + s_i) % len(COMMUNITY_WORDS)]}社区"
                    code = f"{street.code}{community:03d}{serial:03d}"
                    grids.append(Grid(
                        code=code,
                        name=f"{street.name}{cname}第{serial}网格",
                        street_code=street.code,
                        district_code=district.code,
                        community_name=cname,
                        grid_type="综合" if rng.random() < 0.9 else "专属",
                        bbox=(round(gx0, 6), round(gy0, 6),
                              round(gx0 + width / cols, 6), round(gy0 + band / rows, 6)),
                    ))
        return grids

    @cached_property
    def grid_by_code(self) -> dict[str, Grid]:
        return {g.code: g for g in self.grids}

    @property
    def population(self) -> int:
        return max(100, round(PEOPLE_AT_SCALE_1 * self.scale))

    def rng(self, *salt: object) -> random.Random:
        """An independent, reproducible stream for one purpose (e.g. one platform)."""
        return seeded(f"{self.seed}:{':'.join(map(str, salt))}")

    def point_in(self, grid: Grid, rng: random.Random) -> tuple[float, float]:
        x0, y0, x1, y1 = grid.bbox
        # Keep clear of the edges so a point is unambiguously inside its grid.
        return (round(rng.uniform(x0 + (x1 - x0) * 0.1, x1 - (x1 - x0) * 0.1), 6),
                round(rng.uniform(y0 + (y1 - y0) * 0.1, y1 - (y1 - y0) * 0.1), 6))

    @cached_property
    def _district_names(self) -> dict[str, str]:
        return {d.code: d.name for d in self.districts}

    def address(self, grid: Grid, rng: random.Random) -> str:
        # rng.choice and rng.randint, spelt out (the same draws: this runs per person).
        below: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]
        return (f"{self.name}{self._district_names[grid.district_code]}"
                f"{ROADS[below(len(ROADS))]}{1 + below(300)}号"
                f"{grid.community_name}{1 + below(40)}号楼")

    def person(self, index: int) -> Person:
        """The index-th resident; the same index is the same human on every platform.

        A few people are planted hard negatives for linking, related to the resident of
        their grid one row before (`Person.relation`, `RELATION_RATES`): twins, namesakes,
        and a parent and child sharing the household's phone.
        """
        person, draw, rng = self._person(index)
        kind = self._relation_kind(index, draw)
        if kind is None:
            return person
        partner_index = index - len(self.grids)
        partner, partner_draw, _ = self._person(partner_index)
        if self._relation_kind(partner_index, partner_draw) is not None:
            return person  # relations do not chain: the partner is a plain resident
        return self._related(person, partner, kind, rng)

    def _person(self, index: int) -> tuple[Person, float, random.Random]:
        """The resident before any relation, the draw that decides one, and the stream."""
        # The draws of rng.random/randint/choice/choices spelt out with the generator's
        # own primitives, in the same order: the same people, about twice as fast.
        rng = seeded(f"{self.seed}:person:{index}")  # self.rng("person", index)
        below: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]
        uniform = rng.random
        grids = self.grids
        grid = grids[index % len(grids)]
        male = uniform() < 0.51
        birth = _BIRTH_FROM + timedelta(days=below(365 * 65 + 1))
        name = SURNAMES[below(len(SURNAMES))] + "".join(
            [GIVEN[below(len(GIVEN))] for _ in range((1, 2)[below(2)])])
        person = Person(
            index=index,
            name=name,
            gender="男" if male else "女",
            id_number=citizen_id(grid.district_code, birth, index, male),
            birth_date=birth,
            ethnicity=ETHNICITIES[below(len(ETHNICITIES))],
            phone=f"1{'3456789'[below(7)]}{below(1_000_000_000):09d}",
            grid=grid,
            address=self.address(grid, rng),
            population_type=_POPULATION_TYPES[
                bisect.bisect(_POPULATION_CUM_WEIGHTS, uniform() * 100.0, 0, 2)],
        )
        return person, uniform(), rng

    def _relation_kind(self, index: int, draw: float) -> str | None:
        n_grids = len(self.grids)
        if index < n_grids or index >= self.population:
            return None
        if index < n_grids + len(RELATIONS):
            return RELATIONS[index - n_grids]
        bound = 0.0
        for kind, rate in RELATION_RATES:
            bound += rate
            if draw < bound:
                return kind
        return None

    def _related(self, person: Person, partner: Person, kind: str,
                 rng: random.Random) -> Person:
        """`person` made the twin, namesake, parent or child of `partner` (same grid)."""
        surname = partner.name[:1]
        name, gender, birth = person.name, person.gender, person.birth_date
        address, phone = person.address, person.phone
        ethnicity, population_type = person.ethnicity, person.population_type
        if kind == "twin":
            relation, given = "twin", person.name[1:]
            while surname + given == partner.name:
                given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            name, birth, address = surname + given, partner.birth_date, partner.address
            ethnicity, population_type = partner.ethnicity, partner.population_type
        elif kind == "namesake":
            relation, name, gender = "namesake", partner.name, partner.gender
        else:  # one household, one phone
            years = timedelta(days=rng.randint(24 * 365, 34 * 365))
            if partner.birth_date.year <= 1985:
                relation, birth = "child", partner.birth_date + years
            else:
                relation, birth = "parent", partner.birth_date - years
            name, address, phone = surname + person.name[1:], partner.address, partner.phone
            ethnicity, population_type = partner.ethnicity, partner.population_type
        return replace(
            person, name=name, gender=gender, birth_date=birth, address=address, phone=phone,
            ethnicity=ethnicity, population_type=population_type,
            id_number=citizen_id(person.grid.district_code, birth, person.index, gender == "男"),
            relation=relation, related_to=partner.index)

    def organization(self, index: int) -> Organization:
        rng = self.rng("org", index)
        grid = self.grids[(index * 7) % len(self.grids)]
        kind = rng.choices(["企业", "个体工商户", "社会组织"], weights=[70, 25, 5])[0]
        word = rng.choice(["鑫源", "兴盛", "辽河", "湿地", "红海滩", "渤海", "金秋", "恒达"])
        suffix = {"企业": "有限公司", "个体工商户": "商店", "社会组织": "志愿者协会"}[kind]
        return Organization(
            index=index,
            name=f"{self.name}{word}{rng.choice(['商贸', '建筑', '餐饮', '物业', '科技'])}{suffix}{index}",
            uscc=credit_code(grid.district_code, 100_000 + index),
            org_type=kind,
            legal_rep=self.person(index * 13 % self.population).name,
            phone=f"0427{rng.randint(2_000_000, 8_999_999)}",
            grid=grid,
            address=self.address(grid, rng),
        )


# Dirty variants, as different platforms key in the same value.

def id_variant(id_number: str, rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    """A messy but recoverable spelling of a valid ID number, and its kind.

    `kind` forces one of lower_x / spaces / legacy15 / fullwidth; otherwise one of the
    first three is drawn. A kind
    that cannot apply to this number (lower_x without an X; legacy15 for someone
    not born 1900–1999, as 15-digit numbers only carry a two-digit year) gives the
    number back unchanged with kind "clean".
    """
    kind = kind or rng.choice(["lower_x", "spaces", "legacy15"])
    if kind == "fullwidth":  # only when asked for: the draw above stays as it was
        return fullwidth(id_number), kind
    if kind == "lower_x" and id_number.endswith("X"):
        return id_number.lower(), kind
    if kind == "spaces":
        return f"{id_number[:6]} {id_number[6:14]} {id_number[14:]}".lower(), kind
    if kind == "legacy15" and id_number[6:8] == "19":
        return id_number[:6] + id_number[8:17], kind
    return id_number, "clean"


def wrong_check_digit(id_number: str) -> str:
    digits = "0123456789X"
    return id_number[:17] + digits[(digits.index(id_number[17].upper()) + 1) % 11]


def phone_variant(phone: str, rng: random.Random) -> str:
    return rng.choice([f"+86{phone}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", f"+86 {phone}"])


def fullwidth(text: str) -> str:
    """Digits (and an X) keyed in full-width, as a Chinese input method in full-width mode
    types them: `２１１１０３…`."""
    return text.translate(FULLWIDTH)


def name_typo(name: str, rng: random.Random) -> str:
    """The name with one character mistyped: mostly a homophone (张伟 → 张玮, 李娜 → 李纳), the
    given name far more often than the surname; now and then a character of similar
    shape (王 → 玉). Every name of the City has one (`HOMOPHONES` covers `GIVEN`)."""
    if rng.random() < 0.1:
        shaped = [i for i, ch in enumerate(name) if ch in SIMILAR_SHAPES]
        if shaped:
            i = rng.choice(shaped)
            return name[:i] + SIMILAR_SHAPES[name[i]] + name[i + 1:]
    sounds = [i for i, ch in enumerate(name) if ch in HOMOPHONES]
    given = [i for i in sounds if i > 0]
    if not sounds:
        return name
    i = rng.choice(given) if given and (rng.random() < 0.85 or sounds == given) else sounds[0]
    return name[:i] + rng.choice(HOMOPHONES[name[i]]) + name[i + 1:]


def name_variant(name: str, rng: random.Random) -> str:
    traditional = name.translate(TRADITIONAL)
    if traditional != name and rng.random() < 0.5:
        return traditional
    return name[:1] + " " + name[1:]


def plant_defects(n: int, families: Sequence[Sequence[str]], rates: Mapping[str, float],
                  eligible: Callable[[str, int], bool], rng_for: Callable[[int], random.Random],
                  *, fill_short: bool = False) -> list[set[str]]:
    """Which of `n` records carry which defect: a fixed share per kind, at least a floor.

    Kinds of one family never share a record (one defect would hide the other); each
    family is drawn in its own seeded order (`rng_for(family index)`), so adding a kind
    to one family moves no other. `eligible` keeps a kind off records it cannot apply
    to; with `fill_short`, a kind with too few eligible records is planted anyway.
    """
    defects: list[set[str]] = [set() for _ in range(n)]
    floor = 2 if n >= 50 else 1
    for f_i, family in enumerate(families):
        order = list(range(n))
        rng_for(f_i).shuffle(order)
        used: set[int] = set()
        for kind in family:
            want = max(floor, round(rates[kind] * n))
            picks = [i for i in order if i not in used and eligible(kind, i)][:want]
            if fill_short and len(picks) < want:
                picks += [i for i in order if i not in used and i not in picks][:want - len(picks)]
            for i in picks:
                used.add(i)
                defects[i].add(kind)
    return defects
