"""The assessment service as tests drive it (the `assessment` fixture's object): households announced as the
registry would, answer and measurement bodies."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from services.assessment.models import outbox
from shared.events.catalogue import EventType
from shared.events.registry import HOUSEHOLD_REGISTERED
from shared.ids import new_id
from shared.settings import AuthSettings
from tests.kit.apps import bearer, deliver, outbox_events

ALL = ("assessment:read", "assessment:write")
SURVEYED = "2022-01-15"  # B.E. 2565


def member(birth: str, *, disability: bool = False, relation: str = "head") -> dict[str, Any]:
    return {"member_id": new_id(), "citizen_id_hash": "0" * 64, "sex": "female", "birth_date": birth,
            "relation": relation, "disability": disability}


def facts(household_id: str, *members: dict[str, Any], version: int = 1, welfare_card: bool = True,
          village: str = "40010103", status: str = "open") -> dict[str, Any]:
    return {"household_id": household_id, "version": version, "status": status, "province_code": village[:2],
            "district_code": village[:4], "subdistrict_code": village[:6], "village_no": int(village[6:]),
            "village_code": village, "sources": ["tpmap"], "welfare_card": welfare_card, "team_id": None,
            "members": list(members)}


ADULT = "1980-03-01"  # 41 on the survey date: literacy, working-age income, exercise apply


def all_meet(**overrides: bool) -> dict[str, bool]:
    """Answers for a household of one working-age adult: every applicable indicator met."""
    answers = {"safe_food": True, "medicine_use": True, "exercise": True, "housing": True, "clean_home": True,
               "literacy": True, "working_age_income": True}
    return answers | overrides


MEASURED_OK = {"drinking_water_lpd": "6", "use_water_lpd": "50", "income_per_person_year": "40000"}


@dataclass
class Assessment:
    client: httpx.AsyncClient
    auth: AuthSettings
    app: Any
    rng: random.Random

    def as_(self, *scopes: str, areas: tuple[str, ...] = ("*",), client_id: str = "test-client") -> dict[str, str]:
        return bearer(self.auth, *scopes, areas=areas, client_id=client_id)

    @property
    def admin(self) -> dict[str, str]:
        return self.as_(*ALL)

    async def announce(self, data: dict[str, Any], event_type: EventType = HOUSEHOLD_REGISTERED,
                       event_id: str | None = None, offset: int = 0) -> int:
        """Deliver one registry event through the service's real consumer path (inbox included)."""
        return await deliver(self.app, event_type, data, event_id=event_id, offset=offset)

    async def household(self, *members: dict[str, Any], **kwargs: Any) -> str:
        household_id = new_id()
        await self.announce(facts(household_id, *(members or (member(ADULT),)), **kwargs))
        return household_id

    async def assess(self, household_id: str, answers: dict[str, bool] | None = None,
                     measurements: dict[str, str] | None = None, *, survey_year: int = 2565,
                     surveyed_on: str = SURVEYED, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"indicator_set": "tpmap-2560", "survey_year": survey_year, "surveyed_on": surveyed_on,
                "answers": all_meet() if answers is None else answers,
                "measurements": MEASURED_OK if measurements is None else measurements}
        return await self.client.post(f"/v1/households/{household_id}/assessments", json=body,
                                      headers=headers or self.admin)

    async def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(type, key, data) of every outbox row, in order."""
        return await outbox_events(self.app, outbox)

