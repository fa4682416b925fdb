"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com): how the ministry signs its pushes.

The sender signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under a shared secret
(`whsec_` + base64 of the key) and sends `webhook-signature: v1,<base64>`, several space-separated when it
signs with more than one secret (a rotation). The receiver accepts the request if any signature matches
one of its secrets and the timestamp is within the tolerance (5 minutes) of its clock, either way.

The same signatures go out on the services' own webhooks (event subscriptions): `shared.webhooks.models`
(tables), `.fanout` (deliveries from the service's own events), `.sender` (signed POSTs, retries), `.targets`
(SSRF guard), `.routes` (`/v1/subscriptions`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import Unauthorized

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 5 * 60

# The three headers as OpenAPI header parameters: of the pushes a service receives (the routes read them from the
# request themselves, so that a missing one is 401, not a validation error) and of the webhooks it sends.
SIGNATURE_PARAMETERS: list[dict[str, Any]] = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string", "minLength": 1},
     "description": "The message's id: the same on every retry of the same message (the receiver drops "
                    "duplicates by it). Of an event delivered to a subscription, the CloudEvent's `id`.",
     "example": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": f"When this attempt was signed, in Unix seconds; more than {TOLERANCE_S // 60} minutes from "
                    "the receiver's clock is refused.",
     "example": "1735689600"},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string", "minLength": 1},
     "description": "`v1,<base64 of HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">` under the shared "
                    "secret (`whsec_` + base64 of the key); several, space-separated, while a secret is rotated.",
     "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
]


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None


def new_secret() -> str:
    """A new signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of a message."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), content, hashlib.sha256).digest()).decode()


def signed_headers(secrets: Sequence[str], webhook_id: str, body: bytes, timestamp: int | None = None,
                   ) -> dict[str, str]:
    """The three headers a sender adds (one signature per secret)."""
    at = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": webhook_id, "webhook-timestamp": str(at),
            "webhook-signature": " ".join(sign(s, webhook_id, at, body) for s in secrets)}


class SignatureError(Unauthorized):
    type_slug = "invalid-signature"


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, now: float | None = None,
           tolerance_s: int = TOLERANCE_S) -> str:
    """Check a request's signature against our secrets; returns its webhook-id, raises SignatureError (401)."""
    webhook_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    offered = headers.get("webhook-signature", "")
    if not (webhook_id and stamp and offered):
        raise SignatureError("Sign the request as Standard Webhooks do: headers webhook-id, webhook-timestamp "
                             "and webhook-signature are required.")
    if not stamp.isdigit():
        raise SignatureError("webhook-timestamp must be Unix seconds.")
    clock = time.time() if now is None else now
    if abs(clock - int(stamp)) > tolerance_s:
        raise SignatureError(f"webhook-timestamp is more than {tolerance_s // 60} minutes from our clock; "
                             "sign the request again.")
    expected = {sign(secret, webhook_id, int(stamp), body) for secret in secrets}
    for signature in offered.split():
        if any(hmac.compare_digest(signature, e) for e in expected):
            return webhook_id
    raise SignatureError("No webhook-signature matches: the body was changed, or it was signed with another "
                         "secret.")
