"""Identifiers: UUID version 7 (RFC 9562), time-ordered so new rows land at the end of an index."""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
import uuid

from shared.errors import BadRequest

# os.urandom releases the interpreter lock for its system call; while another thread runs Python (an import's
# preparing thread beside the event loop that writes its chunks), getting the lock back waits up to the switch
# interval (5 ms): 100 us a call measured against 1 us from a buffer. So random bytes come from a buffer of
# os.urandom's, one per thread, refilled 4 KiB at a time and forgotten in a forked child (which must never
# reuse its parent's bytes: they make ids and AES-GCM nonces).
_POOL_BYTES = 4096


class _Pool(threading.local):
    data = b""
    at = 0


_pool = _Pool()


def _forget_in_child() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_in_child)


def random_bytes(n: int) -> bytes:
    """n bytes from the operating system's CSPRNG (os.urandom's), each handed out once."""
    pool = _pool
    at = pool.at
    if at + n > len(pool.data):
        pool.data, at = os.urandom(max(_POOL_BYTES, n)), 0
    pool.at = at + n
    return pool.data[at:at + n]


def new_uuid4() -> str:
    """A random UUID (version 4) string: event, correlation and token ids."""
    return str(uuid.UUID(bytes=random_bytes(16), version=4))


def new_id() -> str:
    """A new UUIDv7 string: 48-bit Unix milliseconds, version, variant, 74 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(random_bytes(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# What new_id() gives, as a pattern for path and body fields (lower-case hex, hyphenated).
ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_ID = re.compile(ID_PATTERN)


_ROW_KEY = re.compile(r"\d{1,19}")  # a row's integer key (e.g. the audit log's)


def encode_cursor(last_id: str | int | None) -> str | None:
    """The opaque `cursor` for the page after the row `last_id` (None: there is no next page)."""
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=") if last_id is not None else None


def decode_cursor(cursor: str | None) -> str | None:
    """The row id (a UUID, or an integer key as a string) a cursor from encode_cursor stands for; 400 (bad-cursor)
    for anything else."""
    if cursor is None:
        return None
    try:
        standard = (cursor + "=" * (-len(cursor) % 4)).replace("-", "+").replace("_", "/")
        last_id = base64.b64decode(standard, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        last_id = ""
    if not (_ID.fullmatch(last_id) or _ROW_KEY.fullmatch(last_id)):
        raise BadRequest("The cursor is not one this API gave out.", type_slug="bad-cursor")
    return last_id
