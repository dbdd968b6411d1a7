"""One small registry shape for hwnas's extension points.

A :class:`Registry` maps a name to a factory (usually a class). It refuses a
duplicate name, answers an unknown name with one line that lists what is known,
and can also look names up in a Python entry-point group, so a third-party
package adds an extension without touching hwnas::

    ESTIMATORS = Registry("accuracy estimator", entry_point_group="hwnas.estimators")

    @ESTIMATORS.register("params")
    class ParamCount(AccuracyEstimator): ...

    ESTIMATORS.get("params")        # the class
    ESTIMATORS.names()              # ["params", ...]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from hwnas.errors import InvalidConfig

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind.

    Args:
        kind: what is registered, for messages ("accuracy estimator").
        entry_point_group: an ``importlib.metadata`` entry-point group searched
            when a name is not registered in-process (``None``: none).
    """

    def __init__(self, kind: str, *, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its argument under ``name``; a duplicate name raises."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidConfig(f"a {self.kind} name must be a non-empty string; got {name!r}")

        def deco(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise InvalidConfig(f"a {self.kind} named {name!r} is already registered")
            self._items[name] = item
            return item

        return deco

    def _from_entry_points(self, name: str) -> T | None:
        if not self.entry_point_group:
            return None
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            if ep.name == name:
                item = ep.load()
                self._items[name] = item
                return item
        return None

    def get(self, name: str) -> T:
        """The factory registered as ``name``; an unknown name raises :class:`InvalidConfig` naming the known ones."""
        item = self._items.get(name)
        if item is None:
            item = self._from_entry_points(name)
        if item is None:
            raise InvalidConfig(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return item

    def names(self) -> list[str]:
        """Registered names, in registration order (entry points are listed once loaded)."""
        return list(self._items)

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests and plugins that replace a built-in); unknown names are ignored."""
        self._items.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def items(self) -> list[tuple[str, Any]]:
        return list(self._items.items())
