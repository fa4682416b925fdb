"""Tables of the assessment service: its own metadata, with the outbox and inbox of the event bus."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from shared.bus import Outbox, inbox_table, outbox_table
from shared.db import new_metadata

metadata = new_metadata()


class Base(SQLModel, registry=registry(metadata=metadata)):
    """SQLModel base of the assessment service's tables: they go into its own metadata."""


outbox = Outbox("assessment", outbox_table(metadata))
inbox = inbox_table(metadata)
