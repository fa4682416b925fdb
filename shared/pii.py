"""Thai citizen IDs as personal data: validation, encryption at rest, a keyed hash for lookup, masking.

The keyed hash (HMAC-SHA256) is the blind index the registry searches by, and the pseudonym the
registry publishes on the bus so that assistance can match the ministry's payments to households
without ever seeing a raw ID. Keys come from settings; the development defaults are public and
refused in production (`PiiSettings.uses_development_material`).
"""

from __future__ import annotations

import base64
import hashlib
import operator
from typing import Annotated

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Depends, Request
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.ids import random_bytes

# Public development keys (base64 of 32 bytes): fine on a laptop, refused with KAENKHUN_ENV=production.
DEV_ENCRYPTION_KEY = base64.b64encode(hashlib.sha256(b"kaenkhun development citizen-id key").digest()).decode()
DEV_HASH_KEY = base64.b64encode(hashlib.sha256(b"kaenkhun development citizen-id hash key").digest()).decode()

_AAD = b"kaenkhun:citizen_id"
_WEIGHTS = range(13, 1, -1)


class InvalidCitizenId(ValueError):
    """Not a Thai citizen ID; the message says why (length, characters or check digit)."""


def check_digit(first_twelve: str) -> str:
    """The 13th digit of a Thai citizen ID: (11 − Σ d_k·(14−k) mod 11) mod 10 over its first twelve digits."""
    return str((11 - sum(map(operator.mul, map(int, first_twelve), _WEIGHTS)) % 11) % 10)


def validate_citizen_id(value: str) -> str:
    """The 13 digits of a Thai citizen ID (dashes and spaces allowed in input), or InvalidCitizenId."""
    digits = value.replace("-", "").replace(" ", "")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidCitizenId("a citizen ID has only digits (dashes and spaces are ignored)")
    if len(digits) != 13:
        raise InvalidCitizenId(f"a citizen ID has 13 digits, not {len(digits)}")
    if check_digit(digits[:12]) != digits[12]:
        raise InvalidCitizenId("the check digit does not match: mistyped citizen ID")
    return digits


def mask_citizen_id(digits: str, shown: int = 4) -> str:
    """`x-xxxx-xxxx0-12-3`: only the last `shown` digits (at most four). The first ones say where and when the
    person was registered (the province's registration office), so they are never shown masked."""
    shown = max(0, min(shown, 4))
    return format_citizen_id("x" * (13 - shown) + (digits[13 - shown:] if shown else ""))


def format_citizen_id(digits: str) -> str:
    """`1-2345-67890-12-3`, the way the ID card prints it."""
    return f"{digits[0]}-{digits[1:5]}-{digits[5:10]}-{digits[10:12]}-{digits[12]}"


class InvalidPhone(ValueError):
    """Not a Thai telephone number; the message says why."""


def validate_thai_phone(value: str) -> str:
    """A Thai telephone number as its national digits (`0812345678`, `021234567`), or InvalidPhone. Accepted:
    a mobile number (10 digits, 06/08/09…), a fixed line (9 digits, 02–05/07…), with spaces, dashes, dots or
    brackets, in the national form (0…) or the international one (+66…, 66…, 0066…)."""
    digits = "".join(ch for ch in value if ch not in " -.()")
    if digits.startswith("+"):
        digits = digits[1:]
        if not digits.startswith("66"):
            raise InvalidPhone("only Thai numbers: an international number starts +66")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidPhone("a telephone number has only digits (spaces, dashes, dots and brackets are ignored)")
    for country in ("0066", "66"):
        if digits.startswith(country) and len(digits) - len(country) in (8, 9):
            rest = digits[len(country):]
            digits = rest if rest.startswith("0") else "0" + rest  # +66 81 234 5678, or +66 081 234 5678
            break
    if len(digits) < 2 or not digits.startswith("0"):
        raise InvalidPhone("a Thai number starts with 0 (or +66)")
    if digits[1] in "689":
        if len(digits) != 10:
            raise InvalidPhone(f"a mobile number (0{digits[1]}…) has 10 digits, not {len(digits)}")
    elif digits[1] in "23457":
        if len(digits) != 9:
            raise InvalidPhone(f"a fixed-line number (0{digits[1]}…) has 9 digits, not {len(digits)}")
    else:
        raise InvalidPhone(f"no Thai number starts 0{digits[1]}")
    return digits


def format_phone(digits: str) -> str:
    """`081-234-5678` (mobile) or `02-123-4567` (fixed line), the way Thai numbers are written."""
    head = 3 if len(digits) == 10 else 2
    return f"{digits[:head]}-{digits[head:head + 3]}-{digits[head + 3:]}"


def mask_phone(digits: str, shown: int = 4) -> str:
    """`xxx-xxx-5678`: only the last `shown` digits (at most four), as citizen IDs are masked."""
    shown = max(0, min(shown, 4))
    return format_phone("x" * (len(digits) - shown) + (digits[len(digits) - shown:] if shown else ""))


def _key_bytes(value: str, name: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ValueError(f"{name} must be base64") from exc
    if len(key) != 32:
        raise ValueError(f"{name} must be 32 bytes (base64 of 32 random bytes), got {len(key)}")
    return key


class PiiSettings(BaseSettings):
    """Keys protecting citizen IDs (env prefix KAENKHUN_PII_).

    `encryption_keys` maps a key id to a base64 AES-256 key; new values are encrypted with
    `active_key_id`, old ones stay readable with theirs, so keys rotate without downtime.
    `hash_key` keys the citizen-ID hash shared by registry and assistance; during a rotation the keys it
    replaces stay in `previous_hash_keys`, and lookups try them too until `kaenkhun rekey` has re-hashed
    every member (SECURITY.md, "Rotating keys without downtime").
    """

    model_config = SettingsConfigDict(env_prefix="KAENKHUN_PII_", extra="ignore")

    encryption_keys: dict[str, SecretStr] = Field(default_factory=lambda: {"dev": SecretStr(DEV_ENCRYPTION_KEY)})
    active_key_id: str = "dev"
    hash_key: SecretStr = SecretStr(DEV_HASH_KEY)
    previous_hash_keys: list[SecretStr] = Field(default_factory=list)
    # How many of the last digits a masked citizen ID shows (0–4).
    mask_shown_digits: int = Field(default=4, ge=0, le=4)

    @field_validator("encryption_keys")
    @classmethod
    def _check_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in keys.items():
            if not key_id.isalnum():
                raise ValueError(f"key id {key_id!r} must be letters and digits")
            _key_bytes(key.get_secret_value(), f"KAENKHUN_PII_ENCRYPTION_KEYS[{key_id}]")
        return keys

    @model_validator(mode="after")
    def _check_active(self) -> PiiSettings:
        if self.active_key_id not in self.encryption_keys:
            raise ValueError(f"KAENKHUN_PII_ACTIVE_KEY_ID {self.active_key_id!r} is not a key id of "
                             "KAENKHUN_PII_ENCRYPTION_KEYS")
        _key_bytes(self.hash_key.get_secret_value(), "KAENKHUN_PII_HASH_KEY")
        for n, key in enumerate(self.previous_hash_keys):
            _key_bytes(key.get_secret_value(), f"KAENKHUN_PII_PREVIOUS_HASH_KEYS[{n}]")
        return self

    def uses_development_material(self) -> list[str]:
        problems = [
            f"KAENKHUN_PII_ENCRYPTION_KEYS[{key_id}] (development key)"
            for key_id, key in self.encryption_keys.items()
            if key.get_secret_value() == DEV_ENCRYPTION_KEY
        ]
        if self.hash_key.get_secret_value() == DEV_HASH_KEY:
            problems.append("KAENKHUN_PII_HASH_KEY (development key)")
        if any(key.get_secret_value() == DEV_HASH_KEY for key in self.previous_hash_keys):
            problems.append("KAENKHUN_PII_PREVIOUS_HASH_KEYS (development key)")
        return problems


class _Hmac:
    """HMAC-SHA256 under one key (RFC 2104), its padded key already hashed: each ID then costs two SHA-256
    copies and updates, a third of `hmac.new` per call (a bulk import hashes every person)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def hexdigest(self, digits: str) -> str:
        inner = self._inner.copy()
        inner.update(digits.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_SHA256_BLOCK = 64
_IPAD, _OPAD = bytes(b ^ 0x36 for b in range(256)), bytes(b ^ 0x5C for b in range(256))


class CitizenIdProtector:
    """Encrypts, decrypts and hashes citizen IDs with the configured keys."""

    def __init__(self, settings: PiiSettings) -> None:
        self._ciphers = {
            key_id: AESGCM(_key_bytes(key.get_secret_value(), key_id))
            for key_id, key in settings.encryption_keys.items()
        }
        self._active = settings.active_key_id
        self.mask_shown_digits = settings.mask_shown_digits
        self._hashers = [_Hmac(_key_bytes(key.get_secret_value(), "hash_key"))
                         for key in (settings.hash_key, *settings.previous_hash_keys)]

    def hash(self, digits: str) -> str:
        """The keyed hash of a validated ID under the current key: the blind index and the pseudonym on the
        bus (64 hex). What is stored or published."""
        return self._hashers[0].hexdigest(digits)

    def hashes(self, digits: str) -> tuple[str, ...]:
        """The hash under the current key, then under each previous one: what a lookup must try while a
        rotation is under way (a member not re-hashed yet, an event published before it)."""
        return tuple(hasher.hexdigest(digits) for hasher in self._hashers)

    def encrypt(self, digits: str) -> str:
        """`<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>` with AES-256-GCM and a fresh 96-bit nonce."""
        nonce = random_bytes(12)
        sealed = self._ciphers[self._active].encrypt(nonce, digits.encode(), _AAD)
        return f"{self._active}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str) -> str:
        key_id, _, body = stored.partition(":")
        raw = base64.urlsafe_b64decode(body)
        return self._ciphers[key_id].decrypt(raw[:12], raw[12:], _AAD).decode()

    def needs_rotation(self, stored: str) -> bool:
        """True if `stored` was encrypted with a key other than the active one."""
        return not stored.startswith(self._active + ":")


async def citizen_id_protector(request: Request) -> CitizenIdProtector:
    """FastAPI dependency: the protector the app was built with (`app.state.protector`)."""
    protector: CitizenIdProtector = request.app.state.protector
    return protector


ProtectorDep = Annotated[CitizenIdProtector, Depends(citizen_id_protector)]
