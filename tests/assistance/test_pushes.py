"""The ministry's pushes: the Idempotency-Key semantics and the Standard Webhooks signatures, through the
family grants' endpoint (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta

import pytest

from services.assistance.models import IdempotencyRecord
from shared.clock import utcnow
from shared.db import transaction
from tests.kit.apps import problem
from tests.kit.assistance import Assistance, item

pytestmark = pytest.mark.parametrize("databases", ["sqlite", "postgres"], indirect=True)


async def test_the_idempotency_key_matrix(assistance: Assistance) -> None:
    await assistance.budget("30000.00")
    household_id, _ = await assistance.household()
    body = assistance.batch([item("1", household_id=household_id)])
    problem(await assistance.push(body, key=None), 400)
    first = await assistance.push(body, key="same")
    assert first.status_code == 201
    changed = dict(body, paid_on="2022-01-28")
    assert problem(await assistance.push(changed, key="same"), 422)["type"].endswith("idempotency-key-reused")
    another_key = await assistance.push(body, key="another")  # same batch_ref under a new key
    assert problem(another_key, 409)["type"].endswith("batch-exists")
    assert problem(await assistance.push(body, key="another"), 409) == problem(another_key, 409)  # replayed

    # A first request still running: 409 with Retry-After, the seconds until its claim may be taken over (if its
    # process died, a retry any earlier is refused again). One whose process died long ago is taken over.
    in_flight = assistance.batch([item("1", household_id=household_id)])
    raw = json.dumps(in_flight, ensure_ascii=False).encode()
    lock_s = assistance.settings.idempotency_lock_s
    assert lock_s == 60
    async with transaction(assistance.app.state.sessionmaker) as session:
        for key, age in (("running", timedelta(0)), ("running-45s", timedelta(seconds=45)),
                         ("died", timedelta(hours=1))):
            session.add(IdempotencyRecord(scope="disbursement-batch", key=key, status="processing",
                                          request_sha256=hashlib.sha256(raw).hexdigest(), locked_at=utcnow() - age,
                                          created_at=utcnow()))
    busy = await assistance.push(raw, key="running")
    assert problem(busy, 409)["type"].endswith("idempotency-key-in-use")
    assert 30 <= int(busy.headers["retry-after"]) <= 60  # the claim was made just now: (most of) the minute left
    later = await assistance.push(raw, key="running-45s")
    assert problem(later, 409)["type"].endswith("idempotency-key-in-use")
    assert 1 <= int(later.headers["retry-after"]) <= 15  # 15 s left, less the time this test took
    taken_over = await assistance.push(raw, key="died")
    assert taken_over.status_code == 201 and taken_over.json()["items"][0]["reason"] == "yearly_cap_reached"


async def test_signatures(assistance: Assistance) -> None:
    await assistance.budget("30000.00")
    household_id, _ = await assistance.household()
    body = assistance.batch([item("1", household_id=household_id)])
    assert problem(await assistance.push(body, tamper=True), 401)["type"].endswith("invalid-signature")
    wrong = "whsec_" + "d3Jvbmcgc2VjcmV0IG9mIHNvbWVvbmUgZWxzZQ=="
    problem(await assistance.push(body, secrets=[wrong]), 401)
    problem(await assistance.push(body, timestamp=int(time.time()) - 6 * 60), 401)
    problem(await assistance.client.post("/v1/disbursement-batches", json=body,
                                         headers={"Idempotency-Key": "x"}), 401)
    # During a rotation the ministry signs with the new secret and the old one: either matching is enough.
    current = assistance.settings.ministry_webhook_secrets[0].get_secret_value()
    ok = await assistance.push(body, secrets=[wrong, current], key="rotated")
    assert ok.status_code == 201, ok.text
