"""Tables of the reporting service: its own metadata, with the outbox and inbox of the event bus."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from shared.bus import Outbox, inbox_table, outbox_table
from shared.db import new_metadata

metadata = new_metadata()


class Base(SQLModel, registry=registry(metadata=metadata)):
    """SQLModel base of the reporting service's tables: they go into its own metadata."""


outbox = Outbox("reporting", outbox_table(metadata))
inbox = inbox_table(metadata)
