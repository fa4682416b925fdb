"""The area routes over HTTP: a province's districts, a sub-district's villages from the register, search by
Thai or English name."""

from __future__ import annotations

from tests.kit.apps import problem
from tests.kit.registry import Registry, household, person


async def test_areas(registry: Registry) -> None:
    reader = registry.as_("registry:read")
    kk = (await registry.client.get("/v1/areas/40", headers=reader)).json()
    assert (kk["name_th"], kk["name_en"], kk["level"]) == ("ขอนแก่น", "Khon Kaen", "province")
    assert len(kk["children"]) == 26 and kk["children"][0]["code"] == "4001"
    mueang = (await registry.client.get("/v1/areas/4001", headers=reader)).json()
    assert mueang["name_th"] == "เมืองขอนแก่น" and all(c["code"].startswith("4001") for c in mueang["children"])
    await registry.register(household(person(registry.cid()), village_no=7))
    tambon = (await registry.client.get("/v1/areas/400101", headers=reader)).json()
    assert [c["code"] for c in tambon["children"]] == ["40010107"]
    found = (await registry.client.get("/v1/areas", params={"q": "ขอนแก่น"}, headers=reader)).json()
    assert found["items"][0]["code"] == "40"
    english = (await registry.client.get("/v1/areas", params={"q": "Khon Kaen", "limit": 1}, headers=reader)).json()
    assert english["items"][0]["code"] == "40" and english["next_cursor"]
    after = (await registry.client.get("/v1/areas", params={"q": "Khon Kaen", "limit": 1, "cursor": english[
        "next_cursor"]}, headers=reader)).json()
    assert after["items"] and after["items"][0]["code"] != "40"  # the page after the first match
    problem(await registry.client.get("/v1/areas/99", headers=reader), 404)
    problem(await registry.client.get("/v1/areas/4x", headers=reader), 422)
    problem(await registry.register(household(person(registry.cid()), subdistrict="409999")), 422)
