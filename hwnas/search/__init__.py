"""Search for the most accurate students under a latency budget.

* :class:`SearchProblem`: a space, predicted latencies and upper bounds for all
  of it, the budget (on the upper bound) and optional extra constraints.
* Strategies with an ask/tell core, in a registry: ``random``, ``evolution``
  (HAT settings, NSGA-II selection), ``bo`` (BoTorch qLogNEHVI / constrained
  qLogNEI over the enumerated feasible set). ``create_strategy(name, seed=...)``.
* :func:`search` / :func:`run_search`: the loop and the output folder;
  :func:`verify`: measure winners on the device.
* Pareto utilities and hypervolume in :mod:`hwnas.search.pareto`.
"""

from __future__ import annotations

from hwnas._lazy import lazy_getattr
from hwnas.search.base import (
    History, Strategy, create_strategy, get_strategy_class, list_strategies, register_strategy, unregister_strategy,
)
from hwnas.search.problem import (
    OBJECTIVES, Constraint, LatencyModel, SearchProblem, max_memory_constraint, max_params_constraint,
    scalarised_reward,
)

_LAZY = {
    "search": "hwnas.search.runner", "run_search": "hwnas.search.runner", "SearchResult": "hwnas.search.runner",
    "Candidate": "hwnas.search.runner", "Progress": "hwnas.search.runner", "verify": "hwnas.search.verify",
    "Verification": "hwnas.search.verify", "RandomSearch": "hwnas.search._random",
    "Evolution": "hwnas.search.evolution", "BayesianOptimization": "hwnas.search.bo",
    "hypervolume": "hwnas.search.pareto", "pareto_mask": "hwnas.search.pareto",
}

__all__ = [
    "History", "Strategy", "create_strategy", "get_strategy_class", "list_strategies", "register_strategy",
    "unregister_strategy", "OBJECTIVES", "Constraint", "LatencyModel", "SearchProblem", "max_memory_constraint",
    "max_params_constraint", "scalarised_reward",
] + list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
