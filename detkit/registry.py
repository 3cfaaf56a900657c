"""A small name → factory registry (timm style).

Factories stay ordinary, importable callables (configs point at them with ``_target_``, so an
editor can follow them); the registry only adds a name for listing, building by name, and the
tests that cover every registered entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, factory: F) -> F:
        """Decorator: register ``factory`` under its ``__name__``."""
        name = factory.__name__
        if name in self._factories:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._factories[name] = factory
        return factory

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._factories:
            close = difflib.get_close_matches(name, self._factories, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.list())}")
        return self._factories[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def list(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
