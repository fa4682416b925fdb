"""The four Kaenkhun services; each module has `create_app(settings)` and its settings class."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

SERVICES = ("registry", "assessment", "assistance", "reporting")


def load(name: str) -> ModuleType:
    """The app module of a service by name."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{name}.app")


def settings_class(name: str) -> type[ServiceSettings]:
    """The settings class of a service by name."""
    cls: type[ServiceSettings] = getattr(importlib.import_module(f"services.{name}.settings"),
                                         f"{name.capitalize()}Settings")
    return cls
