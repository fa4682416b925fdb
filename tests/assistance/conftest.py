"""The assistance fixture: the app on a fresh database (SQLite and PostgreSQL), migrated, bus off."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from tests.apps import make_settings, running
from tests.assistance.support import Assistance


@pytest.fixture
async def assistance(databases: ScratchDatabases, broker: LocalBroker) -> AsyncIterator[Assistance]:
    settings = make_settings("assistance", await databases.new("assistance"), broker.bootstrap_servers,
                             run_bus=False)
    app = load("assistance").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        yield Assistance(client, settings, app, random.Random(2565))
