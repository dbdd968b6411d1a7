"""Constrained evolutionary search, after HAT (Wang et al., ACL 2020), with NSGA-II selection.

Defaults are HAT's: a random feasible first population of 125, then in every
generation the best 25 become parents and breed 50 children by mutation (each
gene redrawn with probability 0.3) and 50 by uniform crossover of two parents;
children that break the latency budget (or any constraint) are rejected and
bred again, as HAT does. The next population is parents plus children.

Two changes for expensive evaluations: a child identical to an architecture
already evaluated (or pending) is rejected too, so no evaluation is spent
twice; and parents are kept with their scores instead of being re-evaluated.
With two objectives (``objective="pareto"``) parents are chosen by NSGA-II:
non-dominated rank first, then crowding distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int
from hwnas.search.base import Strategy, register_strategy
from hwnas.search.pareto import nsga2_order
from hwnas.space import DIMENSIONS, Architecture

__all__ = ["Evolution"]


@register_strategy
class Evolution(Strategy):
    """HAT-style evolution under the constraints; NSGA-II selection for two objectives.

    Args:
        population_size: size of the first (random) population and of every
            later one; must equal ``parents + mutations + crossovers`` (as in HAT).
        parents: survivors per generation.
        mutations: children bred by mutating one parent.
        crossovers: children bred by crossing two parents.
        mutation_prob: probability that each gene (layers, hidden, heads, ffn)
            is redrawn uniformly from its choices.
        max_tries: attempts to breed one acceptable child before a random
            feasible architecture takes its place.
        seed: seeds every draw.
    """

    name = "evolution"

    def __init__(
        self, *, population_size: int = 125, parents: int = 25, mutations: int = 50, crossovers: int = 50,
        mutation_prob: float = 0.3, max_tries: int = 200, seed: int | None = 0,
    ) -> None:
        super().__init__(seed=seed)
        self.population_size = check_int("population_size", population_size, 2)
        self.parents = check_int("parents", parents, 1)
        self.mutations = check_int("mutations", mutations, 0)
        self.crossovers = check_int("crossovers", crossovers, 0)
        self.max_tries = check_int("max_tries", max_tries, 1)
        if self.mutations + self.crossovers < 1:
            raise InvalidConfig("mutations + crossovers must be >= 1, or no generation ever breeds")
        if self.parents + self.mutations + self.crossovers != self.population_size:
            raise InvalidConfig(
                "population_size must equal parents + mutations + crossovers; got "
                f"population_size={self.population_size}, parents={self.parents}, "
                f"mutations={self.mutations}, crossovers={self.crossovers}"
            )
        if self.crossovers and self.parents < 2:
            raise InvalidConfig(f"crossover needs parents >= 2; got parents={self.parents}")
        if isinstance(mutation_prob, bool) or not isinstance(mutation_prob, (int, float)) or not 0 < mutation_prob <= 1:
            raise InvalidConfig(f"mutation_prob must be a number in (0, 1]; got {mutation_prob!r}")
        self.mutation_prob = float(mutation_prob)

    def options(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size, "parents": self.parents, "mutations": self.mutations,
            "crossovers": self.crossovers, "mutation_prob": self.mutation_prob, "max_tries": self.max_tries,
            "seed": self.seed,
        }

    # --------------------------------------------------------------- state
    def _setup(self) -> None:
        problem = self.problem
        self._choices = [np.asarray(problem.space.choices(d), dtype=np.int64) for d in DIMENSIONS]
        self._queue: list[int] = []
        self._population: list[int] = []
        self._scores: dict[int, float] = {}
        self.generation = 0
        self._started = False

    def _observe(self, indices: np.ndarray, scores: np.ndarray) -> None:
        for i, s in zip(indices.tolist(), scores.tolist(), strict=True):
            self._scores[i] = s
            if i not in self._population:  # results told from elsewhere join the population
                self._population.append(i)

    # ------------------------------------------------------------ proposing
    def _propose(self, n: int) -> list[int]:
        if not self._started:
            # The first population is random; results told before the first ask
            # (a resumed search, a user's own evaluations) count towards it.
            self._started = True
            first = self._random_available(max(0, self.population_size - len(self._population)))
            self._population += first
            self._queue = list(first)
        out: list[int] = []
        while len(out) < n:
            if not self._queue:
                if not self._breed():
                    break
            out.append(self._queue.pop(0))
        return out

    def _select_parents(self) -> list[int]:
        problem = self.problem
        members = [i for i in self._population if i in self._scores]
        # Constraint-domination: feasible results always rank above infeasible ones
        # (infeasible ones only arrive when a user tells them).
        members.sort(key=lambda i: not problem.feasible[i])
        feasible = [i for i in members if problem.feasible[i]]
        pool = feasible if feasible else members
        idx = np.asarray(pool, dtype=np.int64)
        scores = np.asarray([self._scores[i] for i in pool])
        if problem.num_objectives > 1:
            order = nsga2_order(problem.objectives(idx, scores))
        else:
            value = problem.objectives(idx, scores)[:, 0]
            order = np.lexsort((idx, -value))
        chosen = [pool[k] for k in order[: self.parents]]
        if len(chosen) < self.parents:
            chosen += [i for i in members if i not in chosen][: self.parents - len(chosen)]
        return chosen

    def _breed(self) -> bool:
        """Make the next generation's children; False when nothing is left to propose."""
        if not self.available.size:
            return False
        parents = self._select_parents()
        if not parents:  # nothing told yet while the first population is pending
            self._queue = self._random_available(1)
            return bool(self._queue)
        problem = self.problem
        taken = np.zeros(len(problem), dtype=bool)
        taken[self.available] = True  # taken[i]: still available to a child
        children: list[int] = []
        kinds = ["mutation"] * self.mutations + ["crossover"] * (self.crossovers if len(parents) >= 2 else 0)
        for kind in kinds:
            if not taken.any():
                break
            child = None
            for _ in range(self.max_tries):
                if kind == "mutation":
                    gene = self._mutate(problem.array[parents[self.rng.integers(len(parents))]])
                else:
                    a, b = self.rng.choice(len(parents), size=2, replace=False)
                    gene = self._crossover(problem.array[parents[a]], problem.array[parents[b]])
                i = self._lookup(gene)
                if i is not None and taken[i]:
                    child = i
                    break
            if child is None:
                child = int(self.rng.choice(np.flatnonzero(taken)))
            taken[child] = False
            children.append(child)
        self.generation += 1
        self._population = list(parents) + children
        self._queue = children
        return bool(children)

    def _mutate(self, gene: np.ndarray) -> np.ndarray:
        out = gene.copy()
        for j, choices in enumerate(self._choices):
            if self.rng.random() < self.mutation_prob:
                out[j] = choices[self.rng.integers(len(choices))]
        return out

    def _crossover(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pick = self.rng.random(len(a)) < 0.5
        return np.where(pick, a, b)

    def _lookup(self, gene: np.ndarray) -> int | None:
        """Candidate index of a gene, repairing heads that do not divide hidden; None when invalid."""
        layers, hidden, heads, ffn = (int(v) for v in gene)
        if hidden % heads:
            divisors = [int(h) for h in self._choices[2] if hidden % h == 0]
            if not divisors:
                return None
            heads = divisors[int(self.rng.integers(len(divisors)))]
        return self.problem.find(Architecture(layers, hidden, heads, ffn))
