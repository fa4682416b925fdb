"""Citizen-ID protection: validation, AES-GCM at rest with rotating keys, the keyed hash, production refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from pydantic import SecretStr, ValidationError
from stdnum.th import pin

from services.registry.settings import RegistrySettings
from shared.pii import CitizenIdProtector, InvalidCitizenId, PiiSettings, mask_citizen_id, validate_citizen_id
from shared.settings import Environment


def key() -> SecretStr:
    return SecretStr(base64.b64encode(os.urandom(32)).decode())


def test_check_digit_agrees_with_python_stdnum() -> None:
    for n in range(2_000):
        body = f"{1 + n % 8}{n * 7919 % 10**11:011d}"
        for last in "0123456789":
            assert _valid(body + last) == pin.is_valid(body + last)


def _valid(value: str) -> bool:
    try:
        validate_citizen_id(value)
    except InvalidCitizenId:
        return False
    return True


def test_encryption_is_randomised_and_keys_rotate_without_losing_data() -> None:
    old = PiiSettings(encryption_keys={"k1": key()}, active_key_id="k1", hash_key=key())
    before = CitizenIdProtector(old)
    stored = before.encrypt("1101700203450")
    assert stored != before.encrypt("1101700203450")  # fresh nonce each time
    assert stored.startswith("k1:") and "1101700203450" not in stored
    rotated = PiiSettings(encryption_keys={"k1": old.encryption_keys["k1"], "k2": key()}, active_key_id="k2",
                          hash_key=old.hash_key)
    after = CitizenIdProtector(rotated)
    assert after.decrypt(stored) == "1101700203450"
    assert after.needs_rotation(stored) and not after.needs_rotation(after.encrypt("1101700203450"))
    assert after.hash("1101700203450") == before.hash("1101700203450")  # same hash key, same blind index
    assert mask_citizen_id("1101700203450") == "x-xxxx-xxxx3-45-0"  # the first digits say where: never shown
    assert mask_citizen_id("1101700203450", 1) == "x-xxxx-xxxxx-xx-0"
    assert mask_citizen_id("1101700203450", 0) == "x-xxxx-xxxxx-xx-x"
    assert mask_citizen_id("1101700203450", 9) == "x-xxxx-xxxx3-45-0"  # never more than four


def test_the_hash_is_hmac_sha256_of_the_digits_under_each_key() -> None:
    current, previous = key(), key()
    protector = CitizenIdProtector(PiiSettings(hash_key=current, previous_hash_keys=[previous]))
    for digits in ("1101700203450", "3100600123458", ""):
        expected = tuple(hmac.new(base64.b64decode(k.get_secret_value()), digits.encode(), hashlib.sha256).hexdigest()
                         for k in (current, previous))
        assert protector.hashes(digits) == expected
        assert protector.hash(digits) == expected[0]


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        PiiSettings(encryption_keys={"k1": SecretStr(base64.b64encode(b"short").decode())}, active_key_id="k1")
    with pytest.raises(ValidationError, match="not a key id"):
        PiiSettings(encryption_keys={"k1": key()}, active_key_id="k9")


def test_production_refuses_the_development_pii_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = RegistrySettings(env=Environment.production, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db")
    with pytest.raises(RuntimeError, match="KAENKHUN_PII_HASH_KEY"):
        settings.check_production()
