"""The registry fixture: the app on a fresh database (SQLite and PostgreSQL), migrated, bus off."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from ops.broker import LocalBroker
from ops.scratchdb import ScratchDatabases
from services import load
from shared import migrations
from tests.apps import make_settings, running
from tests.registry.support import Registry


@pytest.fixture
async def registry(databases: ScratchDatabases, broker: LocalBroker) -> AsyncIterator[Registry]:
    settings = make_settings("registry", await databases.new("registry"), broker.bootstrap_servers, run_bus=False)
    app = load("registry").create_app(settings)
    async with running(app) as client:
        await migrations.upgrade(app.state.engine, app.state.spec.migrations_dir)
        yield Registry(client, settings.auth, app, random.Random(40))
