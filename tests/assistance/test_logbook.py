"""The field logbook: visits recorded against the projection, Thai text exact, area scoping, the event
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.ids import new_id
from tests.kit.apps import problem
from tests.kit.assistance import Assistance

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

ROOF = "หลังคารั่ว ฝนตกน้ำเข้าบ้าน"


def visit(**fields: object) -> dict[str, object]:
    return {"visited_on": "2022-02-03", "buddy_official": "นางสาวมาลี ใจงาม", "stage": "survive",
            "notes": "ครอบครัวมีรายได้ไม่แน่นอน",
            "problems": [{"dimension": "living", "indicator_code": "housing", "description": ROOF},
                         {"dimension": "income", "description": "ไม่มีงานประจำ"}]} | fields


async def test_visits_are_recorded_listed_and_published(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    elsewhere, _ = await assistance.household(village="40020101")
    created = await assistance.client.post(f"/v1/households/{household_id}/visits", json=visit(),
                                           headers=assistance.admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/v1/households/{household_id}/visits/{body['id']}"
    assert body["problems"][0]["description"] == ROOF and body["village_code"] == "40010103"
    later = await assistance.client.post(f"/v1/households/{household_id}/visits",
                                         json=visit(visited_on="2022-06-01", stage="sufficient", problems=[]),
                                         headers=assistance.admin)
    assert later.status_code == 201
    await assistance.client.post(f"/v1/households/{elsewhere}/visits", json=visit(), headers=assistance.admin)

    listed = (await assistance.client.get(f"/v1/households/{household_id}/visits", headers=assistance.admin)).json()
    assert [(v["visited_on"], v["stage"]) for v in listed["items"]] == [("2022-06-01", "sufficient"),
                                                                         ("2022-02-03", "survive")]
    mueang = assistance.as_("assistance:read", "assistance:write", areas=("4001",))
    in_area = (await assistance.client.get("/v1/visits", headers=mueang)).json()
    assert {v["household_id"] for v in in_area["items"]} == {household_id}
    assert len((await assistance.client.get("/v1/visits", params={"since": "2022-03-01"},
                                            headers=assistance.admin)).json()["items"]) == 1
    problem(await assistance.client.post(f"/v1/households/{elsewhere}/visits", json=visit(), headers=mueang), 404)
    problem(await assistance.client.get(f"/v1/households/{elsewhere}/visits", headers=mueang), 404)

    published = [d for t, k, d in await assistance.events() if t == "visit.recorded" and k == household_id]
    assert [p["stage"] for p in published] == ["survive", "sufficient"]
    assert published[0]["problems"] == [{"dimension": "living", "indicator_code": "housing"},
                                        {"dimension": "income", "indicator_code": None}]
    assert ROOF not in str(published)  # descriptions stay in the service


async def test_bad_visits_are_refused(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    url = f"/v1/households/{household_id}/visits"
    problem(await assistance.client.post(url, json=visit(visited_on="2999-01-01"), headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=visit(stage="rich"), headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=visit(problems=[{"dimension": "luck", "description": "x"}]),
                                         headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=visit(notes="ok", buddy_official="a\x00b"),
                                         headers=assistance.admin), 422)
    problem(await assistance.client.post(f"/v1/households/{new_id()}/visits", json=visit(),
                                         headers=assistance.admin), 404)
    problem(await assistance.client.post(url, json=visit(), headers=assistance.as_("assistance:read")), 403)
