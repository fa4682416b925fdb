"""What the load test (bench/load.py, whose docstring describes the mix) acts on and what it asks: seeding the
system (the demo, one partner per load client with its referrals), the World the requests pick their ids from,
and the operations of the mix with their weights (MIX)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ops import demo
from ops.launcher import System
from services.assessment.scoring import Person, applies
from services.assessment.sets.schemas import IndicatorSet
from shared import clock

SEED = 2569
REFERRALS_PER_PARTNER = 100
ASSESS_AFTER_S = 10.0  # a household the load registered is surveyed once the registry's event has long arrived

PARTNERS = (("government", "โรงพยาบาลขอนแก่น"), ("academic", "มหาวิทยาลัยขอนแก่น"),
            ("private", "หอการค้าจังหวัดขอนแก่น"), ("religious", "วัดหนองแวงพระอารามหลวง"),
            ("civil_society", "มูลนิธิพัฒนาชุมชนขอนแก่น"), ("people", "สภาองค์กรชุมชนตำบลบ้านเป็ด"),
            ("media", "สถานีวิทยุกระจายเสียงแห่งประเทศไทย จังหวัดขอนแก่น"))
ACTIONS = {"health": "พาไปรับการรักษาที่โรงพยาบาลชุมชน", "living": "ซ่อมแซมหลังคาบ้านที่รั่ว",
           "education": "ทุนการศึกษาสำหรับบุตรหลาน", "income": "ฝึกอาชีพและหางานรับจ้างในชุมชน",
           "access": "ช่วยยื่นขอสวัสดิการแห่งรัฐและเบี้ยยังชีพ"}
HELP = (("in_kind", "มอบข้าวสาร 10 กิโลกรัม และของใช้จำเป็น"), ("cash", "มอบเงินช่วยเหลือฉุกเฉิน"),
        ("housing", "ซ่อมแซมหลังคาและฝาบ้าน"), ("health", "พาไปตรวจสุขภาพที่ รพ.สต."),
        ("training", "ฝึกอาชีพทำขนมไทยเพื่อขาย"), ("job", "จัดหางานรับจ้างรายวันในโรงงาน"),
        ("service", "ช่วยยื่นเอกสารขอเบี้ยความพิการ"))
WITH_VALUE = {"cash", "in_kind", "housing"}


# -- what the load knows of the system ------------------------------------------------------------------


@dataclass
class World:
    """What the demo loaded and what the load added: the ids the requests pick from, and the people to come."""

    endpoints: demo.Endpoints
    indicator_set: IndicatorSet
    subdistricts: list[str]
    districts: list[str]
    household_ids: list[str]  # every household, the demo's and the load's
    assessed_ids: list[str]  # households the assessment service knows and has assessed
    resurvey: list[demo.Home]  # demo households, surveyed again in this year's round, in turn
    referrals: list[list[str]]  # by client: the referrals addressed to its partner
    people: demo.People
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    fresh: deque[tuple[float, str, list[demo.Member]]] = field(default_factory=deque)
    houses: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    resurveyed: int = 0
    registered: int = 0
    assessed_new: int = 0
    assessed_again: int = 0
    # False against the bare app (bench.bare), which has no bus to tell the assessment database of the
    # households the load registers: only demo households are surveyed (again).
    assess_registered: bool = True

    def survey_day(self, days_back: int = 0) -> date:
        """Yesterday (or earlier), never in the future in Thailand or in UTC."""
        return datetime.now(UTC).date() - timedelta(days=1 + days_back)


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    done: Callable[[Any], None] | None = None  # given the JSON answer of a success


@dataclass(frozen=True)
class Operation:
    name: str
    weight: int
    expect: int
    build: Callable[[World, int, float], Call]  # (world, client, now)


def _member(m: demo.Member) -> dict[str, Any]:
    return {"citizen_id": m.citizen_id, "title": m.title, "first_name": m.first_name, "last_name": m.last_name,
            "sex": m.sex, "birth_date": m.birth_date.isoformat(), "relation": m.relation, "disability": m.disability}


def get_household(w: World, client: int, now: float) -> Call:
    return Call("GET", f"{w.endpoints.registry}/v1/households/{w.rng.choice(w.household_ids)}")


def list_households(w: World, client: int, now: float) -> Call:
    if w.rng.random() < 1 / 3:
        params: dict[str, Any] = {"district": w.rng.choice(w.districts), "q": w.rng.choice(demo.SURNAMES),
                                  "limit": 50}
    else:
        params = {"subdistrict": w.rng.choice(w.subdistricts), "limit": 50}
    return Call("GET", f"{w.endpoints.registry}/v1/households", params=params)


def list_assessments(w: World, client: int, now: float) -> Call:
    return Call("GET", f"{w.endpoints.assessment}/v1/households/{w.rng.choice(w.assessed_ids)}/assessments")


def partner_referrals(w: World, client: int, now: float) -> Call:
    return Call("GET", f"{w.endpoints.assistance}/v1/referrals", params={"status": "open", "limit": 50})


def get_referral(w: World, client: int, now: float) -> Call:
    return Call("GET", f"{w.endpoints.assistance}/v1/referrals/{w.rng.choice(w.referrals[client])}")


def poverty_report(w: World, client: int, now: float) -> Call:
    return Call("GET", f"{w.endpoints.reporting}/v1/reports/poverty",
                params={"area": demo.PROVINCE, "level": "district", "survey_year": demo.SURVEY_YEAR})


def assistance_report(w: World, client: int, now: float) -> Call:
    return Call("GET", f"{w.endpoints.reporting}/v1/reports/assistance",
                params={"area": demo.PROVINCE, "level": "district", "fiscal_year": demo.FISCAL_YEAR})


def register_household(w: World, client: int, now: float) -> Call:
    rng = w.rng
    members = w.people.household(rng.choice((1, 2, 3, 4, 4, 5)))
    body = {"address": {"subdistrict_code": rng.choice(w.subdistricts), "village_no": rng.randint(1, 20),
                        "house_no": f"{next(w.houses)}/{rng.randint(1, 9)}"},
            "sources": [rng.choice(("tpmap", "tpmap", "vulnerable", "exclusion_error", "other"))],
            "welfare_card": rng.random() < 0.7, "members": [_member(m) for m in members]}

    def done(answer: Any) -> None:
        w.household_ids.append(answer["id"])
        w.registered += 1
        if w.assess_registered:
            w.fresh.append((time.monotonic(), answer["id"], members))

    return Call("POST", f"{w.endpoints.registry}/v1/households", json=body, done=done)


def record_assessment(w: World, client: int, now: float) -> Call:
    if w.fresh and time.monotonic() - w.fresh[0][0] >= ASSESS_AFTER_S:
        _, household_id, members = w.fresh.popleft()
        surveyed_on, new = w.survey_day(), True
    else:  # a demo household, surveyed again; a second time round (a long run) is a new revision
        home = w.resurvey[w.resurveyed % len(w.resurvey)]
        assert home.household_id is not None
        household_id, members, new = home.household_id, home.members, False
        surveyed_on = w.survey_day(w.resurveyed // len(w.resurvey))
        w.resurveyed += 1
    rng, persons = w.rng, [Person(m.birth_date, m.disability) for m in members]
    applicable = [i for i in w.indicator_set.indicators if applies(i, persons, surveyed_on)]
    fails = set(rng.sample([i.code for i in applicable], min(len(applicable), rng.choice((0, 0, 1, 1, 2, 3)))))
    answers: dict[str, bool] = {}
    measurements: dict[str, str] = {}
    for indicator in applicable:
        if indicator.measurement is not None:
            percent = rng.randint(30, 95) if indicator.code in fails else rng.randint(100, 250)
            measurements[indicator.measurement.name] = str(int(indicator.measurement.at_least * percent / 100))
        else:
            answers[indicator.code] = indicator.code not in fails
    body = {"indicator_set": w.indicator_set.id, "survey_year": surveyed_on.year + 543,
            "surveyed_on": surveyed_on.isoformat(), "answers": answers, "measurements": measurements}

    def done(answer: Any) -> None:
        if new:
            w.assessed_ids.append(household_id)
            w.assessed_new += 1
        else:
            w.assessed_again += 1

    return Call("POST", f"{w.endpoints.assessment}/v1/households/{household_id}/assessments", json=body, done=done)


def record_help(w: World, client: int, now: float) -> Call:
    rng = w.rng
    kind, notes = rng.choice(HELP)
    # Help is given on or after the day it was referred (the referrals are made when the load starts: today).
    body: dict[str, Any] = {"kind": kind, "given_on": clock.today().isoformat(), "notes": notes}
    if kind in WITH_VALUE:
        body["value"] = f"{rng.choice((300, 500, 1000, 1500, 3000))}.00"
    return Call("POST", f"{w.endpoints.assistance}/v1/referrals/{rng.choice(w.referrals[client])}/help", json=body,
                headers={"Idempotency-Key": f"help-{rng.getrandbits(64):016x}"})


MIX = (
    Operation("registry GET /v1/households/{id}", 22, 200, get_household),
    Operation("registry GET /v1/households?…", 12, 200, list_households),
    Operation("assessment GET /v1/households/{id}/assessments", 12, 200, list_assessments),
    Operation("assistance GET /v1/referrals?status=open", 8, 200, partner_referrals),
    Operation("assistance GET /v1/referrals/{id}", 10, 200, get_referral),
    Operation("reporting GET /v1/reports/poverty (districts)", 10, 200, poverty_report),
    Operation("reporting GET /v1/reports/assistance (districts)", 6, 200, assistance_report),
    Operation("registry POST /v1/households", 8, 201, register_household),
    Operation("assessment POST /v1/households/{id}/assessments", 6, 201, record_assessment),
    Operation("assistance POST /v1/referrals/{id}/help", 6, 201, record_help),
)


# -- seeding --------------------------------------------------------------------------------------------


def client_id(n: int) -> str:
    return f"load-partner-{n + 1}"


async def seed(system: System, clients: int, scale: int, say: demo.Say) -> World:
    """The demo, then one partner per load client with its referrals: everything the load reads and writes."""
    loader = system.loader(demo.Scenario(seed=2565, scale=scale), say=say)
    endpoints = loader.endpoints
    try:
        homes, _, seconds = await demo.run(loader)
        say(f"demo loaded in {seconds:.0f} s")
        geography, indicator_set = await loader.geography(), await loader.indicator_set()
        targets = [h for h in homes if h.target]
        referrals: list[list[str]] = []
        due = (datetime.now(UTC).date() + timedelta(days=90)).isoformat()
        for n in range(clients):
            sector, name = PARTNERS[n % len(PARTNERS)]
            partner = await loader.call("POST", f"{endpoints.assistance}/v1/partners", json={
                "name": name if n < len(PARTNERS) else f"{name} ({n + 1})", "sector": sector,
                "areas": [demo.PROVINCE], "client_id": client_id(n)})
            chosen = [targets[(n * REFERRALS_PER_PARTNER + k) % len(targets)] for k in range(REFERRALS_PER_PARTNER)]
            made = await asyncio.gather(*(loader.call(
                "POST", f"{endpoints.assistance}/v1/households/{h.household_id}/referrals",
                json={"dimension": d, "action": ACTIONS[d], "partner_id": partner["id"], "due_on": due})
                for h, d in zip(chosen, itertools.cycle(ACTIONS), strict=False)))
            referrals.append([r["id"] for r in made])
        say(f"partners    {clients} registered, {REFERRALS_PER_PARTNER} referrals each")
    finally:
        await loader.close()
    people = demo.People(random.Random(f"{SEED}:people"))
    people.ids = {m.citizen_id for h in homes for m in h.members}  # never one the demo gave out
    ids = [h.household_id for h in homes if h.household_id is not None]
    return World(endpoints, indicator_set, [s.code for s in geography.all_subdistricts()],
                 [d.code for d in geography.districts], list(ids), list(ids), homes, referrals, people)
