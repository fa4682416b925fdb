"""The four Kaenkhun services, in one explicit table: each has its `ServiceSpec` (routes, tables, events,
migrations), its settings class and its app factory, in `services/<name>/app.py` and `settings.py`.

Each entry imports its service only when asked, so a process serving one service does not load the other three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shared.app import ServiceSpec
    from shared.settings import ServiceSettings


@dataclass(frozen=True)
class Service:
    spec: ServiceSpec
    settings: type[ServiceSettings]
    create_app: Callable[[Any], FastAPI]  # create_app(settings of this service's class, or None: from the env)


def _registry() -> Service:
    from services.registry.app import SPEC, create_app
    from services.registry.settings import RegistrySettings
    return Service(SPEC, RegistrySettings, create_app)


def _assessment() -> Service:
    from services.assessment.app import SPEC, create_app
    from services.assessment.settings import AssessmentSettings
    return Service(SPEC, AssessmentSettings, create_app)


def _assistance() -> Service:
    from services.assistance.app import SPEC, create_app
    from services.assistance.settings import AssistanceSettings
    return Service(SPEC, AssistanceSettings, create_app)


def _reporting() -> Service:
    from services.reporting.app import SPEC, create_app
    from services.reporting.settings import ReportingSettings
    return Service(SPEC, ReportingSettings, create_app)


_TABLE: dict[str, Callable[[], Service]] = {
    "registry": _registry,
    "assessment": _assessment,
    "assistance": _assistance,
    "reporting": _reporting,
}
SERVICES = tuple(_TABLE)  # in the order events flow: registry first, reporting last


def load(name: str) -> Service:
    """A service by name."""
    if name not in _TABLE:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
    return _TABLE[name]()
