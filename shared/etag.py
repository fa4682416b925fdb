"""Optimistic concurrency over HTTP: a record's version as a strong ETag, checked against If-Match."""

from __future__ import annotations

from shared.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    """The ETag of a record at `version` (strong, quoted as RFC 9110 requires)."""
    return f'"v{version}"'


def check_if_match(if_match: str | None, version: int, *, required: bool = True) -> None:
    """428 when a required If-Match is missing, 412 when it names no current version ("*" matches any)."""
    if if_match is None or not if_match.strip():
        if required:
            raise PreconditionRequired(
                "Send If-Match with the ETag from your last read, so you do not overwrite a change you have "
                "not seen."
            )
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags or etag(version) in tags:
        return
    raise PreconditionFailed(
        f"The record changed since you read it (it is now at {etag(version)}): read it again and retry.",
        current_etag=etag(version),
    )
