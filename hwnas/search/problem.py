"""The search problem: a space, a latency model, a latency budget and optional extra constraints.

Latency predictions are nearly free, so a :class:`SearchProblem` predicts the
whole space once when it is built: the predicted latency (the objective) and
the calibrated upper bound (the constraint) of every architecture, in
milliseconds. An architecture is *feasible* when its upper bound is within the
budget and every extra constraint holds. The budget is never folded into the
score as a penalty: strategies only propose feasible architectures, and the
winner is the best feasible one.

What the problem does not hold is the accuracy estimator: that is the
expensive part, and users of the ask/tell API bring their own (a supernet
estimate, a real fine-tune). The problem only says how scores are turned into
objectives:

* ``"pareto"``: two objectives, the accuracy estimate (maximised) and the
  predicted latency (minimised);
* ``"score"``: one objective, the accuracy estimate;
* ``"reward"``: one objective, a KD-NAS-style scalarised reward that combines
  accuracy and latency (:func:`scalarised_reward`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hwnas.errors import InvalidArchitecture, InvalidConfig, check_int
from hwnas.space import DIMENSIONS, Architecture, SearchSpace, get_space

__all__ = [
    "OBJECTIVES", "LatencyModel", "Constraint", "max_params_constraint", "max_memory_constraint", "scalarised_reward",
    "SearchProblem", "archs_to_array",
]

#: Objective modes a problem accepts.
OBJECTIVES: tuple[str, ...] = ("pareto", "score", "reward")


@runtime_checkable
class LatencyModel(Protocol):
    """What the search needs from a latency predictor (``hwnas.predictors`` bundles satisfy it).

    Both methods take a sequence of architectures or an ``n x 4`` int array
    (layers, hidden, heads, ffn) and return ``n`` latencies in milliseconds.
    """

    def predict(self, archs: Any, *, seq_len: int = 128, batch_size: int = 1) -> np.ndarray: ...

    def predict_upper(self, archs: Any, *, seq_len: int = 128, batch_size: int = 1) -> np.ndarray: ...


def archs_to_array(archs: Sequence[Architecture]) -> np.ndarray:
    """``n x 4`` int64 array of (layers, hidden, heads, ffn)."""
    if len(archs) == 0:
        return np.zeros((0, len(DIMENSIONS)), dtype=np.int64)
    return np.array([a.as_tuple() for a in archs], dtype=np.int64)


@dataclass(frozen=True)
class Constraint:
    """An extra constraint ``fn(archs) <= bound``.

    Args:
        name: a short label used in files and messages (``params``, ``memory_mb``).
        bound: the largest allowed value, in ``unit``.
        fn: maps an ``n x 4`` int array (layers, hidden, heads, ffn) to ``n`` values.
        unit: the unit of the values and the bound, for messages.
    """

    name: str
    bound: float
    fn: Callable[[np.ndarray], np.ndarray] = field(compare=False)
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.bound, (int, float)) or isinstance(self.bound, bool) or not np.isfinite(self.bound) or self.bound <= 0:
            raise InvalidConfig(f"constraint {self.name} needs a positive finite bound; got {self.bound!r}")

    def values(self, array: np.ndarray) -> np.ndarray:
        out = np.asarray(self.fn(array), dtype=np.float64).reshape(-1)
        if out.shape != (len(array),):
            raise InvalidConfig(f"constraint {self.name} returned {out.shape[0]} values for {len(array)} architectures")
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "bound": float(self.bound), "unit": self.unit}


def _params_of(array: np.ndarray) -> np.ndarray:
    return np.array([Architecture(*row).num_parameters() for row in array.tolist()], dtype=np.float64)


def max_params_constraint(max_params: float) -> Constraint:
    """At most ``max_params`` parameters (embeddings and encoder, as :meth:`Architecture.num_parameters`)."""
    return Constraint("params", float(max_params), _params_of, "parameters")


def max_memory_constraint(max_mb: float, *, bytes_per_param: int = 4) -> Constraint:
    """Weights take at most ``max_mb`` megabytes (10^6 bytes) at ``bytes_per_param`` bytes each (4 for fp32)."""
    if bytes_per_param not in (1, 2, 4, 8):
        raise InvalidConfig(f"bytes_per_param must be 1, 2, 4 or 8; got {bytes_per_param!r}")
    return Constraint("memory_mb", float(max_mb), lambda a: _params_of(a) * bytes_per_param / 1e6, "MB")


def scalarised_reward(scores: np.ndarray, latencies_ms: np.ndarray, *, budget_ms: float, weight: float) -> np.ndarray:
    """KD-NAS-style single number: ``score - weight * latency_ms / budget_ms``.

    KD-NAS ranks candidates by a reward that combines the distillation loss and
    the inference latency; here the accuracy estimate (higher is better, e.g.
    minus a held-out distillation loss) loses ``weight`` score units for a
    latency equal to the whole budget. The budget itself stays a constraint.
    """
    return np.asarray(scores, dtype=np.float64) - weight * np.asarray(latencies_ms, dtype=np.float64) / budget_ms


class SearchProblem:
    """A space, predicted latencies for all of it, a latency budget and optional constraints.

    Args:
        space: a :class:`SearchSpace` or a space name/file.
        latency: a :class:`LatencyModel` (a loaded predictor bundle).
        budget_ms: the latency budget in milliseconds; an architecture is
            feasible when ``latency.predict_upper`` is at most this.
        seq_len, batch_size: the input shape the latencies are predicted for.
        constraints: extra :class:`Constraint` objects that must all hold.
        objective: ``"pareto"``, ``"score"`` or ``"reward"`` (see the module doc).
        reward_weight: score units lost for a latency equal to the budget (``"reward"`` only).

    Attributes:
        candidates: every architecture of the space (list, lexicographic order).
        array: ``n x 4`` int array of the candidates.
        latency_ms, latency_upper_ms: ``n`` predicted latencies and upper bounds (ms).
        params: ``n`` parameter counts.
        feasible: ``n`` booleans.

    Raises:
        InvalidConfig: bad arguments, or no architecture of the space is feasible
            (the message names the fastest architecture's bound).
    """

    def __init__(
        self, *, space: SearchSpace | str, latency: LatencyModel, budget_ms: float, seq_len: int = 128,
        batch_size: int = 1, constraints: Sequence[Constraint] = (), objective: str = "pareto",
        reward_weight: float = 0.1,
    ) -> None:
        self.space = get_space(space)
        if not isinstance(budget_ms, (int, float)) or isinstance(budget_ms, bool) or not np.isfinite(budget_ms) or budget_ms <= 0:
            raise InvalidConfig(f"budget_ms must be a positive number of milliseconds; got {budget_ms!r}")
        for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
            check_int(name, value)
        if objective not in OBJECTIVES:
            raise InvalidConfig(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
        if not isinstance(reward_weight, (int, float)) or isinstance(reward_weight, bool) or not reward_weight >= 0:
            raise InvalidConfig(f"reward_weight must be a number >= 0; got {reward_weight!r}")
        if not (hasattr(latency, "predict") and hasattr(latency, "predict_upper")):
            raise InvalidConfig(
                f"latency must have predict() and predict_upper() (a predictor bundle); got {type(latency).__name__}"
            )
        names = [c.name for c in constraints]
        if len(set(names)) != len(names):
            raise InvalidConfig(f"constraint names must be unique; got {names}")
        self.latency_model = latency
        self.budget_ms = float(budget_ms)
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.constraints: tuple[Constraint, ...] = tuple(constraints)
        self.objective = objective
        self.reward_weight = float(reward_weight)

        self.candidates: list[Architecture] = self.space.enumerate()
        self.array = archs_to_array(self.candidates)
        self._index = {a: i for i, a in enumerate(self.candidates)}
        self.latency_ms = self._predict(latency.predict, "predict")
        self.latency_upper_ms = self._predict(latency.predict_upper, "predict_upper")
        self.params = _params_of(self.array)
        self.constraint_values = {c.name: c.values(self.array) for c in self.constraints}
        self.latency_ok = self.latency_upper_ms <= self.budget_ms
        feasible = self.latency_ok.copy()
        for c in self.constraints:
            feasible &= self.constraint_values[c.name] <= c.bound
        self.feasible = feasible
        self._check_feasible()

    # ------------------------------------------------------------ building
    def _predict(self, fn: Callable[..., Any], what: str) -> np.ndarray:
        out = np.asarray(fn(self.array, seq_len=self.seq_len, batch_size=self.batch_size), dtype=np.float64).reshape(-1)
        if out.shape != (len(self.candidates),):
            raise InvalidConfig(f"latency.{what} returned {out.shape[0]} values for {len(self.candidates)} architectures")
        if not np.all(np.isfinite(out)) or np.any(out <= 0):
            bad = int(np.flatnonzero(~np.isfinite(out) | (out <= 0))[0])
            raise InvalidConfig(
                f"latency.{what} returned {out[bad]!r} ms for {self.candidates[bad]}; latencies must be positive and finite"
            )
        return out

    def _check_feasible(self) -> None:
        if not self.latency_ok.any():
            fastest = int(np.argmin(self.latency_upper_ms))
            raise InvalidConfig(
                f"no architecture in space {self.space.name} is predicted under {_ms(self.budget_ms)}; "
                f"the fastest is {_ms(self.latency_upper_ms[fastest])} "
                f"({self.candidates[fastest]}, upper bound; predicted {_ms(self.latency_ms[fastest])})"
            )
        if not self.feasible.any():
            parts = []
            ok = self.latency_ok
            for c in self.constraints:
                values = self.constraint_values[c.name][ok]
                parts.append(f"{c.name} <= {c.bound:g} {c.unit} (smallest under the budget: {values.min():g})".replace("  ", " "))
            raise InvalidConfig(
                f"no architecture in space {self.space.name} under {_ms(self.budget_ms)} meets " + " and ".join(parts)
            )

    # -------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def num_objectives(self) -> int:
        return 2 if self.objective == "pareto" else 1

    @property
    def feasible_indices(self) -> np.ndarray:
        return np.flatnonzero(self.feasible)

    def index(self, arch: Architecture | Mapping[str, Any] | str) -> int:
        """Position of ``arch`` in :attr:`candidates`; raises :class:`InvalidArchitecture` outside the space."""
        arch = self.space.validate(arch)
        try:
            return self._index[arch]
        except KeyError:  # pragma: no cover - validate() already guarantees membership
            raise InvalidArchitecture(f"{arch} is outside space {self.space.name!r}") from None

    def find(self, arch: Architecture) -> int | None:
        """Position of ``arch`` in :attr:`candidates`, or None when it is not in the space."""
        return self._index.get(arch)

    def objectives(self, indices: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``len(indices) x m`` objective matrix, every column maximised.

        ``pareto``: (score, -latency_ms); ``score``: (score,); ``reward``: (reward,).
        """
        indices = np.asarray(indices, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        if self.objective == "pareto":
            return np.stack([scores, -self.latency_ms[indices]], axis=1)
        if self.objective == "reward":
            return self.reward(indices, scores)[:, None]
        return scores[:, None]

    def reward(self, indices: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The scalarised reward of :func:`scalarised_reward` for these candidates."""
        return scalarised_reward(scores, self.latency_ms[np.asarray(indices, dtype=np.int64)],
                                 budget_ms=self.budget_ms, weight=self.reward_weight)

    def rank_value(self, indices: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """What picks the winner: the reward for ``"reward"``, else the score (higher is better)."""
        if self.objective == "reward":
            return self.reward(indices, scores)
        return np.asarray(scores, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for ``config.json``)."""
        return {
            "space": self.space.name, "budget_ms": self.budget_ms, "seq_len": self.seq_len,
            "batch_size": self.batch_size, "objective": self.objective,
            "reward_weight": self.reward_weight if self.objective == "reward" else None,
            "constraints": [c.describe() for c in self.constraints], "architectures": len(self.candidates),
            "feasible": int(self.feasible.sum()),
        }


def _ms(value: float) -> str:
    return f"{float(value):.3g} ms"
