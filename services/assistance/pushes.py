"""Pushes from the ministry's grant system: Standard Webhooks signatures and Idempotency-Key semantics.

The ministry retries on timeouts, so the same push arrives twice. Following the IETF Idempotency-Key draft:
the first request with a key claims it (its own short transaction) and runs; its response is stored with
its effects, in one transaction. The same key again with the same body gets the stored response (and
`Idempotent-Replayed: true`), with no second effect; with a different body, 422; while the first still
runs, 409 with Retry-After (the seconds until its claim may be taken over). A push that recorded something
answers, first time and replayed, with `Location` and `Link: <…>; rel="status"` (RFC 8631) naming where its
state is read now: the stored answer is the state then, that resource the state now. A claim whose process
died is taken over after `idempotency_lock_s`. A missing key is 400; a missing, stale (over 5 minutes) or
wrong signature is 401, checked first.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance.models import IdempotencyRecord
from services.assistance.settings import AssistanceSettings
from shared import webhooks
from shared.clock import utcnow
from shared.db import as_utc, transaction
from shared.errors import PROBLEM_JSON, BadRequest, Conflict, Problem, Unprocessable

BodyT = TypeVar("BodyT", bound=BaseModel)
MAX_KEY = 255
# The header as an OpenAPI parameter, for the routes that read it with idempotency_key() (a missing key is 400).
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
    "description": "A key of your choosing, the same on every retry of the same request (IETF Idempotency-Key): "
                   "a retry answers what the first request did, with `Idempotent-Replayed: true`, and has no "
                   "second effect; the same key with another body is 422.",
    "example": "9f6c2b1e-4f1a-4c7e-9a53-0d2f8c1b7e44",
}
# The response header of a replayed answer.
REPLAYED_HEADER: dict[str, Any] = {
    "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}


# -- schemas --


class Push:
    """A verified push: who sent it (webhook-id), its Idempotency-Key and its parsed body."""

    def __init__(self, webhook_id: str, key: str, body: Any) -> None:
        self.webhook_id, self.key, self.body = webhook_id, key, body


# -- rules --


async def _claim(maker: Any, scope: str, key: str, digest: str, lock_s: int) -> IdempotencyRecord | None:
    """Claim the key for this request (None), or return the finished record to replay; raises 409/422."""
    for _ in range(2):  # a concurrent first claim makes our insert fail once: then we see its row
        try:
            async with transaction(maker) as session:
                record = await session.get(IdempotencyRecord, (scope, key))
                now = utcnow()
                if record is None:
                    session.add(IdempotencyRecord(scope=scope, key=key, request_sha256=digest, status="processing",
                                                  locked_at=now, created_at=now))
                    return None
                if record.request_sha256 != digest:
                    raise Unprocessable("This Idempotency-Key was used for a different request; use a new key "
                                        "for a new request.", type_slug="idempotency-key-reused")
                if record.status == "done":
                    return record
                expires = as_utc(record.locked_at) + timedelta(seconds=lock_s)
                if expires < now:
                    record.locked_at = now  # the first attempt died: this one takes over
                    return None
                raise _in_use((expires - now).total_seconds())
        except IntegrityError:
            continue
    raise _in_use(lock_s)  # claimed just now by another request


def _in_use(lock_left_s: float) -> Conflict:
    """409 for a key whose first request is still running. Retry-After is the time left until its claim may be
    taken over (at least 1 s): if that request's process died, a retry any earlier is refused again, and a client
    that gives up after a few quick retries never gets its push through."""
    return Conflict("A request with this Idempotency-Key is still being processed; retry after the time in "
                    "Retry-After, when a request that died is taken over.", type_slug="idempotency-key-in-use",
                    headers={"Retry-After": str(max(1, math.ceil(lock_left_s)))})


# -- routes --


def idempotency_key(request: Request) -> str:
    """The request's Idempotency-Key (IETF draft): 400 when missing or longer than MAX_KEY."""
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise BadRequest("An Idempotency-Key header is required: send the same key when you retry.",
                         type_slug="idempotency-key-missing")
    if len(key) > MAX_KEY:
        raise BadRequest(f"Idempotency-Key is longer than {MAX_KEY} characters.", type_slug="idempotency-key-invalid")
    return key


async def handle_push(request: Request, scope: str, model: type[BodyT],
                      run: Callable[[AsyncSession, Push], Awaitable[tuple[int, BaseModel]]], *,
                      settings: AssistanceSettings, location: Callable[[Any], str] | None = None) -> JSONResponse:
    """Verify, claim the key, run `run` once, and answer (or replay) its response; `location` gives, from the
    body, where the state of what a successful push recorded is read now."""
    raw = await request.body()
    webhook_id = webhooks.verify([s.get_secret_value() for s in settings.ministry_webhook_secrets],
                                 request.headers, raw, tolerance_s=settings.webhook_tolerance_s)
    key = idempotency_key(request)
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:  # reported as FastAPI reports a body it parsed itself (the handler caps it)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    digest = hashlib.sha256(raw).hexdigest()
    maker = request.app.state.sessionmaker
    where = location(body) if location is not None else None
    replay = await _claim(maker, scope, key, digest, settings.idempotency_lock_s)
    if replay is not None:
        return _answer(replay.response_status or 200, replay.response_body or {}, replayed=True, location=where)
    try:
        async with transaction(maker) as session:
            try:
                status, response = await run(session, Push(webhook_id, key, body))
                content: dict[str, Any] = response.model_dump(mode="json")
            except Problem as problem:  # a refusal is the answer to this key too
                if problem.status >= 500:
                    raise
                status, content = problem.status, problem.body(str(request.url.path))
            record = await session.get(IdempotencyRecord, (scope, key))
            assert record is not None
            record.status, record.response_status, record.response_body = "done", status, content
    except BaseException:
        async with transaction(maker) as session:  # release the key: a retry may run it again
            record = await session.get(IdempotencyRecord, (scope, key))
            if record is not None and record.status == "processing":
                await session.delete(record)
        raise
    return _answer(status, content, location=where)


def _answer(status: int, content: dict[str, Any], *, replayed: bool = False, location: str | None = None
            ) -> JSONResponse:
    """The response to a push, first time or replayed (a stored refusal stays problem+json, with no link)."""
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if location is not None and status < 300:
        headers |= {"Location": location, "Link": f'<{location}>; rel="status"'}
    return JSONResponse(content, status_code=status, media_type=PROBLEM_JSON if status >= 400 else None,
                        headers=headers or None)


_STATUS_HEADERS = {
    "Location": {"description": "the recorded batch, as it is now", "schema": {"type": "string"}},
    "Link": {"description": '`<the same>; rel="status"` (RFC 8631): where the state of what was pushed is read now',
             "schema": {"type": "string"}},
}


def push_route(body: type[BaseModel], response: type[BaseModel], summary: str) -> dict[str, Any]:
    """The route options of a pushed endpoint: its request schema (the route reads the raw body itself, to
    check the signature over its exact bytes), its response and its refusals."""
    return {
        "status_code": 201, "response_model": response, "summary": summary,
        "description": "Headers: `Idempotency-Key` (required; the same key on every retry of the same push) and "
                       "`webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard Webhooks, the ministry's "
                       "secret).",
        "openapi_extra": {"parameters": [IDEMPOTENCY_KEY_PARAMETER, *webhooks.SIGNATURE_PARAMETERS],
                          "requestBody": {"required": True, "content": {"application/json": {
                              "schema": _inlined(body.model_json_schema())}}}},
        "responses": {201: {"description": "Recorded: every item's outcome and the totals (replayed as first given)",
                            "headers": {**_STATUS_HEADERS, "Idempotent-Replayed": REPLAYED_HEADER}},
                      400: {"description": "No Idempotency-Key"}, 401: {"description": "Bad or stale signature"},
                      409: {"description": "The same key is still being processed, or the batch_ref exists"},
                      422: {"description": "Invalid body, or the same key with a different body"}},
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its nested models written in place (its `$defs` mean nothing inside an
    OpenAPI document, whose `#` is the document's root)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
