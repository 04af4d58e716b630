"""Every use case refuses the same way: a `Refused` subclass with a stable code (issue 13)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import bot.services
from bot.services.refusal import Refused


def test_every_refusal_in_the_services_is_a_refused_with_a_code():
    refusals = {}
    for module_info in pkgutil.iter_modules(bot.services.__path__):
        module = importlib.import_module(f"bot.services.{module_info.name}")
        for name, value in vars(module).items():
            if inspect.isclass(value) and name.endswith("Refused") and value.__module__ == module.__name__:
                refusals[f"{module.__name__}.{name}"] = value
    assert len(refusals) >= 9, refusals
    assert not [name for name, cls in refusals.items() if not issubclass(cls, Refused)]
    error = Refused("overlap", "course 2 overlaps course 1")
    assert (error.code, str(error)) == ("overlap", "course 2 overlaps course 1")
