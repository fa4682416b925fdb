"""Rotating the citizen-ID encryption key and the blind-index (hash) key while the services run, as SECURITY.md
tells operators to: every step keeps every lookup, duplicate check and payment match working (SQLite and
PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ops.scratchdb import ScratchDatabases
from services import load
from services.registry.rekey import rekey
from shared import migrations
from shared.events.registry import HOUSEHOLD_REGISTERED, HOUSEHOLD_UPDATED
from shared.ids import new_id
from shared.pii import CitizenIdProtector, PiiSettings
from shared.settings import REPO_ROOT
from tests.kit.apps import deliver, make_settings, problem, running
from tests.kit.assistance import Assistance, item
from tests.kit.env import NO_BROKER
from tests.kit.registry import ALL, Registry, citizen_id, household, person

BOTH = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


def key(name: str) -> str:
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


K1, K2, H1, H2 = key("enc-1"), key("enc-2"), key("hash-1"), key("hash-2")
# The three configurations of a rotation: before, while both keys are known, after the old ones are dropped.
BEFORE = {"encryption_keys": {"k1": K1}, "active_key_id": "k1", "hash_key": H1}
DURING = {"encryption_keys": {"k1": K1, "k2": K2}, "active_key_id": "k2", "hash_key": H2, "previous_hash_keys": [H1]}
AFTER = {"encryption_keys": {"k2": K2}, "active_key_id": "k2", "hash_key": H2}


def protector(pii: dict[str, Any]) -> CitizenIdProtector:
    return CitizenIdProtector(PiiSettings.model_validate(pii))


@asynccontextmanager
async def registry_with(url: str, pii: dict[str, Any]) -> AsyncIterator[Registry]:
    """The registry on `url` configured with these PII keys (a restart with a new configuration)."""
    settings = make_settings("registry", url, NO_BROKER, run_bus=False, pii=pii)
    app = load("registry").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        yield Registry(client, settings.auth, app, random.Random(7))


@BOTH
async def test_the_registry_rotates_both_keys_without_downtime(databases: ScratchDatabases) -> None:
    url = await databases.new("registry")
    async with registry_with(url, BEFORE) as registry:
        ids = [registry.cid() for _ in range(5)]
        homes = [(await registry.register(household(person(ids[0]), person(ids[1], "spouse")))).json(),
                 (await registry.register(household(person(ids[2]), village_no=4))).json(),
                 (await registry.register(household(person(ids[3]), village_no=5))).json()]
        removed = await registry.client.post(
            f"/v1/households/{homes[0]['id']}/members/{homes[0]['members'][1]['id']}:remove",
            json={"reason": "deceased"}, headers=registry.admin | {"If-Match": '"v1"'})
        assert removed.status_code == 200, removed.text

    async with registry_with(url, DURING) as registry:
        # Before the rekey: the old hashes are still found, so nobody can be registered twice.
        finder = registry.as_("registry:lookup")
        found = await registry.client.post("/v1/households:lookup", json={"citizen_id": ids[2]}, headers=finder)
        assert found.status_code == 200 and found.json()["id"] == homes[1]["id"], found.text
        twice = problem(await registry.register(household(person(ids[3]), village_no=9)), 409)
        assert twice["household_id"] == homes[2]["id"]
        new = (await registry.register(household(person(ids[4]), village_no=6))).json()  # current keys
        seen = len(await registry.events())

        check = await rekey(registry.app.state.sessionmaker, registry.app.state.protector, write=False)
        assert (check.members, check.reencrypted, check.rehashed, check.households_published) == (5, 4, 4, 0)
        done = await rekey(registry.app.state.sessionmaker, registry.app.state.protector, batch=2)
        assert (done.members, done.reencrypted, done.rehashed, done.households_published) == (5, 4, 4, 3)
        again = await rekey(registry.app.state.sessionmaker, registry.app.state.protector)
        assert again.stale == 0 and again.households_published == 0  # running it again changes nothing

        published = (await registry.events())[seen:]
        current = protector(AFTER)
        assert [(t, k) for t, k, _ in published] == [("household.updated", h["id"]) for h in homes]
        for _, household_id, data in published:
            assert data["changed"] == ["members.citizen_id_hash"] and data["version"] >= 2
            home = (await registry.client.get(f"/v1/households/{household_id}", headers=registry.admin)).json()
            assert home["version"] == data["version"]
        assert [m["citizen_id_hash"] for m in published[0][2]["members"]] == [current.hash(ids[0])]  # not removed
        assert new["id"] not in {k for _, k, _ in published}

    async with registry_with(url, AFTER) as registry:  # the old keys are gone
        finder = registry.as_("registry:lookup")
        for cid, home in ((ids[0], homes[0]), (ids[2], homes[1]), (ids[3], homes[2]), (ids[4], new)):
            found = await registry.client.post("/v1/households:lookup", json={"citizen_id": cid},
                                               headers=finder)
            assert found.status_code == 200 and found.json()["id"] == home["id"], found.text
        pii = registry.as_(*ALL, "pii:read")
        shown = (await registry.client.get(f"/v1/households/{homes[0]['id']}", headers=pii)).json()
        assert shown["members"][0]["citizen_id"] == ids[0]  # decrypted with the new key
        problem(await registry.register(household(person(ids[2]), village_no=9)), 409)


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_the_rekey_command(databases: ScratchDatabases, tmp_path: Path) -> None:
    """`kaenkhun rekey --check` exits 1 while a member is under an older key; `kaenkhun rekey` fixes it."""
    url = await databases.new("registry")
    async with registry_with(url, BEFORE) as registry:
        assert (await registry.register()).status_code == 201
    env = dict(os.environ, KAENKHUN_REGISTRY_DATABASE_URL=url, KAENKHUN_DATA_DIR=str(tmp_path),
               KAENKHUN_PII_ENCRYPTION_KEYS=json.dumps(DURING["encryption_keys"]), KAENKHUN_PII_ACTIVE_KEY_ID="k2",
               KAENKHUN_PII_HASH_KEY=H2, KAENKHUN_PII_PREVIOUS_HASH_KEYS=json.dumps([H1]))

    def kaenkhun(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", "rekey", *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    stale = kaenkhun("--check")
    assert stale.returncode == 1 and "1 under an older encryption key, 1 hashed with an older" in stale.stdout, stale
    done = kaenkhun()
    assert done.returncode == 0 and "re-encrypted 1, re-hashed 1; 1 households published" in done.stdout, done
    assert kaenkhun("--check").returncode == 0


@BOTH
async def test_payments_match_under_either_hash_key_during_a_rotation(databases: ScratchDatabases) -> None:
    settings = make_settings("assistance", await databases.new("assistance"), NO_BROKER,
                             run_bus=False, pii=DURING)
    app = load("assistance").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        assistance = Assistance(client, settings, app, random.Random(9))
        assert (await assistance.budget("30000.00")).status_code == 200
        old, new = protector(BEFORE), protector(AFTER)
        not_yet, rekeyed = new_id(), new_id()
        citizen = {not_yet: citizen_id(assistance.rng), rekeyed: citizen_id(assistance.rng)}
        for household_id, hash_ in ((not_yet, old.hash(citizen[not_yet])), (rekeyed, old.hash(citizen[rekeyed]))):
            await deliver(app, HOUSEHOLD_REGISTERED, snapshot(household_id, hash_, version=1))
            await assistance.assess(household_id, True)
        # The registry's rekey reached assistance for one household only: its event carries the new hash.
        await deliver(app, HOUSEHOLD_UPDATED, snapshot(rekeyed, new.hash(citizen[rekeyed]), version=2)
                      | {"changed": ["members.citizen_id_hash"]})
        pushed = await assistance.push(assistance.batch([item("1", cid=citizen[not_yet]),
                                                         item("2", cid=citizen[rekeyed])]))
        assert pushed.status_code == 201, pushed.text
        assert [(i["household_id"], i["status"]) for i in pushed.json()["items"]] == [
            (not_yet, "accepted"), (rekeyed, "accepted")]


def snapshot(household_id: str, citizen_id_hash: str, *, version: int) -> dict[str, Any]:
    return {"household_id": household_id, "version": version, "status": "open", "province_code": "40",
            "district_code": "4001", "subdistrict_code": "400101", "village_no": 3, "village_code": "40010103",
            "sources": ["tpmap"], "welfare_card": True, "team_id": None,
            "members": [{"member_id": household_id[::-1][:36], "citizen_id_hash": citizen_id_hash, "sex": "female",
                         "birth_date": "1970-05-01", "relation": "head", "disability": False}]}

