"""The reporting service as tests drive it (the `reporting` fixture's object): the other services' events,
delivered as its consumer would get them, and its reports read."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import geothai
import httpx

from services.reporting.settings import ReportingSettings
from shared.events.assessment import ASSESSMENT_RECORDED, POVERTY_STATUS_CHANGED
from shared.events.assistance import (
    BUDGET_SET,
    CENTRE_REGISTERED,
    CENTRE_SUBSIDY_RECORDED,
    CENTRE_SUBSIDY_REVERSED,
    DISBURSEMENT_RECORDED,
    DISBURSEMENT_REVERSED,
    HELP_RECORDED,
)
from shared.events.registry import HOUSEHOLD_REGISTERED, TEAM_CREATED
from shared.ids import new_id
from tests.kit.apps import bearer, deliver

DETAIL = ("reporting:read", "reporting:detail")


@dataclass
class Reporting:
    client: httpx.AsyncClient
    settings: ReportingSettings
    app: Any
    offset: int = 0
    sent: list[tuple[Any, dict[str, Any], str]] = field(default_factory=list)

    def as_(self, *scopes: str, areas: tuple[str, ...] = ("*",)) -> dict[str, str]:
        return bearer(self.settings.auth, *scopes, areas=areas)

    @property
    def detail(self) -> dict[str, str]:
        return self.as_(*DETAIL)

    async def send(self, event_type: Any, data: dict[str, Any], *, key: str | None = None,
                   event_id: str | None = None) -> str:
        event_id = event_id or new_id()
        self.offset += 1
        await deliver(self.app, event_type, data, event_id=event_id, offset=self.offset, key=key)
        self.sent.append((event_type, data, event_id))
        return event_id

    async def registered(self, village: str, persons: int, *, household_id: str | None = None, version: int = 1,
                         status: str = "open", welfare_card: bool = True) -> str:
        household_id = household_id or new_id()
        await self.send(HOUSEHOLD_REGISTERED, {
            "household_id": household_id, "version": version, "status": status, "province_code": village[:2],
            "district_code": village[:4], "subdistrict_code": village[:6], "village_no": int(village[6:]),
            "village_code": village, "sources": ["tpmap"], "welfare_card": welfare_card, "team_id": None,
            "members": [{"member_id": new_id(), "citizen_id_hash": "0" * 64, "sex": "female",
                         "birth_date": "1970-05-01", "relation": "head" if i == 0 else "child", "disability": False}
                        for i in range(persons)]})
        return household_id

    async def assessed(self, household_id: str, village: str, persons: int, *, score: str = "0",
                       failed: dict[str, str] | None = None, deprived: tuple[str, ...] = (), poor: bool = False,
                       target_poor: bool = False, survey_year: int = 2565, revision: int = 1,
                       surveyed_on: str = "2022-01-15") -> None:
        indicators = {code: {"status": "fail", "weight": weight} for code, weight in (failed or {}).items()}
        await self.send(ASSESSMENT_RECORDED, {
            "assessment_id": new_id(), "household_id": household_id, "survey_year": survey_year,
            "revision": revision, "surveyed_on": surveyed_on, "indicator_set": "tpmap-2560",
            "indicator_set_version": 1, "province_code": village[:2], "district_code": village[:4],
            "subdistrict_code": village[:6], "village_code": village,
            "dimensions": {d: d in deprived for d in ("health", "living", "education", "income", "access")},
            "indicators": indicators, "score": score, "score_value": 0.0, "poor": poor,
            "severity": "poor" if poor else "none", "target_poor": target_poor, "welfare_card": True,
            "member_count": persons})

    async def changed(self, household_id: str, village: str, change: str, *, survey_year: int = 2566,
                      revision: int = 1) -> None:
        before, now = {"exited": (True, False), "entered": (False, True), "unchanged": (True, True),
                       "first_assessment": (None, True)}[change]
        await self.send(POVERTY_STATUS_CHANGED, {
            "household_id": household_id, "assessment_id": new_id(), "survey_year": survey_year,
            "revision": revision, "previous_assessment_id": None, "previous_survey_year": survey_year - 1,
            "change": change, "target_poor_before": before, "target_poor_now": now, "poor_before": before,
            "poor_now": now, "dimensions_entered": [], "dimensions_exited": [], "village_code": village})

    async def paid(self, household_id: str, village: str, amount: str = "3000.00", *,
                   paid_on: str = "2022-01-27", fiscal_year: int = 2565) -> str:
        disbursement_id = new_id()
        await self.send(DISBURSEMENT_RECORDED, {
            "disbursement_id": disbursement_id, "household_id": household_id, "batch_ref": "MSDHS-1",
            "item_ref": disbursement_id[-8:], "programme": "family_grant", "fiscal_year": fiscal_year,
            "paid_on": paid_on, "amount": amount, "budget_id": "b", "budget_area_code": "40",
            "province_code": village[:2], "district_code": village[:4], "subdistrict_code": village[:6],
            "village_code": village})
        return disbursement_id

    async def reversed(self, disbursement_id: str, household_id: str, village: str) -> None:
        await self.send(DISBURSEMENT_REVERSED, {
            "disbursement_id": disbursement_id, "household_id": household_id, "programme": "family_grant",
            "fiscal_year": 2565, "amount": "3000.00", "budget_id": "b", "reason": "x", "village_code": village})

    async def subsidised(self, subdistrict: str, amount: str, *, paid_on: str = "2022-02-10",
                         disbursement_id: str | None = None) -> str:
        centre_id = new_id()
        await self.send(CENTRE_SUBSIDY_RECORDED, {
            "disbursement_id": disbursement_id or new_id(), "centre_id": centre_id,
            "centre_kind": "family_development_centre",
            "batch_ref": "MSDHS-S", "item_ref": centre_id[-8:], "programme": "centre_subsidy", "fiscal_year": 2565,
            "paid_on": paid_on, "amount": amount, "budget_id": "s", "budget_area_code": "40",
            "province_code": subdistrict[:2], "district_code": subdistrict[:4], "subdistrict_code": subdistrict},
            key=centre_id)
        return centre_id

    async def subsidy_reversed(self, disbursement_id: str, centre_id: str, subdistrict: str, amount: str) -> None:
        await self.send(CENTRE_SUBSIDY_REVERSED, {
            "disbursement_id": disbursement_id, "centre_id": centre_id, "programme": "centre_subsidy",
            "fiscal_year": 2565, "amount": amount, "budget_id": "s", "reason": "x", "subdistrict_code": subdistrict},
            key=centre_id)

    async def budget(self, area: str, amount: str, disbursed: str = "0.00", reversed_: str = "0.00",
                     *, budget_id: str | None = None, programme: str = "family_grant") -> str:
        budget_id = budget_id or new_id()
        await self.send(BUDGET_SET, {"budget_id": budget_id, "programme": programme, "fiscal_year": 2565,
                                     "area_code": area, "amount": amount, "disbursed": disbursed,
                                     "reversed": reversed_}, key=budget_id)
        return budget_id

    async def helped(self, household_id: str, village: str, *, given_on: str = "2022-03-01",
                     value: str | None = "1500.00") -> None:
        await self.send(HELP_RECORDED, {
            "help_id": new_id(), "referral_id": new_id(), "household_id": household_id, "village_code": village,
            "dimension": "health", "partner_id": new_id(), "partner_sector": "government", "kind": "health",
            "value": value, "given_on": given_on})

    async def team(self, district: str, subdistricts: list[str], members: int = 3) -> str:
        team_id = new_id()
        await self.send(TEAM_CREATED, {"team_id": team_id, "province_code": district[:2], "district_code": district,
                                       "subdistrict_codes": subdistricts, "member_count": members}, key=team_id)
        return team_id

    async def centre(self, subdistrict: str, kind: str = "tambon_social_assistance_centre") -> str:
        centre_id = new_id()
        await self.send(CENTRE_REGISTERED, {"centre_id": centre_id, "kind": kind, "province_code": subdistrict[:2],
                                            "district_code": subdistrict[:4], "subdistrict_code": subdistrict},
                        key=centre_id)
        return centre_id

    async def report(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
        """A report as the read models are now: the tests send events, then read what they did
        (`Cache-Control: no-cache`; see services.reporting.reports.publication)."""
        response = await self.client.get(f"/v1/reports/{path}", params=params,
                                         headers=(headers or self.detail) | {"Cache-Control": "no-cache"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


# -- synthetic Khon Kaen, for the benchmark and the replica tests --

DIMENSIONS = ("health", "living", "education", "income", "access")
INDICATORS = {"health": ("safe_food", "medicine_use", "exercise"), "living": ("housing", "drinking_water"),
              "education": ("literacy",), "income": ("working_age_income", "income_per_person"),
              "access": ("elderly_care",)}


def synthetic_households(persons: int, seed: int = 2565) -> Iterator[dict[str, Any]]:
    """Households of 1–5 persons (2.85 on average) in Khon Kaen's villages, with a TPMAP-like assessment."""
    rng = random.Random(seed)
    subdistricts = [s.code for d in geothai.districts("40") for s in geothai.subdistricts(d.code)]
    left = persons
    while left > 0:
        size = min(left, rng.choices((1, 2, 3, 4, 5), (15, 25, 30, 20, 10))[0])
        left -= size
        village = f"{rng.choice(subdistricts)}{rng.randint(1, 12):02d}"
        failed: dict[str, str] = {}
        deprived = []
        for dimension, codes in INDICATORS.items():
            misses = [c for c in codes if rng.random() < 0.12]
            if misses:
                deprived.append(dimension)
                for code in misses:
                    failed[code] = f"1/{5 * len(codes)}"
        score = sum((Fraction(w) for w in failed.values()), Fraction(0))
        yield {"id": new_id(), "village": village, "persons": size, "failed": failed, "deprived": deprived,
               "score": score, "poor": score >= Fraction(1, 3),
               "target_poor": bool(deprived)}


def _hash(member_id: str) -> str:
    """A member's citizen-ID hash as events carry it: 64 hex digits, one per person."""
    return hashlib.sha256(member_id.encode()).hexdigest()


def household_events(h: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """A synthetic household's three events: registered, assessed, its poverty status."""
    village = h["village"]
    areas = {"province_code": village[:2], "district_code": village[:4], "subdistrict_code": village[:6],
             "village_code": village}
    return [
        (HOUSEHOLD_REGISTERED, {"household_id": h["id"], "version": 1, "status": "open", "village_no": int(village[6:]),
                                "sources": ["tpmap"], "welfare_card": True, "team_id": None, **areas,
                                "members": [{"member_id": member_id, "citizen_id_hash": _hash(member_id),
                                             "sex": "female", "birth_date": "1970-01-01",
                                             "relation": "head" if i == 0 else "child", "disability": False}
                                            for i, member_id in enumerate(new_id() for _ in range(h["persons"]))]}),
        (ASSESSMENT_RECORDED, {"assessment_id": new_id(), "household_id": h["id"], "survey_year": 2565,
                               "revision": 1, "surveyed_on": "2022-01-15", "indicator_set": "tpmap-2560",
                               "indicator_set_version": 1, **areas,
                               "dimensions": {d: d in h["deprived"] for d in DIMENSIONS},
                               "indicators": {c: {"status": "fail", "weight": w} for c, w in h["failed"].items()},
                               "score": str(h["score"]), "score_value": float(h["score"]), "poor": h["poor"],
                               "severity": "poor" if h["poor"] else "none", "target_poor": h["target_poor"],
                               "welfare_card": True, "member_count": h["persons"]}),
        (POVERTY_STATUS_CHANGED, {"household_id": h["id"], "assessment_id": new_id(), "survey_year": 2565,
                                  "revision": 1, "previous_assessment_id": None, "previous_survey_year": None,
                                  "change": "first_assessment", "target_poor_before": None,
                                  "target_poor_now": h["target_poor"], "poor_before": None, "poor_now": h["poor"],
                                  "dimensions_entered": [], "dimensions_exited": [], "village_code": village}),
    ]
