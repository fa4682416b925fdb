"""Identifiers: UUID version 7 (RFC 9562), time-ordered so new rows land at the end of an index."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A new UUIDv7 string: 48-bit Unix milliseconds, version, variant, 74 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
