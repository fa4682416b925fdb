"""The reporting fixture: the app on a fresh database (SQLite and PostgreSQL), migrated, bus off; events are
delivered through its real consumer path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from tests.apps import make_settings, running
from tests.reporting.support import Reporting


@pytest.fixture
async def reporting(databases: ScratchDatabases, broker: LocalBroker) -> AsyncIterator[Reporting]:
    settings = make_settings("reporting", await databases.new("reporting"), broker.bootstrap_servers,
                             run_bus=False)
    app = load("reporting").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        yield Reporting(client, settings, app)
