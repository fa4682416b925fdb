"""Tables of the reporting service: its own metadata, with the outbox and inbox of the event bus."""

from shared.bus import Outbox, inbox_table, outbox_table
from shared.db import model_base, new_metadata

metadata = new_metadata()
Base = model_base(metadata)
outbox = Outbox("reporting", outbox_table(metadata))
inbox = inbox_table(metadata)
