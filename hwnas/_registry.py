"""One small registry shape for every hwnas extension point.

Devices, latency estimators, accuracy estimators, search strategies and loss
components each have one :class:`Registry`. It maps a name to a factory
(usually a class), refuses a duplicate name, answers an unknown name with one
line that lists what is known, and reads a Python entry-point group so that a
third-party package adds an extension without touching hwnas::

    ESTIMATORS = Registry("accuracy estimator", entry_point_group="hwnas.estimators", base=AccuracyEstimator)

    @ESTIMATORS.register("params")
    class ParamCount(AccuracyEstimator): ...

    ESTIMATORS.get("params")        # the class
    ESTIMATORS.names()              # ["params", ...]

A target may also be a ``"module:attribute"`` string, imported on first
:meth:`Registry.get`; built-in devices are listed that way so that choosing one
never imports the runtimes of the others. Entry points are registered the same
lazy way, and never replace a name registered in-process.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from hwnas.errors import InvalidConfig

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind.

    Args:
        kind: what is registered, for messages ("accuracy estimator").
        entry_point_group: an ``importlib.metadata`` entry-point group read once, on
            first use (``None``: none).
        base: when set, a lazily imported target must be a subclass of it.
        unknown_error: raised for an unknown name (an :class:`~hwnas.errors.HwnasError`).
        load_error: raised when a lazy target cannot be imported or has the wrong type.
        known_label: how the list of known names is introduced in messages.
        builtins: names and targets registered first (origin ``"built-in"``), before any entry point.
    """

    def __init__(self, kind: str, *, entry_point_group: str | None = None, base: type | None = None,
                 unknown_error: type[Exception] = InvalidConfig, load_error: type[Exception] = InvalidConfig,
                 known_label: str = "known", builtins: Mapping[str, T | str] | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.base = base
        self.unknown_error = unknown_error
        self.load_error = load_error
        self.known_label = known_label
        self._items: dict[str, T | str] = {}
        self._origin: dict[str, str] = {}
        for name, target in (builtins or {}).items():
            self._items[name] = target
            self._origin[name] = "built-in"
        self._entry_points_read = entry_point_group is None

    # ----------------------------------------------------------- writing
    def add(self, name: str, target: T | str, *, replace: bool = False, origin: str = "registered") -> None:
        """Register ``target`` (or a lazy ``"module:attribute"`` string) under ``name``.

        A name already registered raises :class:`~hwnas.errors.InvalidConfig` (a
        ``ValueError``) unless ``replace``.
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidConfig(f"a {self.kind} name must be a non-empty string; got {name!r}")
        self._read_entry_points()
        if name in self._items and self._items[name] is not target and not replace:
            raise InvalidConfig(f"a {self.kind} named {name!r} is already registered ({self._origin.get(name, '?')}); "
                                "pass replace=True to replace it")
        self._items[name] = target
        self._origin[name] = origin

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """A decorator that registers its argument under ``name`` (see :meth:`add`)."""
        def deco(item: T) -> T:
            self.add(name, item, replace=replace)
            return item

        if not isinstance(name, str) or not name.strip():
            raise InvalidConfig(f"a {self.kind} name must be a non-empty string; got {name!r}")
        return deco

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests and plugins that replace a built-in); unknown names are ignored."""
        self._items.pop(name, None)
        self._origin.pop(name, None)

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            if ep.name not in self._items:  # a built-in or an earlier registration wins; never silently replaced
                self._items[ep.name] = ep.value
                self._origin[ep.name] = f"plugin ({ep.dist.name if ep.dist else ep.value})"

    # ----------------------------------------------------------- reading
    def get(self, name: str) -> T:
        """The factory registered as ``name``, imported if it was registered lazily.

        Raises:
            ``unknown_error``: ``name`` is not registered (the message lists the known names).
            ``load_error``: a lazy target cannot be imported or is not a subclass of ``base``.
        """
        self._read_entry_points()
        if name not in self._items:
            raise self.unknown_error(f"unknown {self.kind} {name!r}; {self.known_label}: {', '.join(self._items)}")
        target = self._items[name]
        if isinstance(target, str):
            target = self._load(name, target)
            self._items[name] = target
        return target  # type: ignore[return-value]

    def _load(self, name: str, target: str) -> Any:
        module_name, _, attr = target.partition(":")
        try:
            item: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                item = getattr(item, part)
        except Exception as exc:
            raise self.load_error(f"{self.kind} {name!r} could not be loaded from {target}: {exc}") from exc
        if self.base is not None and not (isinstance(item, type) and issubclass(item, self.base)):
            raise self.load_error(f"{self.kind} {name!r}: {target} is not a "
                                  f"{self.base.__module__.rsplit('.', 1)[0]}.{self.base.__name__} subclass")
        return item

    def names(self) -> list[str]:
        """Registered names, built-ins first, then entry points, in registration order."""
        self._read_entry_points()
        return list(self._items)

    def origin(self, name: str) -> str:
        """``"built-in"``, ``"registered"`` or ``"plugin (distribution)"``."""
        return self._origin.get(name, "")

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def items(self) -> list[tuple[str, T]]:
        """``(name, factory)`` pairs; lazy targets are imported."""
        return [(name, self.get(name)) for name in self.names()]
