"""Hostile text in every field: what may be stored is kept exactly (Thai combining marks, emoji, right-to-left
text, SQL metacharacters), what may not (NUL, lone surrogates) is refused with the field named, and nothing
answers 500 — on SQLite and on PostgreSQL, which cannot store NUL at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services import SERVICES, load
from shared.errors import Unprocessable
from shared.guards import UNSTORABLE_MESSAGE, check_json_text
from shared.ids import new_id
from tests.hostile.openapi import MAP, json_bodies, nodes
from tests.kit.apps import make_settings, problem
from tests.kit.assistance import Assistance
from tests.kit.registry import Registry, household, person

BOTH = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)

# Each at most 40 characters (the shortest free-text field, a house number) and meant to come back unchanged.
CORPUS = {
    "stacked Thai marks": "ก่้๊๋ ผู้ใหญ่บ้าน น้ำ",           # tone marks piled on one consonant
    "decomposed sara am": "น\u0e4d\u0e32 กิ\u0e4d",          # NIKHAHIT + SARA AA, not U+0E33
    "emoji and joiners": "👨\u200d👩\u200d👧 บ้าน 🏠",
    "right to left": "שלום \u202egnp.exe\u202c مرحبا",     # Hebrew, an RLO override, Arabic
    "zero width": "สม\u200bชาย\ufeffดี",
    "SQL metacharacters": "O'Brien\"; DROP TABLE member;--",
    "LIKE wildcards": "100% _x_ \\ [a]",
    "markup": "<script>alert(1)</script>",
    "formula": "=HYPERLINK(\"http://x\")",
}
NUL, SURROGATE = "a\x00b", "a\ud800b"


# -- refused everywhere ------------------------------------------------------------------------------------


def _nest(path: tuple[str, ...], value: str) -> Any:
    """The smallest JSON body with `value` at `path`."""
    if not path:
        return value
    inner = _nest(path[1:], value)
    return [inner] if path[0] == "0" else {path[0]: inner}


def _url(template: str) -> str:
    """A path template filled in: a fresh id for each id, a year for anything else."""
    url = template
    for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
        url = url.replace(f"{{{name}}}", new_id() if "id" in name else "2565")
    return url


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for template, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), _url(template), operation


@pytest.fixture(scope="module", params=list(SERVICES))
def openapi(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A service app (its guards answer before any route or database is reached) and its OpenAPI document."""
    folder = tmp_path_factory.mktemp(request.param)
    settings = make_settings(request.param, f"sqlite+aiosqlite:///{folder / 'db'}", "127.0.0.1:1", run_bus=False,
                             data_dir=folder)
    app = load(request.param).create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    yield httpx.AsyncClient(transport=transport, base_url="http://test"), app.openapi()


async def test_nul_and_lone_surrogates_are_refused_in_every_json_field(
        openapi: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    """Every string of every JSON request body of the service, with NUL and with a lone surrogate: 422 naming
    the field (whatever the field's own type, an id as much as a name)."""
    client, doc = openapi
    tried = 0
    for method, template, media, schema in json_bodies(doc):
        for path, node in nodes(doc, schema):
            if node.get("type") != "string" or MAP in path:  # a map's keys are checked by their pattern
                continue
            for value in (NUL, SURROGATE):
                raw = json.dumps(_nest(path, value)).encode()  # \u0000 and \ud800 escapes
                body = problem(await client.request(method, _url(template), content=raw,
                                                    headers={"Content-Type": media}), 422)
                field = ".".join(("body", *path))
                assert body["errors"] == [{"field": field, "message": UNSTORABLE_MESSAGE,
                                           "code": "unstorable_text"}], (method, template, body)
                tried += 1
    assert tried >= 2  # every service takes at least the bus replay's topic


async def test_nul_is_refused_in_every_path_and_query_parameter(
        openapi: tuple[httpx.AsyncClient, dict[str, Any]]) -> None:
    client, doc = openapi
    for method, url, operation in _operations(doc):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                name = parameter["name"]
                hostile = url.replace(quote(new_id()), "%00", 1) if "id" in name else url
                hostile = hostile if hostile != url else url + "%00"
                response = await client.request(method, hostile)
            elif parameter["in"] == "query":
                response = await client.request(method, f"{url}?{parameter['name']}=a%00b")
            else:
                continue
            assert "NUL" in problem(response, 400)["detail"], (method, url, parameter["name"])
    # The token endpoint's form: no client is called that, in OAuth's own error format (RFC 6749 §5.2).
    token = await client.post("/oauth/token", content=b"grant_type=client_credentials&client_id=a%00b&client_secret=x",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert token.status_code == 401 and token.json()["error"] == "invalid_client", token.text


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    """`"\\\\u0000"` in JSON is the six characters \\u0000, which may be stored; `"\\u0000"` is NUL."""
    check_json_text(b'{"topic": "\\\\u0000", "note": "\\u0e01\\ud83c\\udfe0"}')  # and a surrogate *pair*
    with pytest.raises(Unprocessable):
        check_json_text(b'{"topic": "\\\\\\u0000"}')  # an escaped backslash, then NUL


# -- kept exactly --------------------------------------------------------------------------------------------


@BOTH
async def test_registry_keeps_hostile_text_exactly(registry: Registry) -> None:
    for n, value in enumerate(CORPUS.values()):
        body = household(person(registry.cid(), title=value, first_name=value, last_name=value), village_no=n + 1)
        body["address"]["house_no"] = value
        created = await registry.register(body)
        assert created.status_code == 201, created.text
        fetched = (await registry.client.get(created.headers["location"], headers=registry.admin)).json()
        member = fetched["members"][0]
        assert (member["title"], member["first_name"], member["last_name"], fetched["address"]["house_no"]) == (
            value, value, value, value)
        found = (await registry.client.get("/v1/households", params={"q": value}, headers=registry.admin)).json()
        assert [h["id"] for h in found["items"]] == [fetched["id"]], value  # wildcards match only themselves
        closed = await registry.client.post(f"/v1/households/{fetched['id']}:close", json={"reason": value},
                                            headers=registry.admin | {"If-Match": created.headers["etag"]})
        assert closed.status_code == 200 and closed.json()["closed_reason"] == value, closed.text

    team = {"name": "", "district_code": "4001", "subdistrict_codes": ["400101"],
            "members": [{"name": v, "position": v, "agency": v} for v in CORPUS.values()]}
    for value in CORPUS.values():
        created = await registry.client.post("/v1/teams", json=team | {"name": value}, headers=registry.admin)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == value
        assert [m["name"] for m in created.json()["members"]] == list(CORPUS.values())


@BOTH
async def test_assistance_keeps_hostile_text_exactly(assistance: Assistance) -> None:
    household_id, _ = await assistance.household()
    admin = assistance.admin
    for value in CORPUS.values():
        partner = await assistance.client.post("/v1/partners", json={
            "name": value, "sector": "people", "areas": ["40"]}, headers=admin)
        assert partner.status_code == 201 and partner.json()["name"] == value, partner.text
        centre = await assistance.client.post("/v1/centres", json={
            "kind": "family_development_centre", "name": value, "subdistrict_code": "400101",
            "local_government": value}, headers=admin)
        assert centre.status_code == 201, centre.text
        assert (centre.json()["name"], centre.json()["local_government"]) == (value, value)
        visit = await assistance.client.post(f"/v1/households/{household_id}/visits", json={
            "visited_on": "2022-02-03", "buddy_official": value, "notes": f"{value}\n{value}", "stage": "survive",
            "problems": [{"dimension": "living", "description": value}]}, headers=admin)
        assert visit.status_code == 201, visit.text
        kept = visit.json()
        assert (kept["buddy_official"], kept["notes"], kept["problems"][0]["description"]) == (
            value, f"{value}\n{value}", value)
        referral = await assistance.client.post(f"/v1/households/{household_id}/referrals", json={
            "dimension": "living", "action": value, "partner_id": partner.json()["id"], "due_on": "2099-01-01"},
            headers=admin)
        assert referral.status_code == 201 and referral.json()["action"] == value, referral.text
        moved = await assistance.client.patch(f"/v1/referrals/{referral.json()['id']}", json={
            "status": "in_progress", "note": value}, headers=admin)
        assert moved.status_code == 200, moved.text
        shown = (await assistance.client.get(f"/v1/referrals/{referral.json()['id']}", headers=admin)).json()
        assert shown["changes"][-1]["note"] == value, shown
