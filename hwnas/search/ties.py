"""Picking the winner when the accuracy estimate cannot tell candidates apart.

An accuracy estimate is a measurement with noise. A few-step distillation proxy
scored on 2,000 held-out rows, for example, moves by about half a point between
two students that distillation itself cannot separate, and the search's plain
rule (the highest score wins) then picks whichever student the noise favoured.
The end-to-end benchmark showed what that costs: under a 17.5 ms budget the
proxy's best score went to an 8 ms student, 1.3 points less accurate after
distillation than the largest student under the budget (docs/estimators.md).

A :class:`TieRule` makes the winner rule aware of that noise. Every evaluated
feasible candidate whose value lies within a margin of the best one is *tied*
with it, and among the tied candidates the one with the most parameters wins
(then the higher value, then the lower predicted latency). The margin is either

* a fixed score difference (``0.005``), or
* a multiple of the *paired standard error* of the difference (``2se``), for
  estimators that score every architecture on the same held-out rows and can
  return those per-row scores (:meth:`hwnas.estimators.AccuracyEstimator.row_scores`;
  ``distill-proxy`` with ``metric=accuracy`` or ``agreement``). For candidates
  ``b`` (the best) and ``c`` the per-row differences ``d = r_b - r_c`` give
  ``se = std(d) / sqrt(rows)``; ``c`` is tied when ``value_b - value_c <= k * se``.

The Pareto front and the hypervolume are unchanged; only the winner is chosen
differently, and ``config.json`` records the rule, the best candidate and the
tied set under ``ties``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hwnas.errors import InvalidConfig

__all__ = ["TieRule", "parse_tie_margin"]

_SE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*se\s*$")

_ACCEPTED = ("a score difference >= 0 (e.g. 0.005) or a positive multiple of the paired standard error "
             "(e.g. 2se)")


@dataclass(frozen=True)
class TieRule:
    """Ties within ``margin`` score units of the best, or within ``se_multiple`` paired standard errors.

    Exactly one of ``margin`` and ``se_multiple`` is set.
    """

    margin: float | None = None
    se_multiple: float | None = None

    def __post_init__(self) -> None:
        if (self.margin is None) == (self.se_multiple is None):
            raise InvalidConfig("a tie rule takes one of margin and se_multiple")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin >= 0):
            raise InvalidConfig(f"tie margin must be {_ACCEPTED}; got {self.margin!r}")
        if self.se_multiple is not None and not (math.isfinite(self.se_multiple) and self.se_multiple > 0):
            raise InvalidConfig(f"tie margin must be {_ACCEPTED}; got {self.se_multiple!r}se")

    @property
    def needs_rows(self) -> bool:
        """Whether the rule needs the estimator's per-row scores."""
        return self.se_multiple is not None

    def __str__(self) -> str:
        return f"{self.se_multiple:g}se" if self.se_multiple is not None else f"{self.margin:g}"

    def check_estimator(self, estimator: Any) -> None:
        """Raise :class:`InvalidConfig` when the rule needs per-row scores that ``estimator`` cannot give."""
        if not self.needs_rows:
            return
        has = getattr(estimator, "has_row_scores", None)
        if callable(has) and has():
            return
        from hwnas.estimators.base import no_row_scores

        problem = getattr(estimator, "row_scores_problem", None)  # a plain scoring function has neither
        why = problem() if callable(problem) else None
        name = getattr(estimator, "name", None) or getattr(estimator, "__name__", type(estimator).__name__)
        raise InvalidConfig(f"tie margin {self} needs {why or no_row_scores(name)}")

    def tied(self, values: np.ndarray, rows: Callable[[list[int]], np.ndarray] | None = None,
             best: int | None = None) -> tuple[int, np.ndarray]:
        """The best position in ``values`` (``best`` if given, else the first maximum) and a mask of the
        positions tied with it (the best included).

        ``rows(positions)`` returns the per-row scores of those positions (one row of the result per
        position, all over the same held-out rows); it is called once, with every position, for ``se`` rules.
        """
        values = np.asarray(values, dtype=np.float64)
        best = int(np.argmax(values)) if best is None else int(best)
        gap = values[best] - values
        if self.margin is not None:
            return best, gap <= self.margin + 1e-12
        if rows is None:
            raise InvalidConfig(f"tie margin {self} needs per-row scores")
        r = np.asarray(rows(list(range(len(values)))), dtype=np.float64)
        if r.ndim != 2 or r.shape[0] != len(values) or r.shape[1] < 2:
            raise InvalidConfig(f"per-row scores must be one row of at least 2 values per candidate; got shape {r.shape}")
        d = r[best][None, :] - r
        se = d.std(axis=1, ddof=1) / math.sqrt(r.shape[1])
        return best, gap <= self.se_multiple * se + 1e-12

    def describe(self) -> dict[str, Any]:
        return {"margin": self.margin, "se_multiple": self.se_multiple, "text": str(self),
                "rule": "most parameters among the candidates within the margin of the best "
                        "(then the higher value, then the lower predicted latency)"}


def parse_tie_margin(value: Any, what: str = "--tie-margin") -> TieRule | None:
    """``None``/``"none"`` (the plain rule), a number (score units) or ``"Kse"`` (K paired standard errors)."""
    if value is None or isinstance(value, TieRule):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        if text.lower() in ("", "none", "off"):
            return None
        m = _SE.match(text.lower())
        if m:
            k = float(m.group(1))
            if not (math.isfinite(k) and k > 0):
                raise InvalidConfig(f"{what} must be {_ACCEPTED}; got {value!r}")
            return TieRule(se_multiple=k)
        try:
            number = float(text)
        except ValueError:
            raise InvalidConfig(f"{what} must be {_ACCEPTED}; got {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise InvalidConfig(f"{what} must be {_ACCEPTED}; got {value!r}")
    return TieRule(margin=number)
