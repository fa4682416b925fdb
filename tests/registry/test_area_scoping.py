"""Area claims on every household endpoint: a household outside the caller's areas is indistinguishable
from one that does not exist (404), and nothing of it leaks through lists, duplicates or lookups."""

from __future__ import annotations

from typing import Any

from tests.kit.apps import problem
from tests.kit.registry import ALL, Registry, household, person


async def test_every_household_endpoint_hides_other_areas(registry: Registry) -> None:
    twin = {"first_name": "บุญมี", "last_name": "มั่งมี", "birth_date": "1960-01-01"}
    cid = registry.cid()
    theirs = (await registry.register(household(person(cid, **twin), person(registry.cid(), relation="child"),
                                                subdistrict="400201"))).json()
    mine = (await registry.register(household(person(registry.cid(), **twin), subdistrict="400101"))).json()
    team = (await registry.client.post("/v1/teams", headers=registry.admin, json={
        "name": "ทีมบ้านฝาง", "district_code": "4002", "subdistrict_codes": ["400201"]})).json()
    mueang = registry.as_(*ALL, areas=("4001",))
    stale = {"If-Match": '"v1"'}
    h, child = theirs["id"], theirs["members"][1]["id"]
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/households/{h}", None),
        ("PATCH", f"/v1/households/{h}", {"welfare_card": False}),
        ("POST", f"/v1/households/{h}/members", person(registry.cid(), relation="child")),
        ("POST", f"/v1/households/{h}/members/{child}:remove", {"reason": "moved_out"}),
        ("POST", f"/v1/households/{h}/members/{child}:transfer", {"to_household_id": mine["id"],
                                                                   "relation": "relative"}),
        ("POST", f"/v1/households/{mine['id']}/members/{mine['members'][0]['id']}:transfer",
         {"to_household_id": h, "relation": "relative"}),
        ("POST", f"/v1/households/{h}:close", {"reason": "x"}),
        ("PUT", f"/v1/households/{h}/assignment", {"team_id": team["id"]}),
        ("POST", "/v1/households:lookup", {"citizen_id": cid}),
        ("GET", f"/v1/teams/{team['id']}", None),
    ]
    for method, url, body in calls:
        response = await registry.client.request(method, url, json=body, headers=mueang | stale)
        assert problem(response, 404)["type"].endswith("/not-found"), (method, url)
    listed = (await registry.client.get("/v1/households", params={"status": "any"}, headers=mueang)).json()
    assert [x["id"] for x in listed["items"]] == [mine["id"]]
    duplicates = (await registry.client.get("/v1/duplicates", headers=mueang)).json()
    assert duplicates["items"] == []  # the twin lives outside the claim: no pair to show
    both = (await registry.client.get("/v1/duplicates", headers=registry.admin)).json()
    assert len(both["items"]) == 1
    # Nothing changed on either household (the failed transfer from mine rolled back whole).
    assert (await registry.client.get(f"/v1/households/{mine['id']}", headers=mueang)).json()["version"] == 1
    after = (await registry.client.get(f"/v1/households/{h}", headers=registry.admin)).json()
    assert after["version"] == 1 and len(after["members"]) == 2 and after["team_id"] is None
