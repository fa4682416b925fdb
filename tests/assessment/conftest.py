"""The assessment fixture: the app on a fresh database (SQLite and PostgreSQL), migrated, sets loaded, bus off."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from tests.apps import make_settings, running
from tests.assessment.support import Assessment


@pytest.fixture
async def assessment(databases: ScratchDatabases, broker: LocalBroker) -> AsyncIterator[Assessment]:
    settings = make_settings("assessment", await databases.new("assessment"), broker.bootstrap_servers,
                             run_bus=False)
    app = load("assessment").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        for _ in range(100):
            if app.state.sets.loaded:
                break
            await asyncio.sleep(0.05)
        yield Assessment(client, settings.auth, app, random.Random(2565))
