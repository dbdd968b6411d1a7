"""The accuracy-estimator protocol: score a batch of architectures, higher is better.

An accuracy estimator answers the search's question "which of these students
will be most accurate once distilled?" without distilling them. Estimators
differ by orders of magnitude in cost (a parameter count costs nothing, a
few-step fine-tune costs tens of seconds per architecture), so each one reports
what it cost, and the search can screen with a cheap one and decide with an
expensive one (:mod:`hwnas.search`, ``--screen``).

Subclasses implement :meth:`AccuracyEstimator._score`; :meth:`score` adds
argument checking, an in-memory cache and the cost bookkeeping. Register a new
estimator with ``@ESTIMATORS.register("name")``; the contract test in
``tests/estimators/test_contract.py`` then runs on it automatically.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas._registry import Registry
from hwnas.errors import InvalidConfig
from hwnas.space import Architecture, SearchSpace, as_architectures

__all__ = ["AccuracyEstimator", "ESTIMATORS", "as_architectures"]

#: The command-line flag that gives each requirement (``requires``) to ``hwnas search``.
REQUIREMENT_FLAGS = {"supernet": "--supernet", "teacher": "--teacher", "task": "--task", "path": "--estimator-path"}

#: Every accuracy estimator, by name (entry-point group ``hwnas.estimators``).
ESTIMATORS: Registry[type[AccuracyEstimator]] = Registry("accuracy estimator", entry_point_group="hwnas.estimators")


class AccuracyEstimator(ABC):
    """Scores architectures; a higher score means a more accurate student is expected.

    Class attributes:
        name: the registry name.
        requires: what the estimator needs besides architectures, a subset of
            ``{"supernet", "teacher", "task", "path"}`` (for messages and for the search CLI,
            whose flags :data:`REQUIREMENT_FLAGS` names).
        description: one line for ``hwnas estimators`` and the docs.
        comparable_within: ``None``, or the latency tolerance inside which scores compare (see below).

    Attributes:
        cost_per_arch_s: mean seconds per architecture over the architectures this
            instance actually scored (cache hits excluded); ``None`` before any.
    """

    name: ClassVar[str] = "?"
    requires: ClassVar[frozenset[str]] = frozenset()
    description: ClassVar[str] = ""
    #: ``None``: scores compare across the whole space. A fraction ``w``: scores compare only between
    #: architectures whose predicted latencies differ by at most ``w`` (a ranker fitted within latency bands);
    #: the search then picks its winner in the band at the top of the budget (:func:`hwnas.search.runner.run_search`).
    comparable_within: ClassVar[float | None] = None
    #: The line :func:`make_estimator` gives when a requirement is missing (default: "estimator NAME needs FLAGS").
    missing_message: ClassVar[str] = ""

    def __init__(self) -> None:
        self._memory: dict[str, float] = {}
        self._spent_s = 0.0
        self._scored = 0

    # ------------------------------------------------------------ protocol
    @abstractmethod
    def _score(self, archs: list[Architecture]) -> np.ndarray:
        """Scores of ``archs`` (distinct, none cached): an ``n`` float array."""

    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`InvalidConfig` when this estimator cannot score ``space``'s architectures."""

    def validate(self, arch: Architecture) -> Architecture:
        """Raise when ``arch`` cannot be scored (default: anything can)."""
        return arch

    def has_row_scores(self) -> bool:
        """Whether :meth:`row_scores` works: every architecture is scored on the same held-out rows, and the
        score is the mean of per-row values (what a search's ``2se`` tie rule needs, :mod:`hwnas.search.ties`)."""
        return self.row_scores_problem() is None

    def row_scores_problem(self) -> str | None:
        """``None`` when :meth:`row_scores` works, else what a ``Kse`` tie rule lacks, worded to follow "needs"
        in its error message. Estimators that give per-row scores override this (the default: none)."""
        return no_row_scores(self.name)

    def row_scores(self, archs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """``architectures x rows`` per-row values whose row means are the scores (see :meth:`has_row_scores`).

        Raises:
            InvalidConfig: this estimator has no per-row scores (the default).
        """
        raise InvalidConfig(f"estimator {self.name} has no per-row scores")

    # ------------------------------------------------------------ shared
    def score(self, archs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """One float per architecture, higher is better (``n`` float64 array).

        Args:
            archs: :class:`Architecture` objects, key strings, mappings or an ``n x 4`` array.
        """
        archs = [self.validate(a) for a in as_architectures(archs)]
        todo = list(dict.fromkeys(a for a in archs if a.key not in self._memory))
        if todo:
            t0 = time.perf_counter()
            values = np.asarray(self._score(todo), dtype=np.float64)
            if values.shape != (len(todo),):
                raise RuntimeError(f"{self.name}: _score returned shape {values.shape} for {len(todo)} architectures")
            if not np.all(np.isfinite(values)):
                bad = [a.key for a, v in zip(todo, values, strict=True) if not np.isfinite(v)]
                raise RuntimeError(f"{self.name}: non-finite scores for {bad[:3]}")
            self._spent_s += time.perf_counter() - t0
            self._scored += len(todo)
            self._memory.update({a.key: float(v) for a, v in zip(todo, values, strict=True)})
        return np.array([self._memory[a.key] for a in archs], dtype=np.float64)

    @property
    def cost_per_arch_s(self) -> float | None:
        return self._spent_s / self._scored if self._scored else None

    @property
    def label(self) -> str:
        """What a search records as its estimator: the name, plus what pins the scores down where that matters."""
        return getattr(self, "_label", None) or self.name

    @label.setter
    def label(self, value: str) -> None:
        self._label = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, cached={len(self._memory)})"


def no_row_scores(name: str) -> str:
    """What a ``Kse`` tie rule lacks with an estimator (or scoring function) ``name`` that has no per-row scores."""
    return (f"an estimator that scores every architecture on the same held-out rows (distill-proxy with metric "
            f"accuracy or agreement); estimator {name} does not; give a score difference instead (e.g. 0.005)")


#: What the search passes every estimator through flags of its own (--supernet, --teacher, --task, --estimator-path).
CONTEXT_KEYS = frozenset({"supernet", "teacher", "task", "path"})


def estimator_options(name: str) -> dict[str, Any]:
    """The settings estimator ``name`` takes besides the context (:data:`CONTEXT_KEYS`), with their defaults
    (``inspect.Parameter.empty`` where there is none): the keyword-only arguments of its class's ``__init__``
    and of its parents' that a ``**kwargs`` hands on."""
    import inspect

    out: dict[str, Any] = {}
    for cls in ESTIMATORS.get(name).__mro__:
        if "__init__" in vars(cls) and cls is not object:
            for key, p in inspect.signature(cls.__init__).parameters.items():
                if p.kind is inspect.Parameter.KEYWORD_ONLY and key not in CONTEXT_KEYS:
                    out.setdefault(key, p.default)
    return dict(sorted(out.items()))


def make_estimator(name: str, **context: Any) -> AccuracyEstimator:
    """Build the estimator registered as ``name`` from what is at hand.

    Args:
        context: ``supernet`` (folder or object), ``teacher`` (``"default"`` or a
            model folder), ``task`` (a labelled file), and estimator options; an
            estimator takes the ones it needs and refuses to run without them.
    """
    import inspect

    cls = ESTIMATORS.get(name)
    missing = [r for r in sorted(cls.requires) if context.get(r) in (None, "")]
    if missing:
        flags = ", ".join(REQUIREMENT_FLAGS.get(m, f"--{m}") for m in missing)
        raise InvalidConfig(cls.missing_message or f"estimator {name!r} needs {flags}")
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in context.items() if v is not None and (accepts_any or k in params)}
    return cls(**kwargs)
