"""The demo's synthetic Khon Kaen: the people, homes and areas it loads, drawn from one seeded generator so
the same seed and scale give the same people, and the figures reporting must show once they are loaded.

Two survey years: B.E. 2565 reproduces the source document; in B.E. 2566 the same households are surveyed again,
`EXITED` target-poor households (per scale) are no longer deprived and `ENTERED` households deprived in nothing
the year before now are, so the poverty report's `exited` and `entered` show real changes."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from services.assessment.scoring import Person, applies
from services.assessment.sets.schemas import IndicatorSet
from shared.pii import check_digit

PROVINCE = "40"
SURVEY_YEAR = 2565
FISCAL_YEAR = 2565
SURVEYED_ON = date(2022, 1, 15)
NEXT_SURVEY_YEAR = 2566
NEXT_SURVEYED_ON = date(2023, 1, 15)
EXITED = 250  # per scale: target poor in 2565, deprived in nothing in 2566 (the last target households)
ENTERED = 60  # per scale: deprived in nothing in 2565 (with a welfare card), target poor in 2566
GRANTS_PAID_ON = date(2022, 1, 27)  # the kick-off in Khon Kaen
SUBSIDIES_PAID_ON = date(2022, 2, 10)
INDICATOR_SET = "tpmap-2560"

# The source document's figures (per scale for people).
TARGET_HOUSEHOLDS_BY_SIZE = {3: 1952, 2: 1617}  # 3,569 households, 9,090 persons
NOT_TARGET_HOUSEHOLDS = 1431  # 900 deprived in nothing, 531 deprived without a welfare card
NOT_DEPRIVED = 900
TEAMS = 211
SOCIAL_ASSISTANCE_CENTRES = 224
FAMILY_DEVELOPMENT_CENTRES = 78
GRANT_FAMILIES = 360
GRANT = Decimal("3000.00")
SUBSIDY = Decimal("10000.00")  # per centre: not published; 78 × 10,000 = 780,000 baht is
IMPORT_FILE_HOUSEHOLDS = 1000
FIELD_HOMES = 150  # per run: target households the teams visit in the current fiscal year
# The partners the demo refers households to, one per sector it uses.
FIELD_PARTNERS = (("โรงพยาบาลขอนแก่น", "government"), ("บริษัท ขอนแก่นพัฒนาอาชีพ จำกัด", "private"),
                  ("มหาวิทยาลัยขอนแก่น", "academic"), ("มูลนิธิเพื่อนบ้านอีสาน", "civil_society"),
                  ("วัดหนองแวง พระอารามหลวง", "religious"))
FIELD_WORK_FIGURES = ("visits", "households_visited", "referrals_open", "referrals_overdue", "referrals_done")

MEASURED = {"drinking_water": "drinking_water_lpd", "use_water": "use_water_lpd",
            "household_income": "income_per_person_year"}

MALE = ("สมชาย", "สมศักดิ์", "บุญมี", "ประเสริฐ", "สุริยา", "วิชัย", "ทองดี", "คำพอง", "บุญเลิศ", "สมบัติ", "อนันต์",
        "ณรงค์", "เกียรติศักดิ์", "จักรพันธ์", "ธนากร", "ภูมิพัฒน์", "วีระ", "สุทธิพงษ์", "คำแสน", "ศรีสุข")
FEMALE = ("สมหญิง", "บุญเรือน", "คำปุ่น", "มาลี", "สุนีย์", "จันทร์เพ็ญ", "ทองใบ", "วันเพ็ญ", "ประภา", "สายสุนีย์",
          "อรุณี", "พิมพ์ใจ", "กาญจนา", "ศิริพร", "นภาพร", "ปราณี", "ละมัย", "บัวผัน", "คำมี", "ดวงใจ")
SURNAMES = ("ใจดี", "ศรีสุข", "บุญมา", "แก้วมณี", "พลเยี่ยม", "ชัยวงศ์", "ศรีบุญเรือง", "คำภูแสน", "โคตรพัฒน์",
            "ภูผาลา", "แสนสุข", "จันทร์หอม", "ทองคำ", "สีหาราช", "พรมวงศ์", "ดวงจันทร์", "บุตรดี", "อินทร์แปลง",
            "ผาสุข", "วงศ์ภักดี", "นามวงศ์", "ศรีวิเศษ", "ไชยสงคราม", "ปัททุม", "เหล่าคนค้า")
POSITIONS = (("นายอำเภอ", "ที่ว่าการอำเภอ"), ("พัฒนาการอำเภอ", "สำนักงานพัฒนาชุมชนอำเภอ"),
             ("พัฒนากร", "สำนักงานพัฒนาชุมชนอำเภอ"), ("ผู้อำนวยการโรงพยาบาลส่งเสริมสุขภาพตำบล", "รพ.สต."),
             ("ปลัดองค์การบริหารส่วนตำบล", "องค์การบริหารส่วนตำบล"), ("กำนัน", "ตำบล"),
             ("นักพัฒนาสังคม", "สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัดขอนแก่น"))


@dataclass(frozen=True)
class Scenario:
    """What the demo loads: seed and scale decide every person."""

    seed: int = 2565
    scale: int = 1

    @property
    def target_households(self) -> int:
        return sum(TARGET_HOUSEHOLDS_BY_SIZE.values()) * self.scale

    @property
    def target_persons(self) -> int:
        return sum(size * n for size, n in TARGET_HOUSEHOLDS_BY_SIZE.items()) * self.scale

    @property
    def households(self) -> int:
        return self.target_households + NOT_TARGET_HOUSEHOLDS * self.scale


@dataclass
class Member:
    citizen_id: str
    title: str
    first_name: str
    last_name: str
    sex: str
    birth_date: date
    relation: str
    disability: bool = False


@dataclass
class Home:
    key: str
    subdistrict: str
    village_no: int
    house_no: str
    sources: list[str]
    welfare_card: bool
    members: list[Member]
    fails: set[str] = field(default_factory=set)
    household_id: str | None = None

    @property
    def village_code(self) -> str:
        return f"{self.subdistrict}{self.village_no:02d}"

    @property
    def target(self) -> bool:
        return bool(self.fails) and self.welfare_card


@dataclass(frozen=True)
class Area:
    code: str
    name_th: str


@dataclass
class Geography:
    districts: list[Area]
    subdistricts: dict[str, list[Area]]  # by district code

    def all_subdistricts(self) -> list[Area]:
        return [s for d in self.districts for s in self.subdistricts[d.code]]


# -- the people ------------------------------------------------------------------------------------------


class People:
    """Thai persons with valid, distinct citizen IDs, drawn from one random generator; ages as on `on` (the survey
    date)."""

    def __init__(self, rng: random.Random, on: date = SURVEYED_ON) -> None:
        self.rng = rng
        self.on = on
        self.ids: set[str] = set()

    def citizen_id(self, born: date) -> str:
        # First digit: 3 for people registered before 1984, 1 for those born later with a birth certificate.
        first = "3" if born.year < 1984 else "1"
        while True:
            body = first + "40" + "".join(str(self.rng.randrange(10)) for _ in range(9))
            cid = body + check_digit(body)
            if cid not in self.ids:
                self.ids.add(cid)
                return cid

    def born(self, age_from: int, age_to: int) -> date:
        age = self.rng.randint(age_from, age_to)
        return date(self.on.year - age - 1, self.rng.randint(1, 12), self.rng.randint(1, 28))

    def person(self, relation: str, sex: str, born: date, surname: str) -> Member:
        child = (self.on - born).days < 15 * 365
        names = MALE if sex == "male" else FEMALE
        title = (("เด็กชาย" if sex == "male" else "เด็กหญิง") if child
                 else "นาย" if sex == "male" else "นาง" if relation in ("spouse", "head", "parent") else "นางสาว")
        return Member(self.citizen_id(born), title, self.rng.choice(names), surname, sex, born, relation,
                      disability=self.rng.random() < 0.03)

    def household(self, size: int) -> list[Member]:
        rng = self.rng
        surname = rng.choice(SURNAMES)
        head_sex = rng.choice(("male", "female"))
        other = "female" if head_sex == "male" else "male"
        shape = rng.random()
        if size == 1:
            return [self.person("head", head_sex, self.born(25, 85), surname)]
        if size == 2 and shape < 0.45:  # an elderly couple
            return [self.person("head", head_sex, self.born(60, 84), surname),
                    self.person("spouse", other, self.born(58, 82), surname)]
        if size == 2 and shape < 0.75:  # a grandparent raising a grandchild while the parents work in the city
            return [self.person("head", head_sex, self.born(55, 78), surname),
                    self.person("relative", rng.choice(("male", "female")), self.born(2, 16), surname)]
        members = [self.person("head", head_sex, self.born(24, 58), surname),
                   self.person("spouse", other, self.born(22, 58), surname)]
        while len(members) < size:
            if len(members) == 2 and rng.random() < 0.3:
                members.append(self.person("parent", rng.choice(("male", "female")), self.born(62, 88), surname))
            else:
                members.append(self.person("child", rng.choice(("male", "female")), self.born(0, 20), surname))
        return members[:size]


def population(scenario: Scenario, geography: Geography, indicator_set: IndicatorSet) -> list[Home]:
    """Every household the demo registers, in a fixed order: target households first."""
    rng = random.Random(scenario.seed)
    people = People(rng)
    subdistricts = geography.all_subdistricts()
    villages = {s.code: rng.randint(8, 20) for s in subdistricts}
    houses: dict[str, int] = {}
    sizes = [size for size, n in TARGET_HOUSEHOLDS_BY_SIZE.items() for _ in range(n * scenario.scale)]
    kinds = ["target"] * len(sizes) + ["not_deprived"] * (NOT_DEPRIVED * scenario.scale) + \
        ["no_welfare_card"] * ((NOT_TARGET_HOUSEHOLDS - NOT_DEPRIVED) * scenario.scale)
    sizes += [rng.choice((1, 2, 3, 4, 4, 5)) for _ in range(len(kinds) - len(sizes))]
    homes = []
    for n, (kind, size) in enumerate(zip(kinds, sizes, strict=True)):
        subdistrict = rng.choice(subdistricts).code
        village_no = rng.randint(1, villages[subdistrict])
        village = f"{subdistrict}{village_no:02d}"
        houses[village] = houses.get(village, 0) + 1
        members = people.household(size)
        sources = (["tpmap"] if rng.random() < 0.8 else [rng.choice(("exclusion_error", "vulnerable"))]
                   if kind == "target" else ["tpmap"] if rng.random() < 0.6 else ["other"])
        home = Home(f"KK{n + 1:07d}", subdistrict, village_no, f"{houses[village]}/{rng.randint(1, 9)}", sources,
                    welfare_card=kind != "no_welfare_card", members=members)
        if kind != "not_deprived":
            applicable = [i.code for i in indicator_set.indicators
                          if applies(i, [Person(m.birth_date, m.disability) for m in members], SURVEYED_ON)]
            home.fails = set(rng.sample(applicable, rng.choice((1, 1, 2, 2, 3))))
        homes.append(home)
    return homes


def household_rows(homes: Iterable[Home]) -> list[dict[str, Any]]:
    """The registry's import CSV: one row per person."""
    return [{"household_key": h.key, "subdistrict_code": h.subdistrict, "village_no": h.village_no,
             "house_no": h.house_no, "lat": "", "lon": "", "sources": ";".join(h.sources),
             "welfare_card": "true" if h.welfare_card else "false", "citizen_id": m.citizen_id, "title": m.title,
             "first_name": m.first_name, "last_name": m.last_name, "sex": m.sex,
             "birth_date": m.birth_date.isoformat(), "relation": m.relation,
             "disability": "true" if m.disability else "false"} for h in homes for m in h.members]


def assessment_row(home: Home, indicator_set: IndicatorSet, rng: random.Random, *, survey_year: int = SURVEY_YEAR,
                   surveyed_on: date = SURVEYED_ON, fails: set[str] | None = None, by_key: bool = False,
                   ) -> dict[str, Any]:
    """A surveyor's answers: every indicator that applies, failed where the household is deprived (`fails`, by
    default the household's in the first survey year). The household by its registry id, or with `by_key` by
    the `household_key` of its registry import."""
    assert by_key or home.household_id is not None
    persons = [Person(m.birth_date, m.disability) for m in home.members]
    failed = home.fails if fails is None else fails
    row: dict[str, Any] = {"household_key": home.key} if by_key else {"household_id": home.household_id}
    row |= {"indicator_set": indicator_set.id, "survey_year": survey_year, "surveyed_on": surveyed_on.isoformat()}
    for indicator in indicator_set.indicators:
        if not applies(indicator, persons, surveyed_on):
            continue
        fail = indicator.code in failed
        if indicator.measurement is not None:  # below the threshold (at most 95% of it) or at least it
            percent = rng.randint(30, 95) if fail else rng.randint(100, 250)
            row[indicator.measurement.name] = str(int(indicator.measurement.at_least * percent / 100))
        else:
            row[indicator.code] = "false" if fail else "true"
    return row


def next_year_fails(scenario: Scenario, homes: Sequence[Home], indicator_set: IndicatorSet) -> dict[str, set[str]]:
    """What each household fails in the second survey year, by key: the same indicators where they still apply
    (a target household whose indicators no longer apply fails another one: it stays target poor), except the
    last `EXITED` target households (nothing) and the first `ENTERED` households deprived in nothing with a
    welfare card (one indicator)."""
    rng = random.Random(f"{scenario.seed}:{NEXT_SURVEY_YEAR}")
    targets = [h for h in homes if h.target]
    exited = {h.key for h in targets[len(targets) - EXITED * scenario.scale:]}
    entered = {h.key for h in [h for h in homes if not h.fails and h.welfare_card][:ENTERED * scenario.scale]}
    fails: dict[str, set[str]] = {}
    for home in homes:
        persons = [Person(m.birth_date, m.disability) for m in home.members]
        applicable = sorted(i.code for i in indicator_set.indicators if applies(i, persons, NEXT_SURVEYED_ON))
        if home.key in exited:
            fails[home.key] = set()
        elif home.key in entered:
            fails[home.key] = {rng.choice(applicable)}
        else:
            kept = home.fails & set(applicable)
            fails[home.key] = kept or ({rng.choice(applicable)} if home.target else set())
    return fails


def csv_file(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


class DemoError(RuntimeError):
    pass


def expected(scenario: Scenario, *, grant_batches: int = 1) -> dict[str, Any]:
    """The figures the reporting service must show once the demo has loaded."""
    return {"districts": 26, "subdistricts": 199, "teams": TEAMS,
            "target_poor_households_2566": scenario.target_households + (ENTERED - EXITED) * scenario.scale,
            "exited_2566": EXITED * scenario.scale, "entered_2566": ENTERED * scenario.scale,
            "social_assistance_centres": SOCIAL_ASSISTANCE_CENTRES,
            "family_development_centres": FAMILY_DEVELOPMENT_CENTRES, "households": scenario.households,
            "target_poor_households": scenario.target_households, "target_poor_persons": scenario.target_persons,
            "families_granted": GRANT_FAMILIES * grant_batches,
            "grant_amount": f"{GRANT * GRANT_FAMILIES * grant_batches:.2f}",
            "centres_subsidised": FAMILY_DEVELOPMENT_CENTRES,
            "subsidy_amount": f"{SUBSIDY * FAMILY_DEVELOPMENT_CENTRES:.2f}"}


def field_homes(homes: Sequence[Home]) -> list[Home]:
    """The households the teams visit: target households after the grant batches' 720 and before the ones that
    exit poverty in the next survey year."""
    targets = [h for h in homes if h.target]
    return targets[720:720 + FIELD_HOMES]


def grant_families(homes: Sequence[Home], batch_no: int) -> list[Home]:
    """The families of the ministry's batch `batch_no` (1, 2, ...): target households, 360 at a time."""
    targets = [h for h in homes if h.target]
    chosen = targets[(batch_no - 1) * GRANT_FAMILIES: batch_no * GRANT_FAMILIES]
    if len(chosen) < GRANT_FAMILIES:
        raise DemoError(f"not enough target households for grant batch {batch_no}")
    return chosen
