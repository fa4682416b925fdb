"""Partners: the seven sectors, who sees which partner, the refusals (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from shared.ids import encode_cursor, new_id
from tests.assistance.support import HOSPITAL, partner
from tests.kit.apps import problem
from tests.kit.assistance import Assistance

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_partners_of_the_seven_sectors(assistance: Assistance) -> None:
    hospital = await partner(assistance, client_id="kk-hospital")
    assert hospital["name"] == HOSPITAL and hospital["sector"] == "government" and hospital["areas"] == ["40"]
    await partner(assistance, "วัดหนองแวง", sector="religious", areas=["4001"])
    await partner(assistance, "มหาวิทยาลัยขอนแก่น", sector="academic", areas=["400101", "4002"])
    listed = (await assistance.client.get("/v1/partners", params={"area": "40020101"},
                                          headers=assistance.admin)).json()
    assert [p["name"] for p in listed["items"]] == ["มหาวิทยาลัยขอนแก่น", HOSPITAL]
    religious = (await assistance.client.get("/v1/partners", params={"sector": "religious"},
                                             headers=assistance.admin)).json()
    assert [p["name"] for p in religious["items"]] == ["วัดหนองแวง"]
    got = await assistance.client.get(f"/v1/partners/{hospital['id']}", headers=assistance.admin)
    assert got.json() == hospital

    url = "/v1/partners"
    body = {"name": "บริษัท ก", "sector": "private", "areas": ["40"]}
    problem(await assistance.client.post(url, json=body | {"client_id": "kk-hospital"}, headers=assistance.admin), 409)
    problem(await assistance.client.post(url, json=body | {"sector": "foreign"}, headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=body | {"areas": ["99"]}, headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=body | {"areas": []}, headers=assistance.admin), 422)
    problem(await assistance.client.post(url, json=body | {"name": "a\x00b"}, headers=assistance.admin), 422)
    mueang = assistance.as_("assistance:read", "assistance:write", areas=("4001",))
    problem(await assistance.client.post(url, json=body, headers=mueang), 403)
    problem(await assistance.client.get(f"/v1/partners/{new_id()}", headers=assistance.admin), 404)

    # A one-district client sees the partners that serve some of its district, and no other (nor its client id).
    ban_fang = assistance.as_("assistance:read", areas=("4002",))
    seen = (await assistance.client.get(url, headers=ban_fang)).json()
    assert sorted(p["name"] for p in seen["items"]) == sorted(["มหาวิทยาลัยขอนแก่น", HOSPITAL])
    temple = next(p for p in religious["items"] if p["name"] == "วัดหนองแวง")
    problem(await assistance.client.get(f"/v1/partners/{temple['id']}", headers=ban_fang), 404)
    # A cursor made from the id of a partner it cannot see is refused, not placed.
    problem(await assistance.client.get(url, params={"cursor": encode_cursor(temple["id"])}, headers=ban_fang), 400)
    elsewhere = assistance.as_("assistance:read", areas=("41",))
    assert (await assistance.client.get(url, headers=elsewhere)).json() == {"items": [], "next_cursor": None}
    # Paged one at a time, the list comes out whole, in order, once.
    names, cursor = [], None
    while True:
        page = (await assistance.client.get(url, params={"limit": 1} | ({"cursor": cursor} if cursor else {}),
                                            headers=assistance.admin)).json()
        names += [p["name"] for p in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert names == [p["name"] for p in (await assistance.client.get(url, headers=assistance.admin)).json()["items"]]
    assert len(set(names)) == len(names) == 3
