"""Bayesian optimisation over the enumerated feasible architectures, with BoTorch.

Only the accuracy estimate is unknown and expensive; the predicted latency and
the constraints are known for every architecture before the search starts. So
the model is a :class:`botorch.models.ModelList` of

* a :class:`~botorch.models.SingleTaskGP` on the score, over an encoding of
  the architecture (the four dimensions scaled to [0, 1] and the log of the
  predicted latency, scaled likewise), and
* a :class:`~botorch.models.deterministic.GenericDeterministicModel` that
  returns the known outcomes exactly: minus the predicted latency (ms) and the
  constraint violation (feasible when <= 0).

The acquisition is qLogNEHVI (:class:`qLogNoisyExpectedHypervolumeImprovement`)
for the two objectives of ``objective="pareto"`` (score up, latency down, the
budget as reference latency), and constrained qLogNEI
(:class:`qLogNoisyExpectedImprovement`) for one objective (the score, or the
scalarised reward). Both carry the violation as an outcome constraint, so
results told from outside the feasible set never count as incumbents. The
acquisition is maximised exactly over the feasible architectures not yet
evaluated, with :func:`botorch.optim.optimize_acqf_discrete` (sequential
greedy for batches). The first ``initial`` proposals are random (for two
objectives the very first is the fastest feasible architecture, which is
always on the front).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int
from hwnas.search.base import Strategy, register_strategy

__all__ = ["BayesianOptimization"]

log = logging.getLogger(__name__)

# Encoding columns: 0-3 scaled dimensions, 4 scaled log latency (GP inputs);
# 5 predicted latency in ms and 6 relative constraint violation (deterministic outcomes).
_GP_COLUMNS = 5
_LATENCY_COLUMN = 5
_VIOLATION_COLUMN = 6
# GP hyper-parameters carried from one fit to the next (not the data, not the outcome transform).
_HYPER_PREFIXES = ("likelihood.", "mean_module.", "covar_module.")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the old value after.

    The model has a few dozen points; more threads only fight over a shared machine.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


#: Set to 1 to let BoTorch compile its fused qLogNEHVI kernel at run time (see below).
JIT_ENV = "HWNAS_BOTORCH_JIT"


def _no_runtime_compile() -> None:
    """Keep BoTorch on its pure-PyTorch hypervolume path unless ``HWNAS_BOTORCH_JIT=1``.

    Recent BoTorch releases compile a fused C++ kernel for qLogNEHVI the first time the
    acquisition is built (``torch.utils.cpp_extension.load`` with ``-march=native``, under a
    lock file in ``~/.cache/torch_extensions``). That needs a compiler on every host, ties
    the cached binary to one CPU model, and a process killed while compiling leaves the
    lock behind: every later search then waits on it forever (this happened here, to the
    test suite, after one interrupted ``hwnas search``). BoTorch's own fallback computes the
    same acquisition function in PyTorch, so hwnas uses it by default.
    """
    if os.environ.get(JIT_ENV, "") == "1":
        return
    try:
        from botorch.acquisition.multi_objective import logei
    except ImportError:  # pragma: no cover - BoTorch is a dependency
        return
    if hasattr(logei, "_try_load_fused_kernel") and hasattr(logei, "_load_attempted"):
        logei._load_attempted = True  # as if a load had been tried and failed: BoTorch falls back


@register_strategy
class BayesianOptimization(Strategy):
    """BoTorch qLogNEHVI (two objectives) or constrained qLogNEI (one) on the discrete feasible set.

    Args:
        initial: random feasible proposals before the first model (>= 2).
        mc_samples: quasi-Monte-Carlo samples of the acquisition.
        ref_margin: for two objectives, the reference score is the lowest score
            told minus this fraction of the range of scores told (the reference
            latency is the budget).
        threads: torch threads while fitting and optimising.
        seed: seeds the initial design, the GP fit and the QMC samples.
    """

    name = "bo"

    def __init__(
        self, *, initial: int = 8, mc_samples: int = 128, ref_margin: float = 0.1, threads: int = 1,
        seed: int | None = 0,
    ) -> None:
        super().__init__(seed=seed)
        if isinstance(ref_margin, bool) or not isinstance(ref_margin, (int, float)) or not ref_margin >= 0:
            raise InvalidConfig(f"ref_margin must be a number >= 0; got {ref_margin!r}")
        self.initial, self.mc_samples = check_int("initial", initial, 2), check_int("mc_samples", mc_samples)
        self.ref_margin, self.threads = float(ref_margin), check_int("threads", threads)
        self.fallbacks = 0  # proposals made at random because the model could not be fitted

    def options(self) -> dict[str, Any]:
        return {
            "initial": self.initial, "mc_samples": self.mc_samples, "ref_margin": self.ref_margin,
            "threads": self.threads, "seed": self.seed,
        }

    # ------------------------------------------------------------ encoding
    def _setup(self) -> None:
        problem = self.problem
        array = problem.array.astype(np.float64)
        lo, hi = array.min(axis=0), array.max(axis=0)
        scaled = (array - lo) / np.where(hi > lo, hi - lo, 1.0)
        log_lat = np.log(problem.latency_ms)
        span = log_lat.max() - log_lat.min()
        scaled_lat = (log_lat - log_lat.min()) / (span if span > 0 else 1.0)
        violation = problem.latency_upper_ms / problem.budget_ms - 1.0
        for c in problem.constraints:
            violation = np.maximum(violation, problem.constraint_values[c.name] / c.bound - 1.0)
        self._encoding = np.column_stack([scaled, scaled_lat, problem.latency_ms, violation])
        self._hyper: dict[str, Any] | None = None
        self.fallbacks = 0

    # ------------------------------------------------------------ proposing
    def _propose(self, n: int) -> list[int]:
        told = len(self.history)
        if told + len(self._pending) < self.initial or told < 2:
            picks: list[int] = []
            if self.problem.objective == "pareto" and told == 0 and not self._pending:
                # The fastest feasible architecture is always on the front: an
                # initial point that is never wasted, and it anchors the latency end.
                available = self.available
                picks.append(int(available[np.argmin(self.problem.latency_ms[available])]))
            return picks + self._random_available(n)
        from botorch.exceptions.errors import ModelFittingError
        from linear_operator.utils.errors import NotPSDError

        try:
            return self._optimise(n)
        except (ModelFittingError, NotPSDError) as exc:  # a failed fit must not end a long search
            self.fallbacks += 1
            log.warning("BO model failed (%s); proposing at random this time", exc)
            return self._random_available(n)

    def _optimise(self, n: int) -> list[int]:
        import torch

        _no_runtime_compile()
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import ModelList, SingleTaskGP
        from botorch.models.deterministic import GenericDeterministicModel
        from botorch.models.transforms.input import FilterFeatures
        from botorch.optim import optimize_acqf_discrete
        from botorch.sampling.get_sampler import get_sampler
        from gpytorch.mlls import ExactMarginalLogLikelihood

        problem = self.problem
        told_idx = self.history.index_array
        scores = self.history.score_array
        step_seed = (self.seed or 0) * 1_000_003 + len(told_idx)
        enc = torch.as_tensor(self._encoding, dtype=torch.float64)
        X = enc[torch.as_tensor(told_idx)]
        Y = torch.as_tensor(scores, dtype=torch.float64).unsqueeze(-1)
        available = self.available
        choices = enc[torch.as_tensor(available)]
        pending = sorted(self._pending)
        X_pending = enc[torch.as_tensor(pending)] if pending else None

        with _torch_threads(self.threads), torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jitter and optimiser notes are expected on tiny data
            torch.manual_seed(step_seed)
            gp = SingleTaskGP(X, Y, input_transform=FilterFeatures(feature_indices=torch.arange(_GP_COLUMNS)))
            if self._hyper is not None:
                # Warm start from the last fit: one more point barely moves the
                # hyper-parameters, and L-BFGS then converges in a few steps.
                gp.load_state_dict(self._hyper, strict=False)
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            self._hyper = {k: v.detach().clone() for k, v in gp.state_dict().items() if k.startswith(_HYPER_PREFIXES)}
            known = GenericDeterministicModel(
                lambda x: torch.stack([-x[..., _LATENCY_COLUMN], x[..., _VIOLATION_COLUMN]], dim=-1), num_outputs=2
            )
            model = ModelList(gp, known)  # outcomes: score, -latency_ms, violation
            # A ListSampler: QMC normal samples for the GP, the exact values for the known outcomes.
            sampler = get_sampler(model.posterior(X[:1]), sample_shape=torch.Size([self.mc_samples]), seed=step_seed)
            constraints = [lambda Z: Z[..., 2]]
            common = dict(X_baseline=X, sampler=sampler, constraints=constraints, X_pending=X_pending,
                          prune_baseline=False, cache_root=False)
            if problem.objective == "pareto":
                feasible_told = problem.feasible[told_idx]
                ref_scores = scores[feasible_told] if feasible_told.any() else scores
                spread = float(ref_scores.max() - ref_scores.min())
                ref_score = float(ref_scores.min()) - self.ref_margin * (spread if spread > 0 else max(abs(float(ref_scores.min())), 1.0))
                acq = qLogNoisyExpectedHypervolumeImprovement(
                    model, ref_point=[ref_score, -problem.budget_ms],
                    objective=IdentityMCMultiOutputObjective(outcomes=[0, 1]), **common,
                )
            else:
                if problem.objective == "reward":
                    weight, budget = problem.reward_weight, problem.budget_ms
                    objective = GenericMCObjective(lambda Z, X=None: Z[..., 0] + weight * Z[..., 1] / budget)
                else:
                    objective = GenericMCObjective(lambda Z, X=None: Z[..., 0])
                acq = qLogNoisyExpectedImprovement(model, objective=objective, **common)
            picked, _ = optimize_acqf_discrete(acq, q=min(n, len(available)), choices=choices, unique=True)
        # Map the chosen rows back to candidate indices (rows are copies of encoding rows).
        dist = torch.cdist(picked, choices)
        return [int(available[int(j)]) for j in dist.argmin(dim=1)]
