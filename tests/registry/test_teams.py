"""Field teams over HTTP: creating one (its event carries no names), listing them by area, assigning a household
to one."""

from __future__ import annotations

from shared.ids import encode_cursor
from tests.kit.apps import problem
from tests.kit.registry import Registry, household, person


async def test_teams_and_assignment(registry: Registry) -> None:
    team = await registry.client.post("/v1/teams", headers=registry.admin, json={
        "name": "ทีมปฏิบัติการตำบลในเมือง", "district_code": "4001", "subdistrict_codes": ["400101", "400102"],
        "members": [{"name": "นางมาลี ใจงาม", "position": "พัฒนากร", "agency": "พช.อำเภอเมืองขอนแก่น"}]})
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    assert (await registry.events())[-1] == ("team.created", team_id, {
        "team_id": team_id, "province_code": "40", "district_code": "4001",
        "subdistrict_codes": ["400101", "400102"], "member_count": 1})  # no names leave the registry
    problem(await registry.client.post("/v1/teams", headers=registry.admin, json={
        "name": "x", "district_code": "4001", "subdistrict_codes": ["400201"]}), 422)
    home = (await registry.register()).json()
    elsewhere = (await registry.register(household(person(registry.cid()), subdistrict="400201"))).json()
    url = f"/v1/households/{home['id']}/assignment"
    assigned = await registry.client.put(url, json={"team_id": team_id, "buddy_official": "นายสมชาย ดีมาก"},
                                         headers=registry.admin)
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["team_id"], assigned.json()["buddy_official"]) == (team_id, "นายสมชาย ดีมาก")
    problem(await registry.client.put(f"/v1/households/{elsewhere['id']}/assignment", json={"team_id": team_id},
                                      headers=registry.admin), 422)
    listed = (await registry.client.get("/v1/households", params={"team": team_id}, headers=registry.admin)).json()
    assert [h["id"] for h in listed["items"]] == [home["id"]]
    teams = (await registry.client.get("/v1/teams", params={"district": "4001"},
                                       headers=registry.as_("registry:read", areas=("40",)))).json()
    assert [t["id"] for t in teams["items"]] == [team_id] and teams["next_cursor"] is None
    assert (await registry.client.get("/v1/teams", headers=registry.as_("registry:read", areas=("41",)))).json() == {
        "items": [], "next_cursor": None}
    assert (await registry.events())[-1][0] == "household.assigned"


async def test_a_cursor_made_from_a_team_of_another_area_is_refused(registry: Registry) -> None:
    """A cursor names the last row of a page; one made up from the id of a row outside the caller's areas is 400,
    as any cursor the API did not give, and tells nothing about where that row would sort."""
    made = {}
    for district, name in (("4001", "ทีมเมือง"), ("4002", "ทีมบ้านฝาง")):
        response = await registry.client.post("/v1/teams", headers=registry.admin, json={
            "name": name, "district_code": district, "subdistrict_codes": [f"{district}01"], "members": []})
        made[district] = response.json()["id"]
    ban_fang = registry.as_("registry:read", areas=("4002",))
    own = (await registry.client.get("/v1/teams", params={"cursor": encode_cursor(made["4002"])},
                                     headers=ban_fang)).json()
    assert own == {"items": [], "next_cursor": None}  # its own team's id is a cursor it could have been given
    problem(await registry.client.get("/v1/teams", params={"cursor": encode_cursor(made["4001"])},
                                      headers=ban_fang), 400)
