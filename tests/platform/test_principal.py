"""The principal a token stands for: its scopes and DOPA area claims, the area filter of a query, and a route's
area check over HTTP."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from shared.auth import Principal, area_clause
from shared.settings import AuthSettings
from tests.kit.auth import assert_problem, bearer, token_for


def test_principal_area_prefixes_cover_children_not_parents() -> None:
    principal = Principal(
        client_id="c", scopes=frozenset({"households:read"}), areas=frozenset({"40", "4001"})
    )
    assert principal.can_see("40")
    assert principal.can_see("4001")
    assert principal.can_see("40010101")
    assert not principal.can_see("41")
    assert not principal.can_see("")
    assert principal.area_prefixes() == ("40",)  # "4001" is already inside "40"

    district = Principal(client_id="c", areas=frozenset({"4001", "410101"}))
    assert not district.can_see("40")  # a district claim does not see the province as a whole
    assert district.can_see("400102")
    assert district.can_see("41010105")
    assert not district.can_see("410102")
    assert district.area_prefixes() == ("4001", "410101")


def test_principal_scopes_and_wildcards() -> None:
    reader = Principal(client_id="c", scopes=frozenset({"households:read"}))
    assert reader.has_scope("households:read")
    assert not reader.has_scope("households:write")
    assert reader.missing_scopes(["households:read", "households:write"]) == ["households:write"]
    assert reader.area_prefixes() == ()
    assert not reader.can_see("40")

    admin = Principal(client_id="a", scopes=frozenset({"*"}), areas=frozenset({"*"}))
    assert admin.has_scope("anything:at-all")
    assert admin.can_see("96")
    assert admin.area_prefixes() is None
    # "*" does not imply the sensitive scopes: they are held only by name.
    assert not any(admin.has_scope(s) for s in ("pii:read", "audit:read", "registry:admin", "reporting:admin"))
    named = Principal(client_id="a", scopes=frozenset({"*", "pii:read"}))
    assert named.has_scope("pii:read") and not named.has_scope("audit:read")


@pytest.mark.parametrize("bad_area", ["", "4", "400", "4001010101", "ab", "40*"])
def test_principal_rejects_malformed_area_claims(bad_area: str) -> None:
    # An empty string would be a prefix of every code: it must never become a claim.
    with pytest.raises(ValueError, match="DOPA"):
        Principal(client_id="c", areas=frozenset({bad_area}))


def test_area_clause_filters_rows_in_sqlite() -> None:
    metadata = MetaData()
    households = Table("households", metadata, Column("id", String, primary_key=True), Column("area", String))
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rows = {"h1": "400101", "h2": "400102", "h3": "400201", "h4": "410101", "h5": "40010105", "h6": "500101"}
    with engine.begin() as conn:
        conn.execute(insert(households), [{"id": k, "area": v} for k, v in rows.items()])

    def visible(areas: set[str]) -> set[str]:
        principal = Principal(client_id="c", areas=frozenset(areas))
        query = select(households.c.id).where(area_clause(principal, households.c.area))
        with engine.connect() as conn:
            return set(conn.scalars(query))

    assert visible({"4001"}) == {"h1", "h2", "h5"}
    assert visible({"4001", "410101"}) == {"h1", "h2", "h4", "h5"}
    assert visible({"40"}) == {"h1", "h2", "h3", "h5"}
    assert visible({"40010105"}) == {"h5"}
    assert visible({"*"}) == set(rows)
    assert visible(set()) == set()
    engine.dispose()


def test_area_clause_refuses_a_plain_string() -> None:
    with pytest.raises(TypeError):
        area_clause(Principal(client_id="c", areas=frozenset({"40"})), "area")


async def test_area_inside_the_claim_by_prefix_is_allowed(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["40"])
    for code in ("4001", "400101", "40010103"):
        response = await client.get(f"/areas/{code}/households", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {"area": code}


async def test_area_outside_the_claim_is_forbidden(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = token_for(settings, scopes=["households:read"], areas=["4001"])
    for code in ("40", "4002", "410101"):
        body = assert_problem(await client.get(f"/areas/{code}/households", headers=bearer(token)), 403)
        assert code in body["detail"]
        assert body["type"].endswith("/forbidden")
