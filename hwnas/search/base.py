"""The ask/tell core every strategy shares, and the strategy registry.

A strategy proposes architectures of a :class:`~hwnas.search.problem.SearchProblem`
and learns from the scores it is told; it never evaluates anything itself, so
any evaluation function works (a supernet estimate, a real fine-tune)::

    problem = SearchProblem(space="small", latency=predictor, budget_ms=5.0)
    strategy = create_strategy("evolution", seed=0)
    strategy.setup(problem)
    while len(strategy.history) < 64:
        archs = strategy.ask(4)
        if not archs:            # every feasible architecture has been evaluated
            break
        strategy.tell(archs, [my_score(a) for a in archs])

Guarantees given by this base class, whatever the subclass does: ``ask``
returns only feasible architectures of the space, never one already evaluated
or still pending (asked and not told), and no repeats; it returns fewer than
asked (possibly none) only when the feasible set is used up.

Hooks for subclasses, and when they are called:

* ``_setup()``: once, at the end of :meth:`Strategy.setup`, after ``self.problem``
  and ``self.rng`` are set and the history is empty.
* ``_propose(n)``: from :meth:`Strategy.ask`, with ``1 <= n <=`` the number of
  feasible architectures still available; returns candidate indices (into
  ``problem.candidates``). Indices that are infeasible, seen or repeated are
  dropped by the base class, which tops up with random available ones.
* ``_observe(indices, scores)``: from :meth:`Strategy.tell`, after the history
  holds the new results.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hwnas._registry import Registry
from hwnas.errors import InvalidConfig, InvalidData, check_int
from hwnas.search.problem import SearchProblem
from hwnas.space import Architecture

__all__ = [
    "History", "Strategy", "STRATEGIES", "register_strategy", "unregister_strategy", "create_strategy",
    "get_strategy_class", "list_strategies",
]


@dataclass
class History:
    """Everything told so far, in order: candidate indices and their scores (higher is better)."""

    indices: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def index_array(self) -> np.ndarray:
        return np.asarray(self.indices, dtype=np.int64)

    @property
    def score_array(self) -> np.ndarray:
        return np.asarray(self.scores, dtype=np.float64)


class Strategy(ABC):
    """Base class of search strategies: keyword-only options, a ``seed``, an ask/tell core.

    Args:
        seed: seeds every random choice of the strategy; the same seed, problem
            and told scores give the same proposals.
    """

    #: Registry name; set by subclasses.
    name: ClassVar[str] = ""

    def __init__(self, *, seed: int | None = 0) -> None:
        self.seed = check_int("seed", seed, 0, none_ok=True)
        self._problem: SearchProblem | None = None
        self.rng = np.random.default_rng(self.seed)
        self.history = History()
        self._seen = np.zeros(0, dtype=bool)
        self._pending: set[int] = set()

    # ------------------------------------------------------------ public
    @property
    def problem(self) -> SearchProblem:
        if self._problem is None:
            raise InvalidConfig(f"call {type(self).__name__}.setup(problem) before ask() or tell()")
        return self._problem

    def options(self) -> dict[str, Any]:
        """The constructor's options, JSON-able (written to ``config.json``)."""
        return {"seed": self.seed}

    def setup(self, problem: SearchProblem) -> Strategy:
        """Bind to ``problem`` and start afresh (history cleared, random state re-seeded). Returns ``self``."""
        if not isinstance(problem, SearchProblem):
            raise InvalidConfig(f"setup() needs a SearchProblem; got {type(problem).__name__}")
        self._problem = problem
        self.rng = np.random.default_rng(self.seed)
        self.history = History()
        self._seen = np.zeros(len(problem), dtype=bool)
        self._pending = set()
        self._setup()
        return self

    @property
    def available(self) -> np.ndarray:
        """Indices of feasible candidates neither evaluated nor pending."""
        mask = self.problem.feasible & ~self._seen
        if self._pending:
            mask[list(self._pending)] = False
        return np.flatnonzero(mask)

    @property
    def exhausted(self) -> bool:
        """True once every feasible architecture has been asked."""
        return len(self.available) == 0

    def ask(self, n: int = 1) -> list[Architecture]:
        """Up to ``n`` feasible architectures to evaluate next (fewer only when the feasible set is used up)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidConfig(f"ask() needs n >= 1; got {n!r}")
        available = self.available
        n = min(int(n), len(available))
        if n == 0:
            return []
        allowed = np.zeros(len(self.problem), dtype=bool)
        allowed[available] = True
        chosen: list[int] = []
        for i in self._propose(n):
            i = int(i)
            if 0 <= i < len(allowed) and allowed[i]:
                chosen.append(i)
                allowed[i] = False
            if len(chosen) == n:
                break
        if len(chosen) < n:  # top up, so a strategy that runs dry never stalls the loop
            rest = np.flatnonzero(allowed)
            chosen.extend(int(i) for i in self.rng.choice(rest, size=n - len(chosen), replace=False))
        self._pending.update(chosen)
        return [self.problem.candidates[i] for i in chosen]

    def tell(self, archs: Sequence[Architecture | str | dict], scores: Iterable[float]) -> None:
        """Record the scores (higher is better) of evaluated architectures.

        ``archs`` need not come from :meth:`ask` (results from elsewhere are
        welcome) but must lie in the problem's space; scores must be finite.
        """
        archs = list(archs)
        values = np.asarray(list(scores), dtype=np.float64).reshape(-1)
        if len(archs) != len(values):
            raise InvalidData(f"tell() got {len(archs)} architectures but {len(values)} scores")
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InvalidData(f"score of {archs[bad]} is {values[bad]!r}; scores must be finite numbers")
        indices = [self.problem.index(a) for a in archs]
        if len(set(indices)) != len(indices):
            raise InvalidData("tell() got the same architecture twice in one call")
        for i in indices:
            if self._seen[i]:
                raise InvalidData(f"{self.problem.candidates[i]} was already told; each architecture is evaluated once")
        for i, s in zip(indices, values, strict=True):
            self.history.indices.append(i)
            self.history.scores.append(float(s))
            self._seen[i] = True
            self._pending.discard(i)
        self._observe(np.asarray(indices, dtype=np.int64), values)

    # ------------------------------------------------------------- hooks
    def _setup(self) -> None:
        """Called once per :meth:`setup`; override to build state."""

    @abstractmethod
    def _propose(self, n: int) -> Sequence[int] | np.ndarray:
        """Return candidate indices to evaluate (at least ``n`` when possible)."""

    def _observe(self, indices: np.ndarray, scores: np.ndarray) -> None:
        """Called after each :meth:`tell`; override to learn."""

    # ---------------------------------------------------------- helpers
    def _random_available(self, n: int) -> list[int]:
        available = self.available
        n = min(n, len(available))
        return [int(i) for i in self.rng.choice(available, size=n, replace=False)] if n else []


# ------------------------------------------------------------------ registry
#: Every search strategy by name (entry-point group ``hwnas.strategies``).
STRATEGIES: Registry[type[Strategy]] = Registry("strategy", entry_point_group="hwnas.strategies", base=Strategy)


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: register ``cls`` under ``cls.name``; duplicates are refused."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise InvalidConfig(f"only Strategy subclasses can be registered; got {cls!r}")
    if not cls.name:
        raise InvalidConfig(f"{cls.__name__} has no name")
    if cls.name in STRATEGIES and STRATEGIES.get(cls.name) is not cls:
        raise InvalidConfig(f"a strategy named {cls.name!r} is already registered ({STRATEGIES.get(cls.name).__name__})")
    return STRATEGIES.register(cls.name)(cls)


def unregister_strategy(name: str) -> None:
    STRATEGIES.unregister(name)


def list_strategies() -> list[str]:
    """Names of the registered strategies."""
    _load_builtin()
    return STRATEGIES.names()


def get_strategy_class(name: str) -> type[Strategy]:
    _load_builtin()
    if name in STRATEGIES:
        return STRATEGIES.get(name)  # registered here, or a plugin's entry point (a broken one says why)
    raise InvalidConfig(f"unknown strategy {name!r}; strategies are {', '.join(STRATEGIES.names())}")


def create_strategy(name: str, **options: Any) -> Strategy:
    """Build a registered strategy with keyword options, e.g. ``create_strategy("bo", seed=1, initial=8)``."""
    cls = get_strategy_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise InvalidConfig(f"bad options for strategy {name!r}: {exc}") from None


def _load_builtin() -> None:
    # Importing the modules registers them; kept lazy so that importing the base
    # class never pulls BoTorch in.
    import hwnas.search.bo  # noqa: F401
    import hwnas.search.evolution  # noqa: F401
    import hwnas.search._random  # noqa: F401
    import hwnas.search.screen  # noqa: F401

