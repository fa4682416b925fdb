"""The personal-data audit log over HTTP: an auditor sees only the entries of its own areas."""

from __future__ import annotations

from tests.kit.registry import Registry, household, person


async def test_the_audit_log_shows_an_auditor_only_its_own_areas(registry: Registry) -> None:
    mueang = (await registry.register(household(person(registry.cid()), subdistrict="400101"))).json()
    ban_fang = (await registry.register(household(person(registry.cid()), subdistrict="400201"))).json()
    for found in (mueang, ban_fang):
        await registry.client.get(f"/v1/households/{found['id']}",
                                  headers=registry.as_("registry:read", "pii:read", client_id="officer"))
    await registry.client.post("/v1/households:lookup", json={"citizen_id": registry.cid()},
                               headers=registry.as_("registry:lookup", client_id="officer"))  # finds nothing
    officer = {"client_id": "officer"}
    one_district = (await registry.client.get("/v1/audit", params=officer,
                                              headers=registry.as_("audit:read", areas=("4001",)))).json()
    assert [e["household_id"] for e in one_district["items"]] == [mueang["id"]]
    everywhere = (await registry.client.get("/v1/audit", params=officer, headers=registry.as_("audit:read"))).json()
    assert [e["household_id"] for e in everywhere["items"]] == [None, ban_fang["id"], mueang["id"]]
