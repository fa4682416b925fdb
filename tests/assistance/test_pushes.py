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

    # A first request still running: 409 with Retry-After. One whose process died long ago is taken over.
    in_flight = assistance.batch([item("1", household_id=household_id)])
    raw = json.dumps(in_flight, ensure_ascii=False).encode()
    async with transaction(assistance.app.state.sessionmaker) as session:
        session.add(IdempotencyRecord(scope="disbursement-batch", key="running", status="processing",
                                      request_sha256=hashlib.sha256(raw).hexdigest(), locked_at=utcnow(),
                                      created_at=utcnow()))
        session.add(IdempotencyRecord(scope="disbursement-batch", key="died", status="processing",
                                      request_sha256=hashlib.sha256(raw).hexdigest(),
                                      locked_at=utcnow() - timedelta(hours=1), created_at=utcnow()))
    busy = await assistance.push(raw, key="running")
    assert problem(busy, 409)["type"].endswith("idempotency-key-in-use") and busy.headers["retry-after"] == "2"
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
