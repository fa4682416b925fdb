"""Optimistic concurrency over HTTP: a record's version as a strong ETag, checked against If-Match."""

from __future__ import annotations

from shared.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    """The ETag of a record at `version` (strong, quoted as RFC 9110 requires)."""
    return f'"v{version}"'


def if_match_tags(if_match: str) -> list[str]:
    """The entity tags an If-Match header lists. RFC 9110 quotes them (`"v1"`); a bare `v1` is taken as `"v1"`,
    as clients and hand-written requests often send it. A weak tag (`W/"v1"`) is kept as it is: If-Match
    compares strongly, so it never matches."""
    tags = []
    for tag in (part.strip() for part in if_match.split(",")):
        if not tag:
            continue
        if tag != "*" and not tag.startswith("W/") and not (len(tag) >= 2 and tag[0] == tag[-1] == '"'):
            tag = f'"{tag.strip(chr(34))}"'
        tags.append(tag)
    return tags


def check_if_match(if_match: str | None, version: int, *, required: bool = True) -> None:
    """428 when a required If-Match is missing, 412 when it names no current version ("*" matches any)."""
    if if_match is None or not if_match.strip():
        if required:
            raise PreconditionRequired(
                "Send If-Match with the ETag from your last read (quoted as it came, \"v1\"; a bare v1 is taken "
                "too), so you do not overwrite a change you have not seen."
            )
        return
    tags = if_match_tags(if_match)
    current = etag(version)
    if "*" in tags or current in tags:
        return
    weak = " (a weak tag, W/…, never matches: send the ETag as read)" if any(t.startswith("W/") for t in tags) else ""
    raise PreconditionFailed(
        f"If-Match names {', '.join(tags) or 'no tag'}{weak}, but the record is now at {current}: it changed "
        "since you read it; read it again and retry.",
        current_etag=current,
    )
