"""Where a webhook may go (SSRF guard): checked when a subscription is made and again before every send.

Unless private targets are allowed (development), the URL must be https and every address its host resolves to
must be a public unicast one: loopback, link-local (169.254.0.0/16: cloud metadata), private, shared (CGNAT),
multicast, reserved and unspecified addresses are refused. Checking again before each send catches a name
that later resolves elsewhere (DNS rebinding) between checks; a name that changes within the instant between
the check and the connection is not caught (the connection is not pinned to the checked address).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class TargetRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


def _refused_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for flag in ("is_loopback", "is_link_local", "is_multicast", "is_reserved", "is_unspecified", "is_private"):
        if getattr(address, flag):
            return flag.removeprefix("is_").replace("_", "-")
    if not address.is_global:
        return "not-global"
    return None


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise TargetRefused unless `url` may receive webhooks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("The URL must be an absolute http(s) URL.")
    if parts.username or parts.password:
        raise TargetRefused("The URL must not carry credentials.")
    if allow_private:
        return
    if parts.scheme != "https":
        raise TargetRefused("The URL must be https.")
    host = parts.hostname
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TargetRefused(f"The host {host!r} does not resolve ({exc.strerror or exc}).") from None
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    for address in sorted(addresses, key=str):
        reason = _refused_reason(address)
        if reason is not None:
            raise TargetRefused(f"The host {host!r} resolves to {address}, a {reason} address: webhooks go to "
                                "public addresses only.")
